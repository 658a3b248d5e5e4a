"""Options shared by several commands, each defined once with one help text, and the parsers of their values.

Groups: the model (spec, --config, --weights), the shape (--input-shape, --dynamic-batch/--static-batch,
--dynamic-hw), the export (--opset, --exporter, --simplify, --target, --attention, --plugins), the numerics
(--precision(s), --backend, --cpu-target, --calib, --seed), the runtime (--threads, --allow-failed-parity) and the
serving engine pool that ``serve`` and ``k8s`` both configure (--max-batch, --max-delay-ms, --pool-size); then
what several commands read or write (-o/--output, --batch, --iterations, --json, --junit, NAME=PATH bundles).
Where a command needs another default (``bench --threads 1`` for stable timings) the factory takes it and the
help says it. Each group is a help panel, so ``attnx CMD --help`` shows the same groups in every command.

``export`` and ``run`` take the export options they share as one :class:`ExportChoices` (see
:func:`with_group`), so the two read the same options, in the same order, with the same defaults.

Options that share a name but not a meaning stay apart, each help saying which it is: ``build --max-batch``
(the bundle's largest batch), the engine pool's ``--max-batch`` (``serve``, ``k8s``: rows per engine run) and
``triton-repo --max-batch`` (Triton's max_batch_size); ``zoo --config`` (a filter) and the model's ``--config``;
the ``--json`` / ``--markdown`` flags of ``cpu`` and ``zoo`` (print) and the file options of the others.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import typer

from attnx.core.errors import UserError

SHAPE, EXPORT, NUMERICS, RUNTIME, POOL = "Shape", "Export", "Precision", "Runtime", "Engine pool"

# typer.Option under one group's help panel: each group's options show under its heading in every command
_shape, _export, _numerics, _runtime, _pool = (
    functools.partial(typer.Option, rich_help_panel=panel) for panel in (SHAPE, EXPORT, NUMERICS, RUNTIME, POOL)
)

# --- the model -------------------------------------------------------------------------------------------

MODEL_SPEC = typer.Argument(..., help="zoo name, package.module:factory, timm:NAME or torchvision:NAME")
MODEL_CONFIG = typer.Option(None, "--config", help="zoo model size config (see `attnx zoo`); default: tiny")
WEIGHTS = typer.Option(None, "--weights", help="checkpoint: .safetensors, or a torch.save'd state dict")
NUM_CLASSES = typer.Option(None, "--num-classes", help="override the model's number of classes")


def reference_model(unset: str) -> Any:
    """``--model``: the PyTorch model the results are judged or timed against; ``unset`` says what is used when
    it is not given."""
    return typer.Option(None, "--model", help=f"the PyTorch reference, a model spec; unset: {unset}")


REFERENCE_MODEL = reference_model("the model the .onnx file or bundle names, if it is a zoo model")

# --- the shape -------------------------------------------------------------------------------------------

INPUT_SHAPE = _shape(None, "--input-shape", help="example input NxCxHxW; default: the zoo model's")
DYNAMIC_BATCH = _shape(True, "--dynamic-batch/--static-batch", help="export a dynamic batch axis")
DYNAMIC_HW = _shape(False, "--dynamic-hw", help="also make height and width dynamic")

# --- the export ------------------------------------------------------------------------------------------

TARGET_HELP = "deployment target for the op report: ort, trt8.6, trt10, trt11"
OPSET = _export(17, "--opset", help="ONNX opset, 16–23 (23: attention as one Attention node, see --attention)")
EXPORTER = _export("auto", "--exporter", help="auto (torchscript, then dynamo: the first whose graph matches "
                   "PyTorch at every checked shape), torchscript or dynamo")  # fmt: skip
SIMPLIFY = _export(True, "--simplify/--no-simplify", help="simplify the graph with onnxslim")
TARGET = _export("ort", "--target", help=TARGET_HELP)
ATTENTION = _export("auto", "--attention", help="attention form: fused (one ONNX Attention node: opset 23, a target "
                    "that imports it), decomposed (MatMul/Softmax/MatMul), auto (fused where the opset and the "
                    "target allow it)")  # fmt: skip


def plugins(default: str) -> Any:
    """``--plugins``: attnx custom ops; ``export``/``run`` default to none, ``build`` to auto."""
    return _export(default, "--plugins", help="attnx custom ops: none (standard ONNX), trt (custom nodes), auto "
                   "(per op and target or backend)")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ExportChoices:
    """The export options ``export`` and ``run`` both take, as a command receives them under :func:`with_group`.

    Each field is one option: its default is the typer option (defined above, once), so typer shows the same
    names, defaults, help and panels in both commands. ``export`` adds what only it offers (--dynamic-batch,
    --simplify: ``run`` always exports a simplified graph with a dynamic batch axis).
    """

    input_shape: str | None = INPUT_SHAPE
    dynamic_hw: bool = DYNAMIC_HW
    opset: int = OPSET
    exporter: str = EXPORTER
    target: str = TARGET
    plugins: str = plugins("none")
    attention: str = ATTENTION

    def shape(self) -> tuple[int, ...] | None:
        """``--input-shape`` as a tuple of ints; None when not given. Raises UserError."""
        return parse_shape(self.input_shape)

    def pipeline_kwargs(self) -> dict[str, Any]:
        """The choices as keyword arguments of :func:`attnx.deploy.apis.run.run_pipeline` (the shape parsed)."""
        return {**dataclasses.asdict(self), "input_shape": self.shape()}


def with_group(group: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator: the command takes ``group``'s options (a dataclass whose field defaults are typer options,
    such as :class:`ExportChoices`) as its one keyword-only parameter annotated ``group``.

    typer sees each field as an option of its own, in that parameter's place; the command receives the
    dataclass. A field named like another parameter of the command is a TypeError, at import.
    """
    fields = dataclasses.fields(group)
    field_types = get_type_hints(group)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        hints = get_type_hints(command)
        signature = inspect.signature(command)
        [name] = [n for n in signature.parameters if hints.get(n) is group]
        clash = {f.name for f in fields} & set(signature.parameters)
        if clash:
            raise TypeError(f"{command.__name__}: {', '.join(sorted(clash))} also in {group.__name__}")
        params: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            if p.name != name:
                params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
                continue
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                         annotation=field_types[f.name]) for f in fields]  # fmt: skip

        @functools.wraps(command)
        def with_options(**kwargs: Any) -> Any:
            kwargs[name] = group(**{f.name: kwargs.pop(f.name) for f in fields})
            return command(**kwargs)

        # typer reads the options from the signature and the types from the annotations: the group's in place
        with_options.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        with_options.__annotations__ = {p.name: p.annotation for p in params}
        return with_options

    return decorate


