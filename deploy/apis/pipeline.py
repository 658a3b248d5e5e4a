"""The steps the CLI chains: resolve a model, export it, check parity. Each is usable from Python."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.parity.compare import compare
from attnx.deploy.parity.inputs import check_shape, load_inputs, seeded_inputs
from attnx.deploy.parity.report import ParityReport
from attnx.deploy.parity.saved_io import IOCase, check_io_inputs

if TYPE_CHECKING:
    from torch import nn

    from attnx.deploy.parity.compare import Tolerance
    from attnx.exporters.export import ExportOptions, ExportResult
    from attnx.exporters.registry import ZooEntry
    from attnx.exporters.report import OpReport

ATTNX_VERSION = "0.1.0"


@dataclass
class PreparedModel:
    """A resolved PyTorch model, ready to export or compare: the module (eval mode), the ``spec`` the user named it
    by, the zoo ``config`` and ``entry`` (None for a ``module:factory`` spec), ``sample_shape`` (C, H, W of one
    sample; None when unknown) and the ``weights`` file loaded into it (None: the seeded initialisation).
    """

    model: nn.Module
    spec: str  # how the user named it
    config: str | None
    entry: ZooEntry | None
    sample_shape: tuple[int, ...] | None  # (C, H, W) of one sample, no batch, if known
    weights: Path | None

    @property
    def dynamic_hw_ok(self) -> bool:
        """True when the model takes any input height and width (a zoo entry may fix them; a factory is assumed to)."""
        return self.entry.dynamic_hw if self.entry else True

    def metadata(self) -> dict[str, str]:
        """Stamped into the ONNX file so `attnx parity model.onnx` can rebuild the reference."""
        from attnx.exporters.weights import file_sha256

        meta = {"attnx.version": ATTNX_VERSION, "attnx.model": self.spec}
        if self.config:
            meta["attnx.config"] = self.config
        if self.weights:
            meta["attnx.weights"] = str(self.weights.resolve())
            meta["attnx.weights_sha256"] = file_sha256(self.weights)
        return meta


def prepare_model(
    spec: str, config: str | None = None, weights: Path | None = None, num_classes: int | None = None
) -> PreparedModel:
    """Resolve ``spec`` (a zoo name or ``module:factory``) to a :class:`PreparedModel`, loading ``weights`` (a state
    dict, strictly) when given. ``config``: zoo models only (default: the entry's first config, recorded);
    ``num_classes``: passed to the model's constructor. Raises :class:`~attnx.core.errors.UserError` for a missing
    weights file, ``num_classes`` < 1, ``config`` with a factory spec, or a model that cannot be built or loaded.
    """
    from attnx.exporters.registry import resolve_model
    from attnx.exporters.weights import load_weights

    if weights is not None and not weights.is_file():  # fail before building a large model
        raise UserError(f"weights file not found: {weights}")
    if num_classes is not None and num_classes < 1:
        raise UserError(f"--num-classes must be ≥ 1, got {num_classes}")
    kwargs = {"num_classes": num_classes} if num_classes is not None else {}
    if config is not None and (":" in spec):
        raise UserError("--config applies to zoo models only; pass options to your factory instead")
    resolved = resolve_model(spec, config=config, **kwargs)
    if weights is not None:
        load_weights(resolved.model, weights)
    if resolved.entry is not None and config is None:
        config = resolved.entry.configs[0]  # record the default explicitly: the manifest should say which
    return PreparedModel(resolved.model, spec, config, resolved.entry, resolved.sample_shape, weights)


def full_input_shape(prepared: PreparedModel, input_shape: tuple[int, ...] | None, batch: int = 1) -> tuple[int, ...]:
    """The export shape: the user's, else the zoo default with the given batch."""
    if input_shape is not None:
        if prepared.entry and not prepared.entry.dynamic_hw and len(input_shape) == 4:
            want = prepared.sample_shape
            if want and tuple(input_shape[1:]) != tuple(want):
                raise UserError(
                    f"model '{prepared.spec}' takes a fixed input of {'x'.join(map(str, want))} (C×H×W), "
                    f"not {'x'.join(map(str, input_shape[1:]))}; drop --input-shape or match it"
                )
        return input_shape
    if prepared.sample_shape is None:
        raise UserError(f"the input shape of '{prepared.spec}' is unknown: pass --input-shape, e.g. 1x3x224x224")
    return (batch, *prepared.sample_shape)


def export_model(
    prepared: PreparedModel, out_path: Path, options: ExportOptions, target: str = "ort", plugins: str = "none"
) -> tuple[ExportResult, OpReport]:
    """Export, then write the op report as JSON beside the model (``<stem>.report.json``).

    ``plugins`` (none | trt | auto) picks, per attnx op, custom node or standard ONNX; the op report's
    notes say what was chosen for each op the model uses, and why.
    """
    import dataclasses

    import onnx

    from attnx.exporters.export import choose_plugin_ops, export_onnx
    from attnx.exporters.report import op_report

    if options.dynamic_hw and not prepared.dynamic_hw_ok:
        raise UserError(f"model '{prepared.spec}' has a fixed input size: drop --dynamic-hw")
    chosen, reasons = choose_plugin_ops(plugins, target)
    from attnx.exporters.attention_form import choose_form

    _, form_why = choose_form(options.attention, options.opset, target, chosen, options.exporter)  # fails early
    options = dataclasses.replace(options, plugin_ops=chosen, attention_target=target)
    metadata = {**prepared.metadata(), "attnx.plugins": plugins}
    result = export_onnx(prepared.model, out_path, options, model_label=prepared.spec, metadata=metadata)
    proto = onnx.load(str(result.path), load_external_data=False)
    report = op_report(proto, target, model=prepared.spec)
    custom_nodes = {n.op_type for n in proto.graph.node if n.domain == "attnx"}
    standard_nodes = {n.op_type for n in proto.graph.node if n.domain in ("", "ai.onnx")}
    for op in sorted(result.ops_used):
        in_graph = op in custom_nodes or (op != "GridSample" or op in standard_nodes)
        if not in_graph or (op in chosen and op not in custom_nodes):
            continue  # subsumed by a fused custom op (GridSample inside AffineGridSample)
        report.notes.append(f"{op}: {reasons[op]}")
    report.notes.extend(result.notes)
    report.save(report_path(result.path))
    return result, report


def report_path(onnx_path: Path) -> Path:
    """Where the op report of an exported ONNX file goes: ``<stem>.report.json`` beside it."""
    return onnx_path.with_name(onnx_path.stem + ".report.json")


def prepare_from_onnx(onnx_path: Path, model_spec: str | None, config: str | None, weights: Path | None):
    """The torch reference for an ONNX file: from --model, else from the attnx metadata in the file.

    A name read from the file selects a zoo model only (``check_name_from_file``): a file is data, and an
    importable factory runs only when the user names it with ``--model``.
    """
    from attnx.core.onnx_files import checked_metadata
    from attnx.exporters.registry import check_name_from_file

    meta = checked_metadata(onnx_path)  # readable, external data beside it
    spec = model_spec or meta.get("attnx.model")
    if not spec:
        raise UserError(f"{onnx_path} was not exported by attnx: name its PyTorch model with --model")
    if model_spec is None:
        check_name_from_file(spec, f"the metadata of {onnx_path}")
        config = config or meta.get("attnx.config")
        if weights is None and "attnx.weights" in meta:
            weights = Path(meta["attnx.weights"])
            if not weights.is_file():
                raise UserError(f"{onnx_path} was exported with weights {weights}, which is gone: pass --weights")
    return prepare_model(spec, config=config, weights=weights)


Feed = dict[str, np.ndarray]
Infer = Callable[[Feed], dict[str, np.ndarray]]


def compare_backends(
    reference: Infer, candidate: Infer, feeds: list[tuple[str, Feed]], report: ParityReport,
    io_cases: list | None = None, progress: Callable[[str], None] | None = None,
) -> ParityReport:  # fmt: skip
    """Run every feed through both backends and add a compared case per feed to ``report``.

    With ``io_cases`` (a list), each case's inputs and both backends' outputs are appended to it as
    ``attnx.deploy.parity.saved_io.IOCase`` (for ``--save-io``).
    """
    for label, feed in feeds:
        if progress:
            progress(label)
        ref = reference(feed)
        cand = candidate(feed)
        shapes = {k: tuple(v.shape) for k, v in feed.items()}
        report.cases.append(compare(ref, cand, report.tolerance, label, shapes))
        if io_cases is not None:
            io_cases.append(IOCase(label, feed, {"reference": ref, "candidate": cand}))
    return report


def parity_feeds(
    specs: list, prepared: PreparedModel | None, batches: list[int] | None, input_shape: tuple[int, ...] | None,
    inputs_file: Path | None, seed: int, saved_feeds: list[tuple[str, Feed]] | None = None,
) -> tuple[list[tuple[str, Feed]], str]:  # fmt: skip
    """The inputs of a parity run, as (case label, input name → array), and a description of where they came from.

    ``saved_feeds`` (``attnx parity --load-io``; checked by ``check_io_inputs`` against ``specs``), else
    ``inputs_file`` (.npy/.npz), else seeded random inputs of ``batches`` (default 1 and 3) at ``input_shape``
    (else the model's static or default shape), from ``seed``. Raises UserError for inputs that cannot feed
    ``specs``.
    """
    if saved_feeds is not None:
        check_io_inputs(saved_feeds, specs)
        return saved_feeds, "saved inputs (--load-io)"
    if inputs_file is not None:
        feed = load_inputs(inputs_file, specs)
        return [(f"file ({next(iter(feed.values())).shape[0]} samples)", feed)], str(inputs_file)
    base = _base_shape(specs[0], prepared, input_shape)

    def shapes_for(batch: int) -> dict[str, tuple[int, ...]]:
        shapes = {specs[0].name: (batch, *base[1:])}
        for spec in specs[1:]:  # further inputs: their own static dims, the shared batch
            if any(not isinstance(d, int) for d in spec.shape[1:]):
                raise UserError(f"input '{spec.name}' has dynamic axes beyond the batch: give inputs with --inputs")
            shapes[spec.name] = (batch if spec.is_dynamic(0) else int(spec.shape[0]), *spec.shape[1:])  # type: ignore[misc]
        return shapes

    feeds = []
    for b in batches or [1, 3]:
        if not specs[0].is_dynamic(0) and b != base[0]:
            continue  # a static-batch model runs only its own batch
        shapes = shapes_for(b)
        check_shape(specs[0], shapes[specs[0].name], source="--input-shape")
        feeds.append((f"batch {b}", seeded_inputs(specs, shapes, seed + b)))
    if not feeds:
        feeds.append((f"batch {base[0]}", seeded_inputs(specs, shapes_for(base[0]), seed)))
    return feeds, f"seeded random (seed {seed})"


def run_parity(
    prepared: PreparedModel,
    onnx_path: Path,
    tolerance: Tolerance,
    precision: str = "fp32",
    batches: list[int] | None = None,
    input_shape: tuple[int, ...] | None = None,
    inputs_file: Path | None = None,
    seed: int = 0,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    io_cases: list | None = None,
    saved_feeds: list[tuple[str, Feed]] | None = None,
) -> ParityReport:
    """Feed the same inputs to PyTorch and ONNX Runtime and compare every output."""
    from attnx.deploy.backends.torch.runner import TorchRunner
    from attnx.deploy.bundle.runtime import onnx_file_runner

    # an INT8 file runs as this CPU must run it (TensorRT layout as exact fake-quant; U8U8 where needed)
    with onnx_file_runner(onnx_path, threads=threads) as ort_runner:
        specs = ort_runner.input_specs()
        torch_runner = TorchRunner(prepared.model, specs, ort_runner.output_names())
        shapes = [input_shape]
        if input_shape is None and inputs_file is None and saved_feeds is None:
            shapes = default_check_shapes(onnx_path, specs, prepared)
        feeds, source = [], ""
        for shape in shapes:  # a dynamic H/W is checked at more than one size
            more, source = parity_feeds(specs, prepared, batches, shape, inputs_file, seed, saved_feeds)
            if len(shapes) > 1:
                more = [(f"{'x'.join(map(str, shape[1:]))} {label}", feed) for label, feed in more]
            feeds += more
        report = ParityReport(
            model=prepared.spec, reference="torch", candidate=f"onnxruntime ({onnx_path.name})",
            precision=precision, tolerance=tolerance, input_source=source,
        )  # fmt: skip
        return compare_backends(
            lambda feed: _torch_infer(torch_runner, feed, prepared.spec), ort_runner.infer, feeds, report,
            io_cases, progress,
        )  # fmt: skip


def default_check_shapes(onnx_path: Path, specs: list, prepared: PreparedModel) -> list[tuple[int, ...] | None]:
    """Shapes to check an ONNX with dynamic axes beyond the batch at: the shapes its export checked (recorded in
    its metadata), else the model's default and one moving height and width; [None] for a static graph."""
    if not specs or all(isinstance(d, int) for d in specs[0].shape[1:]) or len(specs) > 1:
        return [None]
    from attnx.exporters.export import read_metadata

    recorded = read_metadata(Path(onnx_path)).get("attnx.checked_shapes", "")
    shapes = []
    for text in recorded.split(","):
        try:
            shape = tuple(int(d) for d in text.split("x"))
        except ValueError:
            continue
        if len(shape) == len(specs[0].shape) and (1, *shape[1:]) not in shapes:
            shapes.append((1, *shape[1:]))
    if len(shapes) >= 2:
        return shapes  # type: ignore[return-value]
    base = shapes[0] if shapes else (full_input_shape(prepared, None) if prepared.sample_shape else None)
    if base is None or len(base) != 4:
        return [base]
    from attnx.exporters.verify import check_shapes

    return check_shapes(prepared.model, tuple(base), dynamic_batch=False, dynamic_hw=True)  # type: ignore[return-value]


def _base_shape(spec, prepared: PreparedModel, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """The (batch-agnostic) shape to feed: the user's, else the model's static dims, else the zoo default."""
    if input_shape is not None:
        return input_shape
    if all(isinstance(d, int) for d in spec.shape[1:]):
        batch = spec.shape[0] if isinstance(spec.shape[0], int) else 1
        return (batch, *spec.shape[1:])
    return full_input_shape(prepared, None)


def _torch_infer(runner, feed: dict[str, np.ndarray], label: str) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    try:
        return runner.infer(feed)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        shape = "x".join(map(str, next(iter(feed.values())).shape))
        from attnx.core.library_errors import shorten

        raise UserError(f"model '{label}' rejects input shape {shape}: {shorten(first)}") from None
