"""``attnx zoo``: the zoo's models, with parameters and multiply-accumulates."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from attnx.core.errors import UserError
from attnx.core.files import write_json
from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console


def zoo(
    config: str = typer.Option(
        None, "--config", help="list only the models that have this size config, in it (e.g. resnet50)"
    ),
    cost: bool = typer.Option(True, "--cost/--no-cost", help="count parameters and MACs (builds each model)"),
    json_out: Path = opt.json_out("the listing"),
    markdown: bool = typer.Option(False, "--markdown", help="print the table as Markdown instead (a flag)"),
    long: bool = typer.Option(False, "--long", help="add the paper and the description"),
) -> None:
    """List the zoo's models, with parameters and multiply-accumulates."""
    from rich.table import Table

    # the registry and the counters import torch: loaded when the command runs (here and below)
    from attnx.exporters.registry import zoo as zoo_entries

    rows = []
    entries = zoo_entries()
    with console.status("counting parameters and MACs...") if cost else contextlib.nullcontext():
        for entry in entries.values():
            cfg = config if config in entry.configs else entry.configs[0]
            if config and config not in entry.configs:
                continue
            row = {
                "name": entry.name, "aliases": list(entry.aliases), "task": entry.task, "family": entry.family,
                "config": cfg,
                "configs": list(entry.configs), "input": "x".join(map(str, entry.sample_shape_for(cfg))),
                "dynamic_hw": entry.dynamic_hw, "paper": entry.paper, "description": entry.description,
            }  # fmt: skip
            if cost:
                from attnx.exporters.flops import count_macs, count_params

                model = entry.build(cfg)
                row["params_m"] = count_params(model) / 1e6
                row["gmacs"] = count_macs(model, entry.input_shape_for(cfg)) / 1e9
                if cfg in entry.paper_figures:
                    fig = entry.paper_figures[cfg]
                    row["paper_params_m"], row["paper_gmacs"] = fig.params_m, fig.gmacs
            rows.append(row)
    if not rows:
        raise UserError(f"no zoo model has config '{config}'")
    columns = ["name", "aliases", "task", "family", "config", "input", "params (M)", "GMACs"]
    columns += ["paper", "description"] if long else []
    lines = []
    for r in rows:
        params = f"{r['params_m']:.3f}" if "params_m" in r else "–"
        macs = f"{r['gmacs']:.4f}" if "gmacs" in r else "–"
        if "paper_params_m" in r:
            params += f" (paper {r['paper_params_m']})"
            macs += f" (paper {r['paper_gmacs']})"
        cells = [r["name"], ", ".join(r["aliases"]), r["task"], r["family"], r["config"], r["input"], params, macs]
        lines.append(cells + ([r["paper"], r["description"]] if long else []))
    if markdown:
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
    else:
        table = Table(title=f"attnx zoo ({len(rows)} models)")
        for col in columns:
            table.add_column(col, overflow="fold")
        for cells in lines:
            table.add_row(*cells)
        console.print(table)
    if json_out:
        write_json(json_out, {"models": rows})
