"""``attnx build``: a bundle (precision-baked ONNX → engine → parity → manifest)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console, err_console


def build(
    model_or_onnx: str = typer.Argument(..., help="a model spec or an .onnx file (fp32)"),
    output: Path = opt.output("the bundle folder to write"),
    backend: str = opt.BACKEND,
    precision: str = opt.precision(
        "fp32", "fp32, fp16, bf16 (OpenVINO), int8, or best (the fastest that passes parity)"
    ),
    model: str = opt.REFERENCE_MODEL,
    config: str = opt.MODEL_CONFIG,
    weights: Path = opt.WEIGHTS,
    input_shape: str = opt.INPUT_SHAPE,
    max_batch: int = typer.Option(
        8, "--max-batch", help="largest batch the bundle accepts (TensorRT profile max); serving batches up to it"
    ),
    opset: int = opt.OPSET,
    plugins: str = opt.plugins("auto"),
    seed: int = opt.SEED,
    workspace_mib: int = typer.Option(None, "--workspace-mib", help="TensorRT: workspace memory-pool limit"),
    timing_cache: Path = typer.Option(None, "--timing-cache", help="TensorRT: timing cache to reuse and update"),
    opt_level: int = typer.Option(None, "--opt-level", help="TensorRT: builder optimization level 0–5"),
    version_compatible: bool = typer.Option(False, "--version-compatible", help="TensorRT: plan runs on later TRT"),
    hardware_compat: str = typer.Option(
        None, "--hardware-compat", help="TensorRT: none, ampere+ or same_compute_capability"
    ),
    plugin_library: list[Path] = typer.Option(None, "--plugin-library", help="TensorRT: plugin .so to load"),
    calib: list[str] = opt.CALIB,
    cpu_target: str = opt.CPU_TARGET,
) -> None:
    """Build a bundle: precision-baked ONNX → engine → parity against the fp32 reference → manifest."""
    # the builder and TensorRT's option checks import numpy / onnx: loaded when the command runs
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.backends.tensorrt.builder import TrtBuildOptions
    from attnx.deploy.cli.tables import parity_table

    trt_options = {
        k: v
        for k, v in {
            "workspace_mib": workspace_mib, "timing_cache": timing_cache, "optimization_level": opt_level,
            "version_compatible": version_compatible or None, "hardware_compatibility": hardware_compat,
            "plugin_libraries": [str(p) for p in plugin_library] if plugin_library else None,
        }.items()
        if v is not None
    }  # fmt: skip
    TrtBuildOptions.from_dict(trt_options)  # bad values fail here, before any work
    calibration = opt.calibration_options(calib, cpu_target, input_shape)
    options = BuildOptions(
        backend=backend, precision=precision, input_shape=opt.parse_shape(input_shape), max_batch=max_batch,
        opset=opset, plugins=plugins, seed=seed, trt=trt_options, calibration=calibration,
    )  # fmt: skip
    options.validate()
    with console.status(f"building a {precision} bundle of {model_or_onnx}..."):
        result = build_bundle(model_or_onnx, output, options, model_spec=model, config=config, weights=weights)
    for note in result.manifest.notes:
        console.print(f"[yellow]note:[/] {note}")
    if result.manifest.precision_plan:
        from attnx.calibration.precision import format_plan

        console.print(format_plan(result.manifest.precision_plan), highlight=False)
    console.print(parity_table(result.parity))
    selection = result.manifest.build.get("selection")
    if selection:
        console.print(_selection_table(selection))
        for note in selection["notes"]:
            console.print(f"[yellow]note:[/] {note}")
    console.print(f"wrote bundle {result.bundle} ({result.manifest.backend}, {result.manifest.precision})")
    if not result.parity.passed:
        err_console.print(f"[bold red]the built engine fails the {precision} parity policy[/] (bundle kept for study)")
        raise typer.Exit(1)


def _selection_table(selection: dict) -> Table:
    """``--precision best``: every candidate timed side by side, the chosen one marked."""
    table = Table(title="candidates, timed side by side (batch 1)", caption=selection["criterion"])
    for col in ("backend", "precision", "parity", "p50 ms", "mean ms", ""):
        table.add_column(col)
    for c in selection["candidates"]:
        chosen = (c["backend"], c["precision"]) == tuple(selection["chosen"].values())
        verdict = "build failed" if c.get("build_error") else "pass" if c["parity_passed"] else "FAIL"
        table.add_row(c["backend"], c["precision"], verdict,
                      f"{c['p50_ms']:.3f}" if c["p50_ms"] else "–", f"{c['mean_ms']:.3f}" if c["mean_ms"] else "–",
                      "[green]chosen[/]" if chosen else "")  # fmt: skip
    return table
