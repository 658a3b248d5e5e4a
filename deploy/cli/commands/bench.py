"""``attnx bench``: PyTorch eager and bundles timed side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from attnx.core.errors import UserError
from attnx.core.files import write_json, write_text
from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console, err_console, escape_markup


def bench(
    bundles: list[Path] = typer.Argument(None, help="bundle folders to time side by side"),
    model: str = opt.reference_model("the bundles' model; without bundles, PyTorch is timed alone"),
    config: str = opt.MODEL_CONFIG,
    weights: Path = opt.WEIGHTS,
    batch: str = opt.batches("1", "each one timed (a sweep, e.g. 1,4,8)"),
    threads: int = opt.threads(1, "1 by default, for stable timings; 0: the library's default (all cores)"),
    warmup: int = typer.Option(10, "--warmup", help="warm-up iterations per target and batch"),
    iterations: int = opt.iterations(100),
    duration: float = typer.Option(None, "--duration", help="time each configuration for this many seconds"),
    no_torch: bool = typer.Option(False, "--no-torch", help="leave PyTorch eager out"),
    cuda_graph: bool = typer.Option(True, "--cuda-graph/--no-cuda-graph", help="TensorRT: replay CUDA graphs"),
    peak_gflops: float = typer.Option(None, "--peak-gflops", help="override the device's peak for the roofline"),
    input_shape: str = opt.INPUT_SHAPE,
    json_out: Path = opt.json_out("the results"),
    markdown: Path = typer.Option(None, "--markdown", help="also write a Markdown summary to this file"),
    plot: Path = typer.Option(None, "--plot", help="write a PNG: latency distributions and speed-ups"),
    allow_failed_parity: bool = opt.ALLOW_FAILED_PARITY,
) -> None:
    """Time PyTorch eager and bundles side by side, interleaved, with percentiles and roofline context."""
    # the benchmark imports numpy (torch, runtimes once it runs): loaded when the command runs
    from attnx.deploy.apis.bench import run_bench
    from attnx.deploy.bench.measure import BenchOptions, bench_table, markdown_summary

    if not bundles and not model:
        raise UserError("give bundle folders to time (attnx build makes them), or --model for PyTorch alone")
    if iterations < 1 or warmup < 0:
        raise UserError("--iterations must be ≥ 1 and --warmup ≥ 0")
    options = BenchOptions(
        batches=tuple(opt.parse_batches(batch)), warmup=warmup, iterations=iterations, duration_s=duration,
        threads=threads or None, cuda_graph=cuda_graph, input_shape=opt.parse_shape(input_shape),
        peak_gflops=peak_gflops,
    )  # fmt: skip
    with console.status("benchmarking...") as status:
        result = run_bench(bundles or (), model, options, config=config, weights=weights,
                           torch_reference=not no_torch, progress=lambda s: status.update(s),
                           allow_failed_parity=allow_failed_parity)  # fmt: skip
    skipped = [n for n in result.notes if " skipped " in n]  # a batch a bundle cannot take
    if bundles and not [c for c in result.configs if c.target != result.reference]:
        raise UserError(f"no bundle was timed: {'; '.join(skipped) or 'no configuration ran'}")
    console.print(bench_table(result))
    for note in skipped:
        err_console.print(f"[yellow]note:[/] {escape_markup(note)}", highlight=False, soft_wrap=True)
    if json_out:
        write_json(json_out, result.to_dict())
    if markdown:
        write_text(markdown, markdown_summary([result]))
    if plot:
        from attnx.deploy.bench.plots import plot_bench  # imports matplotlib

        plot_bench(result, plot)
