"""torch → ONNX export, then checking, shape inference, simplification and an op report.

The file is written to a temporary path beside the destination and renamed into place only when every
step has passed, so a failed export never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError, name_destination
from attnx.core.library_errors import shorten
from attnx.core.onnx_files import load_onnx  # noqa: F401  (re-exported: its home is attnx.core.onnx_files)
from attnx.exporters import attention_form

# ExportOptions and the option checks are imported by the CLI, which must start fast: the attnx modules that
# import torch (exporters.ops, backends.torch.runner) or numpy (exporters.verify, plugins.registry) are
# imported inside the functions that use them.

if TYPE_CHECKING:
    import onnx
    import torch
    from torch import nn

    from attnx.exporters.verify import BakedNode

SUPPORTED_OPSETS = (16, 17, 18, 19, 20, 21, 22, 23)  # 23: the Attention op (see attnx.exporters.attention_form)
DEFAULT_OPSET = 17
# TorchScript is the default: it exports the whole zoo at every supported opset, takes a fraction of a
# second, and emits attnx custom nodes from autograd Functions. The dynamo exporter silently inlines
# those Functions and cannot go below opset 18 for some graphs.
EXPORTERS = ("torchscript", "dynamo")
# --exporter auto (the default): the exporters in this order; the first whose graph passes parity with PyTorch at
# every checked shape (attnx.exporters.verify) is kept. TorchScript first: it is fast, keeps attnx custom nodes and
# handles SDPA boolean masks that dynamo gets wrong; dynamo next: it traces sizes symbolically, so a graph that
# bakes the example's size with TorchScript (a token count, a mask, an interpolate size) is often dynamic there.
AUTO_ORDER = EXPORTERS
EXPORTER_CHOICES = ("auto", *EXPORTERS)
IR_VERSION_MAX = 10  # ONNX Runtime 1.18+ reads IR ≤ 10; onnx 1.23 would write 11+ by default


@dataclass
class ExportOptions:
    """How to export: the example input's full shape and the ONNX graph's settings.

    ``input_shape`` is the whole example input, batch included (N, C, H, W for images); ``dynamic_batch`` and
    ``dynamic_hw`` make axis 0 and axes 2-3 symbolic. :meth:`validate` checks the choices.
    """

    input_shape: tuple[int, ...]  # full shape of the example input, batch included
    dynamic_batch: bool = True
    dynamic_hw: bool = False
    opset: int = DEFAULT_OPSET
    exporter: str = "auto"
    simplify: bool = True
    verify: bool = True  # run PyTorch and ONNX Runtime at the export shape and a shape moving every dynamic axis
    plugin_ops: frozenset[str] = frozenset()  # attnx ops to export as custom nodes (see attnx.exporters.ops)
    attention: str = "auto"  # fused | decomposed | auto (see attnx.exporters.attention_form)
    attention_target: str = "ort"  # the target --attention auto decides for
    mha_fused: bool = False  # set by the export: nn.MultiheadAttention called without weights (fused form)

    def validate(self) -> None:
        """Check the opset, the exporter and the shape against what attnx supports.

        Raises:
            UserError: an unsupported opset, an unknown exporter or attention form, or ``dynamic_hw``
                without a 4-D shape.
        """
        if self.opset not in SUPPORTED_OPSETS:
            raise UserError(f"opset {self.opset} is not supported: choose {SUPPORTED_OPSETS[0]}–{SUPPORTED_OPSETS[-1]}")
        if self.exporter not in EXPORTER_CHOICES:
            raise UserError(f"unknown exporter '{self.exporter}': choose one of {', '.join(EXPORTER_CHOICES)}")
        if len(self.input_shape) != 4 and self.dynamic_hw:
            raise UserError(f"--dynamic-hw needs an NxCxHxW input, got shape {self.input_shape}")
        if self.plugin_ops and self.exporter == "dynamo":
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
    from attnx.plugins.registry import OPS, plugin_needed

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
    """What :func:`export_onnx` wrote: the file, its I/O names, opset and exporter, and the shapes checked.

    ``checked_shapes`` are full input shapes (N, C, H, W) where ONNX Runtime matched PyTorch.
    """

    path: Path
    input_names: list[str]
    output_names: list[str]
    opset: int
    exporter: str
    simplified: bool
    node_count: int
    notes: list[str] = field(default_factory=list)
    ops_used: set[str] = field(default_factory=set)  # plugin-capable ops the model calls
    checked_shapes: list[tuple[int, ...]] = field(default_factory=list)  # where ORT matched PyTorch


def output_names_for(n_outputs: int) -> list[str]:
    """The ONNX output names attnx gives a model with ``n_outputs`` outputs: ``output``, or ``output_0`` ..."""
    return ["output"] if n_outputs == 1 else [f"output_{i}" for i in range(n_outputs)]


def _shorten(text: str) -> str:
    return shorten(text)


def probe_forward(model: nn.Module, x: torch.Tensor, model_label: str) -> list[torch.Tensor]:
    """Run the model once; a shape it rejects becomes a one-line user error."""
    import torch

    from attnx.deploy.backends.torch.runner import flatten_outputs

    try:
        with torch.no_grad():
            return flatten_outputs(model(x))
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"model '{model_label}' rejects input shape {'x'.join(map(str, x.shape))}: {_shorten(first)}; "
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
    import torch

    from attnx.exporters.verify import check_shapes, fmt_shape

    options.validate()
    model = model.eval()
    x = torch.randn(*options.input_shape, generator=torch.Generator().manual_seed(0))
    from attnx.exporters import ops

    with ops.record_ops() as ops_used:
        outputs = probe_forward(model, x, model_label)
    input_names = ["input"]
    output_names = output_names_for(len(outputs))
    shapes = [tuple(options.input_shape)]
    if options.verify:
        shapes = check_shapes(model, tuple(options.input_shape), options.dynamic_batch, options.dynamic_hw)
    metadata = {**(metadata or {}), "attnx.input_shape": fmt_shape(options.input_shape),
                "attnx.checked_shapes": ",".join(fmt_shape(s) for s in shapes)}  # fmt: skip

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".{out_path.name}.{os.getpid()}.tmp"
    order = list(AUTO_ORDER) if options.exporter == "auto" else [options.exporter]
    options, attention_why = attention_form.resolve_options(model, x, options)
    metadata["attnx.attention"] = options.attention
    if options.attention == "fused":
        order = [e for e in order if e == "dynamo"]  # only dynamo writes the Attention node
    if options.plugin_ops:
        order = [e for e in order if e == "torchscript"]  # dynamo inlines attnx ops
    refused: list[tuple[str, str]] = []
    try:
        for exporter in order:
            opts = dataclasses.replace(options, exporter=exporter)
            try:
                proto, notes = _export_checked(model, tmp, opts, input_names, output_names, model_label, metadata,
                                               shapes)  # fmt: skip
            except UserError as exc:
                refused.append((exporter, str(exc)))
                continue
            if options.exporter == "auto":
                why = "; ".join(f"{e} refused: {r}" for e, r in refused)
                checked = f"passes parity with PyTorch at {', '.join(fmt_shape(s) for s in shapes)}"
                kept = f"exporter: kept {exporter} (tried in the order {', '.join(order)}; its graph {checked})"
                notes.insert(0, kept + (f"; {why}" if why else ""))
            notes.append(f"{attention_form.form_note(proto, options.attention)} — {attention_why}")
            os.replace(tmp, out_path)
            break
        else:
            raise UserError(_refusal_message(model, options, order, refused, input_names, output_names, model_label,
                                             metadata, shapes, tmp))  # fmt: skip
    except OSError as exc:
        name_destination(exc, out_path, tmp)  # the user's path, not the hidden work file's (or none)
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only folder refuses even this: the error that got here is the one to report
            pass
    return ExportResult(
        path=out_path,
        input_names=input_names,
        output_names=output_names,
        opset=_main_opset(proto),
        exporter=exporter,
        simplified=options.simplify,
        node_count=len(proto.graph.node),
        notes=notes,
        ops_used=set(ops_used),
        checked_shapes=shapes if options.verify and not options.plugin_ops else [],
    )


def export_raw(model: nn.Module, path: Path, options: ExportOptions, shape: tuple[int, ...],
               input_names: list[str] | None = None, output_names: list[str] | None = None,
               model_label: str = "model") -> None:  # fmt: skip
    """Run one exporter (``options.exporter``) at ``shape`` into ``path``: no checks, no simplification."""
    import torch

    shape = list(shape)
    if options.dynamic_batch and options.exporter == "dynamo" and shape[0] == 1:
        shape[0] = 2  # torch.export specialises a size-1 dim to a constant
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    input_names = input_names or ["input"]
    if output_names is None:
        from attnx.deploy.backends.torch.runner import flatten_outputs

        with torch.no_grad():
            output_names = output_names_for(len(flatten_outputs(model(x))))
    with attention_form.exporting(options.attention, options.opset, options.exporter, options.mha_fused):
        if options.exporter == "torchscript":
            _export_torchscript(model, x, path, options, input_names, output_names, model_label)
        else:
            _export_dynamo(model, x, path, options, input_names, output_names, model_label)


def _export_checked(model: nn.Module, tmp: Path, options: ExportOptions, input_names: list[str],
                    output_names: list[str], model_label: str, metadata: dict[str, str],
                    shapes: list[tuple[int, ...]]) -> tuple[onnx.ModelProto, list[str]]:  # fmt: skip
    """Export with ``options.exporter`` into ``tmp``, finalize, and check it at ``shapes`` (a UserError if not)."""
    import onnx

    notes: list[str] = []
    export_raw(model, tmp, options, tuple(options.input_shape), input_names, output_names, model_label)
    proto = onnx.load(str(tmp))
    opset = _main_opset(proto)
    if opset != options.opset:
        notes.append(f"the {options.exporter} exporter wrote opset {opset} (asked for {options.opset})")
    proto = finalize(proto, simplify=options.simplify, metadata=metadata)
    onnx.save(proto, str(tmp))
    if options.verify and not options.plugin_ops:  # custom nodes need their plugins: checked by parity
        from attnx.exporters.verify import fixed_node, refusal, run_checks

        verification = run_checks(model, tmp, shapes)
        if not verification.passed:
            import tempfile

            fail = verification.first_failure
            baked = None
            if fail is not None and fail.node:
                baked = fixed_node(proto, fail.node)  # ORT stopped at a node whose size input is a constant
            if baked is None and fail is not None and fail.shape != tuple(options.input_shape):
                with tempfile.TemporaryDirectory(prefix="attnx-locate-") as work:
                    baked = locate_fixed_size(model, options, fail.shape, Path(work))
            raise UserError(refusal(options, verification, baked))
    return proto, notes


def locate_fixed_size(model: nn.Module, options: ExportOptions, other: tuple[int, ...], work: Path) -> BakedNode | None:
    """Export again at ``other`` (same exporter, same dynamic axes) and find the node that differs.

    ``other`` is a full input shape (N, C, H, W). Returns the node whose constant input holds a size baked from
    the export shape, or None when the exports cannot be compared (the diagnosis is best effort: never raises).
    """
    import onnx

    from attnx.exporters.verify import find_baked_node

    try:
        pa, pb = work / "at_export.onnx", work / "at_other.onnx"
        export_raw(model, pa, options, tuple(options.input_shape))
        export_raw(model, pb, dataclasses.replace(options, input_shape=tuple(other)), tuple(other))
        return find_baked_node(onnx.load(str(pa)), onnx.load(str(pb)))
    except (UserError, Exception):  # the diagnosis is best effort: the refusal itself stands
        return None


def _refusal_message(model: nn.Module, options: ExportOptions, order: list[str], refused: list[tuple[str, str]],
                     input_names: list[str], output_names: list[str], model_label: str, metadata: dict[str, str],
                     shapes: list[tuple[int, ...]], tmp: Path) -> str:  # fmt: skip
    """Every exporter tried failed: their reasons, and the option that works when there is one."""
    from attnx.exporters.verify import fmt_shape

    reasons = "; ".join(f"{e}: {r}" for e, r in refused)
    fixes = []
    if options.dynamic_hw or options.dynamic_batch:
        fixes.append("a static shape (" + " and ".join(
            f for f, on in (("--static-batch", options.dynamic_batch), ("drop --dynamic-hw", options.dynamic_hw)) if on
        ) + ")")  # fmt: skip
    if options.exporter != "auto" and not options.plugin_ops:
        other = next(e for e in EXPORTERS if e != options.exporter)
        try:  # does the other exporter work? say so only if it does
            _export_checked(model, tmp, dataclasses.replace(options, exporter=other), input_names, output_names,
                            model_label, metadata, shapes)  # fmt: skip
            checked = ", ".join(fmt_shape(s) for s in shapes) if options.verify else fmt_shape(options.input_shape)
            return (f"cannot export '{model_label}': {reasons}; fix: --exporter {other} exports it and passes parity "
                    f"with PyTorch at {checked} (or --exporter auto)")  # fmt: skip
        except UserError as exc:
            reasons += f"; --exporter {other} fails too: {exc}"
    fix = ", or ".join(fixes + ["change the module named above"])
    tried = " and ".join(order)
    return f"cannot export '{model_label}' ({tried} tried): {reasons}; fix: {fix}"


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

    from attnx.exporters import ops

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
        # The dynamo exporter narrates every step on stdout/stderr (Python prints, logging handlers holding the
        # original streams, C++ prints); keep the CLI's output clean at the file-descriptor level.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
                _quiet_stdout_fd(also_stderr=True):  # fmt: skip
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
def _quiet_stdout_fd(also_stderr: bool = False) -> Iterator[None]:
    """Send file descriptor 1 (and 2 with ``also_stderr``; C++ prints included) to /dev/null for the duration."""
    fds = (1, 2) if also_stderr else (1,)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, keep in zip(fds, saved):
            os.dup2(keep, fd)
            os.close(keep)
        os.close(devnull)


_ATEN_OP = re.compile(r"aten(?:::|\.)(\w+)|(?:ONNX export of(?: operator)?|operator)\s+'?(?:aten::)?(\w+)")
# Boilerplate around the reason: the invitation to file an issue and TorchScript's dump of the graph value.
_BOILERPLATE = (re.compile(r"\s*Please feel free to request support.*?(?:issues|$)", re.S),
                re.compile(r"\s*\[Caused by the value .*", re.S),
                re.compile(r"\s*\(Refer to the full stack trace above.*", re.S))  # fmt: skip


def export_reason(exc: BaseException) -> str:
    """The exporter's whole reason, without the boilerplate and the graph dump around it (never cut mid-word)."""
    text = str(exc).strip() or type(exc).__name__
    for pattern in _BOILERPLATE:
        text = pattern.sub("", text)
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    reason = " ".join((paragraphs[0] if paragraphs else text).split())
    return shorten(reason, 600)


