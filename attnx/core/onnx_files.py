"""ONNX files from outside: read them as data, keep their external data beside them.

An ONNX model may keep tensors in other files ("external data"), named by a location inside the model.
attnx reads those only from the model's own folder: a location that is absolute, climbs out with ``..``
or resolves elsewhere through a symlink is refused with one line, before ONNX or ONNX Runtime opens it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from attnx.core.errors import UserError, shown

if TYPE_CHECKING:
    import onnx

TWO_GB = 2**31  # protobuf's limit on one serialised message: beyond it ONNX needs external data


def read_model(path: Path) -> onnx.ModelProto:
    """The model's graph and metadata, without its external data; a corrupt file is one line.

    Tensors kept in external data stay unloaded (``onnx.load(..., load_external_data=False)``): enough to
    read the graph, metadata and external-data locations, not to run the model.

    Raises:
        UserError: the file is missing, cannot be parsed as ONNX protobuf, or holds no graph (an empty or
            cut-short file parses as an empty model).
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # DecodeError and friends
        raise UserError(f"{path} is not a readable ONNX model (corrupt or truncated?)") from None
    if not model.HasField("graph") or not (model.graph.node or model.graph.output):
        # protobuf reads an empty file (or any file of unknown fields) as an empty model
        size = path.stat().st_size
        what = "is empty (0 bytes)" if size == 0 else f"holds no ONNX graph ({size} bytes)"
        raise UserError(f"{path} {what}: not an ONNX model, or one cut short; export it again (attnx export)")
    return model


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def external_locations(model: onnx.ModelProto) -> dict[str, str]:
    """Tensor name → the external-data location it names, for every tensor kept outside the model file.

    Looks at initializers, sparse initializers and tensor attributes, subgraphs included (If / Loop /
    Scan bodies). A tensor with ``data_location == EXTERNAL`` but no "location" key maps to "". See
    https://onnx.ai/onnx/repo-docs/ExternalData.html.
    """
    from onnx import TensorProto

    found = {}
    for t in _tensors(model.graph):
        if t.data_location == TensorProto.EXTERNAL:
            found[t.name] = next((e.value for e in t.external_data if e.key == "location"), "")
    return found


def check_external_data(path: Path, model: onnx.ModelProto | None = None) -> dict[str, str]:
    """Refuse external data that is missing or lies outside the model's folder; return the locations.

    Args:
        path: the ONNX file.
        model: the model already read from ``path`` (``read_model``), to save reading it again.

    Returns:
        Tensor name → location, as ``external_locations`` (empty for a self-contained file).

    Raises:
        UserError: ``path`` is not a readable model; a location is empty, absolute, holds ".." or a
            backslash, resolves outside the model's folder through a symlink, or names a missing file.
    """
    path = Path(path)
    model = model if model is not None else read_model(path)
    locations = external_locations(model)
    base = path.parent.resolve()
    for name, location in locations.items():
        place = shown(location)
        rel = Path(location)
        if not location or rel.is_absolute() or ".." in rel.parts or "\\" in location:
            raise UserError(
                f"{path}: tensor '{name}' keeps its data at '{place}', outside the model's folder; attnx reads "
                "external data only from beside the model: move the data file next to it and name it there"
            )
        target = (base / rel).resolve()
        if not target.is_relative_to(base):
            raise UserError(
                f"{path}: tensor '{name}' keeps its data at '{place}', a link out of the model's folder; "
                "attnx reads external data only from beside the model: copy the data file next to it"
            )
        if not target.is_file():
            raise UserError(
                f"{path}: tensor '{name}' keeps its data in '{place}', which is missing: put the data file "
                "beside the model"
            )
    return locations


def checked_metadata(path: Path) -> dict[str, str]:
    """The file's metadata, after checking that it is readable and its external data stays beside it.

    Returns ``metadata_props`` as key → value strings. Raises ``UserError`` as ``check_external_data``.
    """
    model = read_model(path)
    check_external_data(path, model)
    return {p.key: p.value for p in model.metadata_props}


def copy_model(src: Path, dest: Path) -> None:
    """Copy an ONNX file to ``dest`` as one self-contained file: external data (checked) is read in.

    A file without external data is copied byte for byte (its SHA-256 is kept).

    Raises:
        UserError: ``src`` is unreadable or its external data is refused (``check_external_data``), cannot
            be read, or makes a model of 2 GB or more (``TWO_GB``, protobuf's limit on one message).
    """
    import shutil

    import onnx

    src, dest = Path(src), Path(dest)
    model = read_model(src)
    if not check_external_data(src, model):
        shutil.copyfile(src, dest)  # byte for byte: its hash is the file's own
        return
    try:
        onnx.load_external_data_for_model(model, str(src.parent))
    except Exception as exc:  # onnx's ValidationError for a bad location, OSError for a short file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read the external data of {src}: {first[:200]}") from None
    if model.ByteSize() >= TWO_GB:
        raise UserError(
            f"{src} holds over 2 GB of weights in external data; attnx builds models up to 2 GB: "
            "export a smaller configuration"
        )
    onnx.save(model, str(dest))


def load_onnx(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    """A model as given (an ``onnx.ModelProto`` is returned unchanged), or loaded whole from a path.

    Raises:
        UserError: the file is missing, or not a readable ONNX model (one line, no traceback).
    """
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # DecodeError and friends
        raise UserError(f"{path} is not a readable ONNX model (corrupt or truncated?): {exc}") from None
