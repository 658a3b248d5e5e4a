"""torch → ONNX export, then checking, shape inference, simplification and an op report.

The file is written to a temporary path beside the destination and renamed into place only when every
step has passed, so a failed export never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.errors import UserError

if TYPE_CHECKING:
    import onnx
    import torch
    from torch import nn

SUPPORTED_OPSETS = (16, 17, 18, 19, 20)
DEFAULT_OPSET = 17
# TorchScript is the default: it exports the whole zoo at every supported opset, takes a fraction of a
# second, and emits attnx custom nodes from autograd Functions. The dynamo exporter silently inlines
# those Functions and cannot go below opset 18 for some graphs.
EXPORTERS = ("torchscript", "dynamo")
IR_VERSION_MAX = 10  # ONNX Runtime 1.18+ reads IR ≤ 10; onnx 1.23 would write 11+ by default


@dataclass
class ExportOptions:
    input_shape: tuple[int, ...]  # full shape of the example input, batch included
    dynamic_batch: bool = True
    dynamic_hw: bool = False
    opset: int = DEFAULT_OPSET
    exporter: str = "torchscript"
    simplify: bool = True
    plugin_ops: frozenset[str] = frozenset()  # attnx ops to export as custom nodes (see exporters.ops)

    def validate(self) -> None:
        if self.opset not in SUPPORTED_OPSETS:
            raise UserError(f"opset {self.opset} is not supported: choose {SUPPORTED_OPSETS[0]}–{SUPPORTED_OPSETS[-1]}")
        if self.exporter not in EXPORTERS:
            raise UserError(f"unknown exporter '{self.exporter}': choose one of {', '.join(EXPORTERS)}")
        if len(self.input_shape) != 4 and self.dynamic_hw:
            raise UserError(f"--dynamic-hw needs an NxCxHxW input, got shape {self.input_shape}")
        if self.plugin_ops and self.exporter != "torchscript":
            raise UserError("custom-op (plugin) export needs --exporter torchscript: dynamo inlines attnx ops")


PLUGIN_MODES = ("none", "trt", "auto")


def parse_trt_target(target: str) -> tuple[int, int] | None:
    """``"trt8.6"`` → (8, 6), ``"trt10"`` → (10, 0); None for non-TensorRT targets."""
    if not target.startswith("trt"):
        return None
    major, _, minor = target[3:].partition(".")
    return int(major), int(minor or 0)


def choose_plugin_ops(mode: str, target: str) -> tuple[frozenset[str], dict[str, str]]:
    """Which attnx ops export as custom nodes, and why, for ``--plugins MODE`` and a target.

    ``none``: standard ONNX only. ``trt``: every attnx op as a custom node. ``auto``: per op and target:
    a custom node only where the target has no native form (e.g. GridSample before TensorRT 8.5);
    ONNX Runtime targets get standard ONNX, which ORT runs natively.
    """
    if mode not in PLUGIN_MODES:
        raise UserError(f"unknown --plugins '{mode}': choose one of {', '.join(PLUGIN_MODES)}")
    from plugins.spec import OPS, plugin_needed

    reasons: dict[str, str] = {}
    chosen: set[str] = set()
    trt = parse_trt_target(target)
    for name, spec in OPS.items():
        since = spec.trt_native_since
        if mode == "none":
            reasons[name] = "standard ONNX (--plugins none)"
        elif mode == "trt":
            chosen.add(name)
            reasons[name] = f"attnx::{name} custom node (--plugins trt)"
        elif trt is None:
            reasons[name] = f"standard ONNX: {target} runs it natively"
        elif plugin_needed(name, trt):
            chosen.add(name)
            why = (f"TensorRT {trt[0]}.{trt[1]} predates its native form ({since[0]}.{since[1]})" if since
                   else "TensorRT has no native fused form")  # fmt: skip
            reasons[name] = f"attnx::{name} custom node: {why}"
        else:
            reasons[name] = f"standard ONNX: TensorRT ≥ {since[0]}.{since[1]} imports it natively"
    return frozenset(chosen), reasons


@dataclass
class ExportResult:
    path: Path
    input_names: list[str]
    output_names: list[str]
    opset: int
    exporter: str
    simplified: bool
    node_count: int
    notes: list[str] = field(default_factory=list)
    ops_used: set[str] = field(default_factory=set)  # plugin-capable ops the model calls


def output_names_for(n_outputs: int) -> list[str]:
    return ["output"] if n_outputs == 1 else [f"output_{i}" for i in range(n_outputs)]


def probe_forward(model: nn.Module, x: torch.Tensor, model_label: str) -> list[torch.Tensor]:
    """Run the model once; a shape it rejects becomes a one-line user error."""
    import torch

    from deploy.backends.torch_runner import flatten_outputs

    try:
        with torch.no_grad():
            return flatten_outputs(model(x))
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"model '{model_label}' rejects input shape {'x'.join(map(str, x.shape))}: {first[:200]}; "
            "pass a shape it accepts with --input-shape"
        ) from None


def export_onnx(
    model: nn.Module,
    out_path: Path,
    options: ExportOptions,
    model_label: str = "model",
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Export ``model`` to ``out_path``; check, infer shapes, simplify; return what was written."""
    import onnx
    import torch

    options.validate()
    model = model.eval()
    shape = list(options.input_shape)
    if options.dynamic_batch and options.exporter == "dynamo" and shape[0] == 1:
        shape[0] = 2  # torch.export specialises a size-1 dim to a constant
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    from exporters import ops

    with ops.record_ops() as ops_used:
        outputs = probe_forward(model, x, model_label)
    input_names = ["input"]
    output_names = output_names_for(len(outputs))

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".{out_path.name}.{os.getpid()}.tmp"
    notes: list[str] = []
    try:
        if options.exporter == "torchscript":
            _export_torchscript(model, x, tmp, options, input_names, output_names, model_label)
        else:
            _export_dynamo(model, x, tmp, options, input_names, output_names, model_label)
        proto = onnx.load(str(tmp))
        opset = _main_opset(proto)
        if opset != options.opset:
            notes.append(f"the {options.exporter} exporter wrote opset {opset} (asked for {options.opset})")
        proto = finalize(proto, simplify=options.simplify, metadata=metadata or {})
        onnx.save(proto, str(tmp))
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(
        path=out_path,
        input_names=input_names,
        output_names=output_names,
        opset=_main_opset(proto),
        exporter=options.exporter,
        simplified=options.simplify,
        node_count=len(proto.graph.node),
        notes=notes,
        ops_used=set(ops_used),
    )