# --- the numerics ----------------------------------------------------------------------------------------

PRECISION_HELP = "numeric precision (and the parity tolerance policy that goes with it)"


def precision(default: str | None, choices: str) -> Any:
    """``--precision``: ``choices`` are what this command accepts, with its default."""
    return _numerics(default, "--precision", help=f"{PRECISION_HELP}: {choices}")


PRECISIONS = _numerics("fp32,int8", "--precisions", help=f"{PRECISION_HELP}, one bundle each: e.g. fp32,fp16,int8 "
                       "('' to stop after parity)")  # fmt: skip
BACKEND = _numerics("auto", "--backend", help="auto (TensorRT if a GPU is usable, else ORT), ort, trt, openvino")
CPU_TARGET = _numerics("native", "--cpu-target", help="INT8 for which CPU: native (this one), portable (7-bit "
                       "weights: every CPU), vnni (full 8-bit weights for VNNI/AMX/ARM CPUs); see `attnx "
                       "cpu`")  # fmt: skip
CALIB = _numerics(None, "--calib", help="int8 calibration option KEY=VALUE (repeatable): source=digits|photos|"
                  "synthetic|DIR|FILE, count, method=minmax|entropy|percentile, sensitivity=true, ... (see "
                  "calibration/config.py)")  # fmt: skip
