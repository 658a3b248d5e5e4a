"""``attnx check``: the CI gate on accuracy and latency against a committed baseline."""

from __future__ import annotations

from pathlib import Path

import typer

from attnx.core.errors import UserError
from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console, err_console
from attnx.deploy.cli.junit import write_junit


def check(
    baseline: Path = typer.Option(..., "--baseline", help="the committed baseline JSON"),
    parity_files: list[Path] = typer.Option(None, "--parity", help="fresh `attnx parity --json` result(s)"),
    bench_file: Path = typer.Option(None, "--bench", help="fresh `attnx bench --json` result"),
    max_slowdown: float = typer.Option(0.15, "--max-slowdown", help="allowed latency growth vs the baseline"),
    stat: str = typer.Option("paired", "--stat", help="latency statistic: paired, p50, mean, p90, p95, p99, min"),
    update_baseline: bool = typer.Option(False, "--update-baseline", help="rewrite the baseline from this run"),
    junit: Path = opt.JUNIT,
) -> None:
    """The CI gate: fail (exit 1) when accuracy leaves its policy or latency regresses against a baseline.

    Latency is judged as a ratio to the PyTorch reference measured in the same run, so a slower CI machine
    does not raise false alarms.
    """
    # apis.check reads bench results through attnx.deploy.bench (numpy): loaded when the command runs
    from attnx.deploy.apis.check import check_table, run_check

    if not parity_files and bench_file is None:
        raise UserError("give fresh results to check: --parity FILE (from attnx parity --json) and/or --bench FILE")
    result = run_check(baseline, parity_files or (), bench_file, max_slowdown=max_slowdown, stat=stat,
                       update=update_baseline)  # fmt: skip
    console.print(check_table(result))
    if junit:
        write_junit(junit, check=result)
    if update_baseline:
        console.print(f"[green]baseline updated[/]: {baseline}")
        return
    if not result.passed:
        err_console.print("[bold red]check FAILED[/]: see the changes above")
        raise typer.Exit(1)
    console.print("[green]check passed[/]")