def _dynamic_axes(options: ExportOptions, input_names: list[str], output_names: list[str]) -> dict:
    axes: dict[str, dict[int, str]] = {}
    for name in input_names:
        axes[name] = {}
        if options.dynamic_batch:
            axes[name][0] = "batch"
        if options.dynamic_hw:
            axes[name].update({2: "height", 3: "width"})
    if options.dynamic_batch:
        for name in output_names:
            axes[name] = {0: "batch"}
    return {k: v for k, v in axes.items() if v}


def _export_torchscript(
    model: nn.Module, x: torch.Tensor, path: Path, options: ExportOptions,
    input_names: list[str], output_names: list[str], model_label: str,
) -> None:  # fmt: skip
    import torch

    from exporters import ops

    kwargs: dict[str, Any] = {}
    if options.plugin_ops:
        kwargs["custom_opsets"] = {"attnx": 1}
    try:
        # On failure the exporter prints the whole TorchScript graph from C++ (its log switch is stuck on
        # in torch 2.x); the user gets one line instead.
        with warnings.catch_warnings(), ops.plugin_ops(options.plugin_ops), _quiet_stdout_fd():
            warnings.simplefilter("ignore")  # the legacy-exporter deprecation notice and tracer warnings
            torch.onnx.export(
                model, (x,), str(path), dynamo=False, opset_version=options.opset,
                input_names=input_names, output_names=output_names,
                dynamic_axes=_dynamic_axes(options, input_names, output_names),
                do_constant_folding=True, **kwargs,
            )  # fmt: skip
    except torch.onnx.errors.OnnxExporterError as exc:
        raise UserError(_explain_export_failure(model, x, exc, options, model_label)) from None


