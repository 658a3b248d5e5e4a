"""``attnx export``: a model to ONNX, checked, simplified, with its op report for a target."""

from __future__ import annotations

from pathlib import Path

from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console


@opt.with_group(opt.ExportChoices)
def export(
    model: str = opt.MODEL_SPEC,
    output: Path = opt.output("the .onnx file to write"),
    config: str = opt.MODEL_CONFIG,
    weights: Path = opt.WEIGHTS,
    num_classes: int = opt.NUM_CLASSES,
    *,
    choices: opt.ExportChoices,  # --input-shape, --dynamic-hw, --opset, --exporter, --target, --plugins, --attention
    dynamic_batch: bool = opt.DYNAMIC_BATCH,
    simplify: bool = opt.SIMPLIFY,
) -> None:
    """Export a model to ONNX; check it, simplify it, and report its ops for a target."""
    # apis import numpy (and torch once a model is built): loaded when the command runs
    from attnx.deploy.apis.pipeline import export_model, prepare_model, report_path
    from attnx.deploy.apis.run import check_targets, export_options
    from attnx.deploy.cli.tables import op_table

    target = choices.target
    check_targets(target, ())  # before the (slow) export
    with console.status(f"building {model}..."):
        prepared = prepare_model(model, config=config, weights=weights, num_classes=num_classes)
        options = export_options(prepared, choices.shape(), dynamic_batch=dynamic_batch,
                                 dynamic_hw=choices.dynamic_hw, opset=choices.opset, exporter=choices.exporter,
                                 simplify=simplify, attention=choices.attention)  # fmt: skip
    with console.status(f"exporting {model} with the {choices.exporter} exporter (opset {choices.opset})..."):
        result, report = export_model(prepared, output, options, target=target, plugins=choices.plugins)
    console.print(op_table(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(
        f"wrote {result.path} ({result.node_count} nodes, opset {result.opset}) and {report_path(result.path)}"
    )
    if report.blocking:
        console.print(f"[bold red]{target} cannot run:[/] {', '.join(r.op_type for r in report.blocking)}")
