"""``attnx accuracy``: top-1 of classifier bundles on real images."""

from __future__ import annotations

from pathlib import Path

import typer

from attnx.core.files import write_json
from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console


def accuracy(
    bundles: list[Path] = typer.Argument(..., help="classifier bundle folders"),
    dataset: str = typer.Option("digits", "--dataset", help="real test images: digits (scikit-learn)"),
    json_out: Path = opt.json_out("the results"),
    allow_failed_parity: bool = opt.ALLOW_FAILED_PARITY,
) -> None:
    """Top-1 accuracy of classifier bundles on real images (scikit-learn's digits test split)."""
    from rich.table import Table

    # numpy and the manifest schema: loaded when the command runs, so `attnx --help` stays instant
    from attnx.deploy.accuracy import evaluate_bundle
    from attnx.deploy.bundle.manifest import load_manifest

    table = Table(title=f"top-1 on {dataset} (test split)")
    for col in ("bundle", "backend", "precision", "top-1 %", "correct"):
        table.add_column(col)
    rows = []
    for bundle in bundles:
        manifest = load_manifest(bundle)
        acc = evaluate_bundle(bundle, dataset, allow_failed_parity=allow_failed_parity)
        rows.append({"bundle": str(bundle), "backend": manifest.backend, "precision": manifest.precision,
                     "top1": acc.top1, "correct": acc.correct, "samples": acc.samples})  # fmt: skip
        table.add_row(str(bundle), manifest.backend, manifest.precision, f"{acc.top1:.2f}",
                      f"{acc.correct}/{acc.samples}")  # fmt: skip
    console.print(table)
    if json_out:
        write_json(json_out, {"dataset": dataset, "results": rows})