def _explain_export_failure(
    model: nn.Module, x: torch.Tensor, exc: BaseException, options: ExportOptions, model_label: str
) -> str:
    """The whole reason, the op and the module that called it (the fix is added by the caller)."""
    text = str(exc)
    reason = export_reason(exc)
    match = _ATEN_OP.search(text)
    op = (match.group(1) or match.group(2)) if match else None
    where = find_failing_module(model, x, op, options) if op else None
    if where is None:
        where = _module_in_text(model, text)
    location = f" in module '{where[0]}' ({where[1]})" if where else ""
    what = f"op aten::{op}" if op else f"'{model_label}'"
    return (f"cannot export {what}{location} of '{model_label}' to ONNX opset {options.opset} with the "
            f"{options.exporter} exporter: {reason}")


def _module_in_text(model: nn.Module, text: str) -> tuple[str, str] | None:
    """A module path the exporter's message names (dynamo's stack traces and name scopes quote them)."""
    names = {name: type(m).__name__ for name, m in model.named_modules() if name}
    found = [n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", text)
             or f"self.{n}".replace(".", "_") in text or f"L['self'].{n}" in text]  # fmt: skip
    if not found:
        return None
    best = max(found, key=len)  # the innermost
    return best, names[best]


def find_failing_module(model: nn.Module, x: torch.Tensor, op: str, options: ExportOptions) -> tuple[str, str] | None:
    """The module that called ``op`` in the failing way: when several modules call it, each is exported alone
    (with the input it received) with the same exporter, and the first that fails is named."""
    import torch

    callers = find_calling_modules(model, x, op)
    if len(callers) <= 1:
        return callers[0][:2] if callers else None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="attnx-which-") as work:
        for name, kind, args in callers:
            module = model.get_submodule(name) if name != "<model>" else model
            if name == "<model>" or not args:
                continue
            try:
                with warnings.catch_warnings(), _quiet_stdout_fd(also_stderr=True):
                    warnings.simplefilter("ignore")
                    torch.onnx.export(module, args, str(Path(work) / "m.onnx"), dynamo=options.exporter == "dynamo",
                                      opset_version=options.opset)  # fmt: skip
            except Exception:  # this one fails alone: the culprit
                return name, kind
    return callers[0][:2]


def find_calling_module(model: nn.Module, x: torch.Tensor, op: str) -> tuple[str, str] | None:
    """The first module that calls ``op`` (see :func:`find_calling_modules`)."""
    callers = find_calling_modules(model, x, op)
    return callers[0][:2] if callers else None


def find_calling_modules(model: nn.Module, x: torch.Tensor, op: str) -> list[tuple[str, str, tuple]]:
    """Run the model once, recording which submodule executes each aten op: every caller of ``op``, in order, as
    (path, class, the inputs that module received)."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    stack: list[tuple[str, str, tuple]] = [("<model>", type(model).__name__, (x,))]
    found: list[tuple[str, str, tuple]] = []

    def record(name: str) -> None:
        if name.split(".")[0] == op and (not found or found[-1][0] != stack[-1][0]):
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
            stack.append((name, type(module).__name__, tuple(args) if isinstance(args, tuple) else (args,)))

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
    return found


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
        from attnx.plugins.registry import register_onnx_schemas

        register_onnx_schemas()


def read_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file at ``path`` as a dict (external data is not loaded).

    Raises whatever ``onnx.load`` raises for a missing or corrupt file.
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