SEED = _numerics(0, "--seed", help="seed of the random inputs (parity, and calibration without data)")

# --- the runtime -----------------------------------------------------------------------------------------

THREADS_HELP = "intra-op threads per inference session (per engine in the pool for serve)"


def threads(default: int | None, why: str) -> Any:
    """``--threads`` with this command's default (typer prints it) and ``why`` that default (or, for None,
    what happens unset)."""
    return _runtime(default, "--threads", help=f"{THREADS_HELP}; {why}")


ALLOW_FAILED_PARITY = _runtime(False, "--allow-failed-parity", help="accept bundles whose build-time parity check "
                               "failed (with a warning naming each)")  # fmt: skip

# --- the engine pool (serve, k8s) ------------------------------------------------------------------------

POOL_MAX_BATCH = _pool(8, "--max-batch", help="dynamic batching: most rows per engine run, at most the bundle's "
                       "largest batch (build --max-batch); 1: off")  # fmt: skip
POOL_MAX_DELAY_MS = _pool(1.0, "--max-delay-ms", help="dynamic batching: longest wait to fill a batch")
POOL_SIZE = _pool(1, "--pool-size", help="engine sessions / contexts per model (per replica for k8s)")

# --- what commands read and write ------------------------------------------------------------------------

NAMED_BUNDLES = typer.Argument(..., help="bundle folders, as PATH or NAME=PATH")
JUNIT = typer.Option(None, "--junit", help="write a JUnit XML report (for CI systems)")


def output(what: str) -> Any:
    """``-o/--output`` (required): ``what`` the command writes there."""
    return typer.Option(..., "-o", "--output", help=what)


def json_out(what: str) -> Any:
    """``--json FILE``: ``what`` the command writes there (it prints its table as well)."""
    return typer.Option(None, "--json", help=f"also write {what} as JSON to this file")


def batches(default: str, what: str) -> Any:
    """``--batch`` (read with :func:`parse_batches`): ``what`` is done at each batch size."""
    return typer.Option(default, "--batch", help=f"batch sizes, comma-separated: {what}")


def iterations(default: int) -> Any:
    """``--iterations`` of the benchmark (``bench`` and the pipeline's last step in ``run``)."""
    return typer.Option(default, "--iterations", help="timed iterations per target and batch size in the benchmark")


# --- parsers ---------------------------------------------------------------------------------------------


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``--input-shape`` text (``1x3x224x224``) as a tuple of ints; None when not given. Raises UserError."""
    # parity.inputs imports numpy: loaded when a shape is given, so `attnx --help` stays instant
    from attnx.deploy.parity.inputs import parse_shape as parse

    return parse(text) if text else None


def parse_batches(text: str) -> list[int]:
    """``--batch`` text (``1,3``) as positive batch sizes. Raises UserError for anything else."""
    try:
        values = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"bad --batch '{text}': give batch sizes like 1,3") from None
    if not values or min(values) < 1:
        raise UserError(f"bad --batch '{text}': batch sizes must be positive integers, like 1,3")
    return values


def calibration_options(calib: list[str] | None, cpu_target: str, input_shape: str | None) -> dict[str, Any]:
    """``--calib KEY=VALUE`` items plus ``--cpu-target`` as one calibration options dict.

    ``--input-shape`` is enough: it is the calibration's input_shape too (a graph with dynamic H/W needs one),
    unless ``--calib input_shape=...`` says otherwise. Raises UserError for a malformed item.
    """
    # loaded here, not at the top: it reads CPU features on import, and `attnx --help` stays instant
    from attnx.calibration.config import parse_cli_options

    options = parse_cli_options(calib or [])
    options.setdefault("cpu_target", cpu_target)
    if input_shape and options.get("input_shape") is None:
        shape = parse_shape(input_shape)
        if shape is not None and len(shape) == 4:
            options["input_shape"] = "x".join(map(str, shape[1:]))
    return options