def _export_dynamo(
    model: nn.Module, x: torch.Tensor, path: Path, options: ExportOptions,
    input_names: list[str], output_names: list[str], model_label: str,
) -> None:  # fmt: skip
    import torch

    dims: dict[int, Any] = {}
    if options.dynamic_batch:
        dims[0] = torch.export.Dim("batch", min=1, max=4096)
    if options.dynamic_hw:
        dims[2] = torch.export.Dim.AUTO
        dims[3] = torch.export.Dim.AUTO
    sink = io.StringIO()
    try:
        # The dynamo exporter narrates every step on stdout/stderr; keep the CLI's output clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (x,), dynamo=True, opset_version=options.opset,
                input_names=input_names, output_names=output_names,
                dynamic_shapes=(dims,) if dims else None, optimize=True, verbose=False,
            )  # fmt: skip
            program.save(str(path))
    except Exception as exc:  # torch.export raises many types (UserError, Unsupported, ConversionError)
        raise UserError(_explain_export_failure(model, x, exc, options, model_label)) from None


@contextlib.contextmanager
def _quiet_stdout_fd() -> Iterator[None]:
    """Send file descriptor 1 (C++ prints included) to /dev/null for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


_ATEN_OP = re.compile(r"aten(?:::|\.)(\w+)")


def _explain_export_failure(
    model: nn.Module, x: torch.Tensor, exc: BaseException, options: ExportOptions, model_label: str
) -> str:
    """Name the op that failed and the module that called it."""
    text = str(exc)
    match = _ATEN_OP.search(text)
    if not match:
        first = (text.strip().splitlines() or [type(exc).__name__])[0]
        return f"cannot export '{model_label}' with the {options.exporter} exporter: {first[:240]}"
    op = match.group(1)
    where = find_calling_module(model, x, op)
    location = f" in module '{where[0]}' ({where[1]})" if where else ""
    other = "dynamo" if options.exporter == "torchscript" else "torchscript"
    return (
        f"cannot export op aten::{op}{location} of '{model_label}' to ONNX opset {options.opset} "
        f"with the {options.exporter} exporter; try --exporter {other} or a newer --opset, or replace the op"
    )


def find_calling_module(model: nn.Module, x: torch.Tensor, op: str) -> tuple[str, str] | None:
    """Run the model once, recording which submodule executes each aten op; return the first caller of ``op``."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    stack: list[tuple[str, str]] = [("<model>", type(model).__name__)]
    found: list[tuple[str, str]] = []

    def record(name: str) -> None:
        if not found and name.split(".")[0] == op:
            found.append(stack[-1])

    # The exporter names ops at two levels: torch functions (aten::linalg_svdvals, which decomposes
    # before dispatch) and dispatched aten ops (aten.upsample_bicubic2d); watch both.
    class FunctionRecorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            record(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    class DispatchRecorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            record(func.__name__)
            return func(*args, **(kwargs or {}))

    def enter(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, args: object) -> None:
            stack.append((name, type(module).__name__))

        return hook

    def leave(module: nn.Module, args: object, output: object) -> None:  # must return None: keep the output
        stack.pop()

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave))
    try:
        with torch.no_grad(), FunctionRecorder(), DispatchRecorder():
            model(x)
    except Exception:  # diagnosis is best effort; the export error is what the user sees
        pass
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def _main_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def finalize(proto: onnx.ModelProto, simplify: bool, metadata: dict[str, str]) -> onnx.ModelProto:
    """onnx.checker, shape inference and (optionally) simplification; stamp attnx metadata."""
    import onnx

    _register_custom_schemas(proto)
    try:
        onnx.checker.check_model(proto, full_check=False)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=False, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise UserError(f"exported model fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    if simplify:
        proto = _simplify(proto)
    if proto.ir_version > IR_VERSION_MAX:
        proto.ir_version = IR_VERSION_MAX
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "attnx"
    onnx.checker.check_model(proto)
    return proto


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        slim = onnxslim.slim(proto)
    return slim if slim is not None else proto


def _register_custom_schemas(proto: onnx.ModelProto) -> None:
    """Plugin-form models carry attnx nodes; their schemas must be known to onnx before checking."""
    if any(node.domain == "attnx" for node in proto.graph.node):
        from plugins.spec import register_onnx_schemas

        register_onnx_schemas()


def load_onnx(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    """A model as given, or loaded from a path; a missing or unreadable file is a one-line user error."""
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


def read_metadata(path: Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
