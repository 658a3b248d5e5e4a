"""``attnx precision``: bake fp16 or int8 into an ONNX graph with the attention-aware plan."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from attnx.core.errors import UserError
from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console


def precision(
    onnx_path: Path = typer.Argument(..., help="the fp32 .onnx model"),
    output: Path = opt.output("the precision-baked .onnx to write"),
    precision: str = opt.precision(..., "fp16 or int8"),
    style: str = typer.Option("ort", "--style", help="Q/DQ layout: ort (u8/s8, fused by ORT) or trt (symmetric)"),
    calib: list[str] = opt.CALIB,
    cpu_target: str = opt.CPU_TARGET,
    input_shape: str = opt.INPUT_SHAPE,
) -> None:
    """Bake a precision into an ONNX graph with attnx's attention-aware plan (printed, and saved beside it)."""
    # calibration.precision imports onnx: loaded when the command runs
    from attnx.calibration.precision import apply_precision, format_plan

    if precision not in ("fp16", "int8"):
        raise UserError(f"unknown --precision '{precision}': choose fp16 or int8")
    if style not in ("ort", "trt"):
        raise UserError(f"unknown --style '{style}': choose ort or trt")
    if not onnx_path.is_file():
        raise UserError(f"ONNX file not found: {onnx_path}")
    options = opt.calibration_options(calib, cpu_target, input_shape)
    with tempfile.TemporaryDirectory(prefix="attnx-precision-") as tmp, console.status(f"{precision}..."):
        result = apply_precision(onnx_path, precision, style=style, calibration=options, work_dir=Path(tmp))
        written = result.save(output)
    console.print(format_plan(result.plan), highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    for role, path in written.items():
        console.print(f"wrote {role}: {path}")
