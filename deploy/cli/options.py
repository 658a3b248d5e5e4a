"""Options shared by several commands, each defined once with one help text, and the parsers of their values.

Groups: the model (spec, --config, --weights), the shape (--input-shape, --dynamic-batch/--static-batch,
--dynamic-hw), the export (--opset, --exporter, --simplify, --target, --attention, --plugins), the numerics
(--precision(s), --backend, --cpu-target, --calib, --seed), the runtime (--threads, --allow-failed-parity) and the
serving engine pool that ``serve`` and ``k8s`` both configure (--max-batch, --max-delay-ms, --pool-size).
Where a command needs another default (``bench --threads 1`` for stable timings) the factory takes it and the
help says it. Each group is a help panel, so ``attnx CMD --help`` shows the same groups in every command.
"""

from __future__ import annotations

from typing import Any

import typer

from attnx.core.errors import UserError

SHAPE, EXPORT, NUMERICS, RUNTIME, POOL = "Shape", "Export", "Precision", "Runtime", "Engine pool"

# --- the model -------------------------------------------------------------------------------------------

MODEL_SPEC = typer.Argument(..., help="zoo name, package.module:factory, timm:NAME or torchvision:NAME")
MODEL_CONFIG = typer.Option(None, "--config", help="zoo model size config (see `attnx zoo`); default: tiny")
WEIGHTS = typer.Option(None, "--weights", help="checkpoint: .safetensors, or a torch.save'd state dict")
NUM_CLASSES = typer.Option(None, "--num-classes", help="override the model's number of classes")
REFERENCE_MODEL = typer.Option(
    None, "--model", help="the PyTorch reference (the file's own name is used only if it is a zoo model)"
)

# --- the shape -------------------------------------------------------------------------------------------

INPUT_SHAPE = typer.Option(
    None, "--input-shape", help="example input NxCxHxW; default: the zoo model's", rich_help_panel=SHAPE
)
DYNAMIC_BATCH = typer.Option(
    True, "--dynamic-batch/--static-batch", help="export a dynamic batch axis", rich_help_panel=SHAPE
)
DYNAMIC_HW = typer.Option(False, "--dynamic-hw", help="also make height and width dynamic", rich_help_panel=SHAPE)

# --- the export ------------------------------------------------------------------------------------------

TARGET_HELP = "deployment target for the op report: ort, trt8.6, trt10, trt11"
OPSET = typer.Option(
    17, "--opset", help="ONNX opset, 16–23 (23: attention as one Attention node, see --attention)",
    rich_help_panel=EXPORT,
)  # fmt: skip
EXPORTER = typer.Option(
    "auto", "--exporter", help="auto (torchscript, then dynamo: the first whose graph matches PyTorch at every checked "
    "shape), torchscript or dynamo", rich_help_panel=EXPORT,
)  # fmt: skip
SIMPLIFY = typer.Option(
    True, "--simplify/--no-simplify", help="simplify the graph with onnxslim", rich_help_panel=EXPORT
)
TARGET = typer.Option("ort", "--target", help=TARGET_HELP, rich_help_panel=EXPORT)
ATTENTION = typer.Option(
    "auto", "--attention", help="attention form: fused (one ONNX Attention node: opset 23, a target that imports "
    "it), decomposed (MatMul/Softmax/MatMul), auto (fused where the opset and the target allow it)",
    rich_help_panel=EXPORT,
)  # fmt: skip


def plugins(default: str) -> Any:
    """``--plugins``: attnx custom ops; ``export``/``run`` default to none, ``build`` to auto."""
    return typer.Option(
        default, "--plugins", help="attnx custom ops: none (standard ONNX), trt (custom nodes), auto (per op and "
        "target or backend)", rich_help_panel=EXPORT,
    )  # fmt: skip


# --- the numerics ----------------------------------------------------------------------------------------

PRECISION_HELP = "numeric precision (and the parity tolerance policy that goes with it)"


def precision(default: str | None, choices: str) -> Any:
    """``--precision``: ``choices`` are what this command accepts, with its default."""
    return typer.Option(default, "--precision", help=f"{PRECISION_HELP}: {choices}", rich_help_panel=NUMERICS)


PRECISIONS = typer.Option(
    "fp32,int8", "--precisions", help=f"{PRECISION_HELP}, one bundle each: e.g. fp32,fp16,int8 ('' to stop after "
    "parity)", rich_help_panel=NUMERICS,
)  # fmt: skip
BACKEND = typer.Option(
    "auto", "--backend", help="auto (TensorRT if a GPU is usable, else ORT), ort, trt, openvino",
    rich_help_panel=NUMERICS,
)  # fmt: skip
CPU_TARGET = typer.Option(
    "native", "--cpu-target", help="INT8 for which CPU: native (this one), portable (7-bit weights: every CPU), "
    "vnni (full 8-bit weights for VNNI/AMX/ARM CPUs); see `attnx cpu`", rich_help_panel=NUMERICS,
)  # fmt: skip
CALIB = typer.Option(
    None, "--calib", help="int8 calibration option KEY=VALUE (repeatable): source=digits|photos|synthetic|DIR|FILE, "
    "count, method=minmax|entropy|percentile, sensitivity=true, ... (see calibration/config.py)",
    rich_help_panel=NUMERICS,
)  # fmt: skip
SEED = typer.Option(0, "--seed", help="seed of the random inputs (parity, and calibration without data)",
                    rich_help_panel=NUMERICS)  # fmt: skip

# --- the runtime -----------------------------------------------------------------------------------------

THREADS_HELP = "intra-op threads per inference session (per engine in the pool for serve)"


def threads(default: int | None, why: str) -> Any:
    """``--threads`` with this command's default (typer prints it) and ``why`` that default (or, for None,
    what happens unset)."""
    return typer.Option(default, "--threads", help=f"{THREADS_HELP}; {why}", rich_help_panel=RUNTIME)


ALLOW_FAILED_PARITY = typer.Option(
    False, "--allow-failed-parity", help="run bundles whose build-time parity check failed (warns on each load)",
    rich_help_panel=RUNTIME,
)  # fmt: skip

# --- the engine pool (serve, k8s) ------------------------------------------------------------------------

POOL_MAX_BATCH = typer.Option(
    8, "--max-batch", help="dynamic batching: most rows per engine run (1: off)", rich_help_panel=POOL
)
POOL_MAX_DELAY_MS = typer.Option(
    1.0, "--max-delay-ms", help="dynamic batching: longest wait to fill a batch", rich_help_panel=POOL
)
POOL_SIZE = typer.Option(
    1, "--pool-size", help="engine sessions / contexts per model (per replica for k8s)", rich_help_panel=POOL
)

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

