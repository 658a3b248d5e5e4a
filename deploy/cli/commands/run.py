"""``attnx run``: the whole pipeline (:func:`attnx.deploy.apis.run.run_pipeline`), its stages printed as they end."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console, err_console, escape_markup


@opt.with_group(opt.ExportChoices)
def run(
    model: str = opt.MODEL_SPEC,
    output_dir: Path = typer.Option(Path("attnx_out"), "-o", "--output-dir", help="folder for every artefact"),
    config: str = opt.MODEL_CONFIG,
    weights: Path = opt.WEIGHTS,
    *,
    choices: opt.ExportChoices,  # --input-shape, --dynamic-hw, --opset, --exporter, --target, --plugins, --attention
    batch: str = opt.batches("1,3", "each one compared in the fp32 parity check, through the dynamic batch axis"),
    seed: int = opt.SEED,
    precisions: str = opt.PRECISIONS,
    calib: list[str] = opt.CALIB,
    cpu_target: str = opt.CPU_TARGET,
    iterations: int = opt.iterations(50),
) -> None:
    """The whole pipeline: export → op report → parity → bundles per precision → accuracy → benchmark.

    Every artefact lands in one folder: model.onnx, its op report, parity.json, bundles/<precision>/,
    accuracy.json (classifiers with --weights: top-1 on real digits images) and bench.json / bench.md.
    """
    # the pipeline imports numpy (and torch once the model is built): loaded when the command runs
    from attnx.deploy.apis.run import check_targets, run_pipeline

    wanted = [p for p in precisions.split(",") if p]
    check_targets(choices.target, wanted)
    batches = opt.parse_batches(batch)
    calibration = opt.calibration_options(calib, cpu_target, choices.input_shape)
    with console.status(f"[1/3] building {model}...") as status:
        result = run_pipeline(
            model, output_dir, config=config, weights=weights, **choices.pipeline_kwargs(), batches=batches,
            seed=seed, precisions=wanted, calibration=calibration, iterations=iterations, progress=status.update,
            on_stage=_Printer(model),
        )  # fmt: skip
    if not result.parity.passed:
        err_console.print(f"[bold red]parity FAILED[/] for {model}")
        raise typer.Exit(1)
    if result.failed_precisions:
        err_console.print(f"[bold red]bundles outside their parity policy:[/] {', '.join(result.failed_precisions)}")
        raise typer.Exit(1)


class _Printer:
    """Prints each stage's result as the pipeline finishes it (``run_pipeline``'s ``on_stage``)."""

    def __init__(self, model: str) -> None:
        self.model = model

    def __call__(self, stage: object) -> None:
        from attnx.deploy.apis.pipeline import report_path
        from attnx.deploy.apis.run import BundleStage, ExportStage, ParityStage
        from attnx.deploy.bench.measure import BenchResult, bench_table
        from attnx.deploy.cli.tables import op_table, parity_table

        if isinstance(stage, ExportStage):
            console.print(op_table(stage.report))
            for note in stage.report.notes:
                console.print(f"[yellow]note:[/] {note}")
        elif isinstance(stage, ParityStage):
            console.print(parity_table(stage.report))
            console.print(f"artefacts: {stage.onnx_path}, {report_path(stage.onnx_path)}, {stage.path}")
            if stage.passed:
                console.print(f"[green]{self.model}: exported and ONNX Runtime matches PyTorch[/] (fp32 policy)")
        elif isinstance(stage, list):  # every bundle built: the summary table
            console.print(self.bundle_table(stage))
        elif isinstance(stage, BenchResult):
            console.print(bench_table(stage))
        elif not isinstance(stage, BundleStage):  # a bundle is printed with the others, in the summary table
            raise TypeError(f"unknown pipeline stage {type(stage).__name__}")

    def bundle_table(self, bundles: list) -> Table:
        """Per precision: parity verdict, the inputs it was judged on, the lowest cosine, top-1 on digits."""
        summary = Table(title=f"{self.model}: bundles (ONNX Runtime, CPU)")
        for col in ("precision", "parity", "inputs", "min cosine", "top-1 on digits"):
            summary.add_column(col)
        for b in bundles:
            outs = [o for c in b.parity.cases for o in c.outputs]
            acc = b.accuracy
            top1 = f"{acc.top1:.2f}% ({acc.correct}/{acc.samples})" if acc is not None else "–"
            summary.add_row(b.precision, "[green]pass[/]" if b.passed else "[bold red]FAIL[/]",
                            escape_markup(brief_source(b.parity.input_source)), f"{min(o.cosine for o in outs):.6f}",
                            top1)  # fmt: skip
        return summary


def brief_source(source: str) -> str:
    """A parity report's input source for a table cell: whole words, the split kept (never cut mid-phrase)."""
    if source.startswith("held-out samples recorded by the build: "):
        rest = source.removeprefix("held-out samples recorded by the build: ")
        what = rest.split(" (")[0]  # e.g. "scikit-learn digits, test split"
        count = rest.rsplit(", ", 1)[-1] if rest.rstrip().endswith("samples") else ""
        return f"held-out: {what}" + (f", {count}" if count else "")
    return source
