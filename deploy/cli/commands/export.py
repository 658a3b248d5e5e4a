"""``attnx export``: a model to ONNX, checked, simplified, with its op report for a target."""

from __future__ import annotations

from pathlib import Path

import typer

from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console


def export(
    model: str = opt.MODEL_SPEC,
    output: Path = typer.Option(..., "-o", "--output", help="the .onnx file to write"),
    config: str = opt.MODEL_CONFIG,
    weights: Path = opt.WEIGHTS,
    num_classes: int = opt.NUM_CLASSES,
    input_shape: str = opt.INPUT_SHAPE,
    dynamic_batch: bool = opt.DYNAMIC_BATCH,
    dynamic_hw: bool = opt.DYNAMIC_HW,
    opset: int = opt.OPSET,
    exporter: str = opt.EXPORTER,
    simplify: bool = opt.SIMPLIFY,
    target: str = opt.TARGET,
    plugins: str = opt.plugins("none"),
    attention: str = opt.ATTENTION,
) -> None:
    """Export a model to ONNX; check it, simplify it, and report its ops for a target."""
    # apis import numpy (and torch once a model is built): loaded when the command runs
    from attnx.deploy.apis.pipeline import export_model, prepare_model, report_path
    from attnx.deploy.apis.run import check_targets, export_options
    from attnx.deploy.cli.tables import op_table

    check_targets(target, ())  # before the (slow) export
    with console.status(f"building {model}..."):
        prepared = prepare_model(model, config=config, weights=weights, num_classes=num_classes)
        options = export_options(prepared, opt.parse_shape(input_shape), dynamic_batch=dynamic_batch,
                                 dynamic_hw=dynamic_hw, opset=opset, exporter=exporter, simplify=simplify,
                                 attention=attention)  # fmt: skip
    with console.status(f"exporting {model} with the {exporter} exporter (opset {opset})..."):
        result, report = export_model(prepared, output, options, target=target, plugins=plugins)
    console.print(op_table(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(
        f"wrote {result.path} ({result.node_count} nodes, opset {result.opset}) and {report_path(result.path)}"
    )
    if report.blocking:
        console.print(f"[bold red]{target} cannot run:[/] {', '.join(r.op_type for r in report.blocking)}")
