"""``attnx cpu``: this CPU's INT8 kernels and the recipe each --cpu-target picks."""

from __future__ import annotations

import json

import typer

from attnx.core.cpu import CPU_TARGETS, detect, int8_recipe
from attnx.deploy.cli.console import console


def cpu(json_out: bool = typer.Option(False, "--json", help="print JSON instead of text (a flag)")) -> None:
    """What this CPU's INT8 kernels can do (VNNI or saturating u8×s8 pair sums) and the recipe each target picks.

    ATTNX_CPU_FEATURES overrides the detection (e.g. ``avx2`` for AVX2 without VNNI); see attnx/core/cpu.py.
    """
    features = detect()
    recipes = {t: int8_recipe(t, features).to_dict() for t in CPU_TARGETS}
    if json_out:
        console.print_json(json.dumps({"cpu": features.to_dict(), "recipes": recipes}))
        return
    console.print(f"CPU: {features.describe()} (read from {features.source})", highlight=False)
    console.print(f"INT8 u8×s8 kernels: {features.int8_kernel}", highlight=False)
    for target, r in recipes.items():
        console.print(f"  --cpu-target {target}: {r['weight_bits']}-bit weights — {r['reason']}", highlight=False)
