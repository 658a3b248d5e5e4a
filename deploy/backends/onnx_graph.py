"""ONNX graph edits every backend runner may need (below parity and the bundle layer, so runners can use them)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

CUSTOM_DOMAIN = "attnx"


def expose_intermediates(model: onnx.ModelProto, names: Iterable[str] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs also include ``names`` (default: every node output).

    The added outputs carry no type: ONNX Runtime and OpenVINO infer it, which also works for contrib ops
    that ONNX shape inference does not know. Names already among the outputs are not added twice.
    """
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    present = {o.name for o in m.graph.output}
    wanted = list(names) if names is not None else [t for n in m.graph.node for t in n.output if t]
    for name in wanted:
        if name not in present:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
            present.add(name)
    return m


def custom_op_types(model: onnx.ModelProto | str | Path | bytes, domain: str = CUSTOM_DOMAIN) -> list[str]:
    """The op types of ``domain`` (attnx custom ops) in the model's graph and its functions, sorted.

    ``model``: a ModelProto, serialised bytes, or an ONNX file path (read without its external weights).
    """
    import onnx

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model), load_external_data=False)
    elif isinstance(model, bytes):
        model = onnx.load_from_string(model)
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    return sorted({n.op_type for n in nodes if n.domain == domain})


def uses_custom_domain(model: onnx.ModelProto | str | Path | bytes, domain: str = CUSTOM_DOMAIN) -> bool:
    """Whether the model has nodes of ``domain`` (see :func:`custom_op_types`)."""
    return bool(custom_op_types(model, domain))
