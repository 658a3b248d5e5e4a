"""``attnx triton-repo``: a Triton Inference Server model repository from bundles."""

from __future__ import annotations

from pathlib import Path

import typer

from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console


def triton_repo(
    bundles: list[str] = opt.NAMED_BUNDLES,
    output: Path = opt.output("the model repository folder"),
    max_batch: int = typer.Option(
        None, "--max-batch", help="Triton's max_batch_size (default: the bundle's largest batch, build --max-batch)"
    ),
    max_delay_us: int = typer.Option(100, "--max-delay-us", help="dynamic_batching max_queue_delay_microseconds"),
    instances: int = typer.Option(1, "--instances", help="instance_group count"),
    instance_kind: str = typer.Option("auto", "--instance-kind", help="auto, cpu or gpu"),
    force: bool = typer.Option(False, "--force", help="replace models already in the repository"),
    check_configs: bool = typer.Option(True, "--check/--no-check", help="parse configs with Triton's schema"),
    allow_failed_parity: bool = opt.ALLOW_FAILED_PARITY,
) -> None:
    """Write a Triton Inference Server model repository (config.pbtxt + versioned model file) from bundles."""
    # the serving stack: loaded when the command runs, so `attnx --help` stays instant
    from attnx.deploy.serving.cli import triton_repo as write_repo

    written = write_repo(bundles, output, max_batch=max_batch, max_delay_us=max_delay_us, instances=instances,
                         instance_kind=instance_kind, force=force, check=check_configs,
                         allow_failed_parity=allow_failed_parity)  # fmt: skip
    for path in written:
        console.print(f"wrote {path}")
