"""Benchmark plots (PNG, matplotlib): latency distributions per backend and speed-up bars.

matplotlib is imported inside the functions (it is slow to import and only plots need it), and figures
are drawn on the Agg canvas directly, so no display or pyplot state is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError
from attnx.core.files import atomic_path

if TYPE_CHECKING:
    from attnx.deploy.bench.measure import BenchResult


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("plots need matplotlib: pip install matplotlib (or attnx[bench])") from None
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    """Save atomically: a half-written PNG never replaces a good one."""
    with atomic_path(Path(path), suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)


def plot_bench(result: BenchResult, path: str | Path) -> Path:
    """Left: latency distribution of every backend at every batch (box: quartiles, whiskers: p1..p99).
    Right: speed-up over the reference per batch (median over rounds of reference / this, paired per round).

    Args:
        result: a benchmark (``attnx.deploy.bench.measure.BenchResult``); latencies in ms per batch.
        path: the PNG to write (atomically; parent folders created).

    Returns:
        ``Path(path)``.

    Raises:
        UserError: ``result`` has no measured configurations, or matplotlib is not installed.
        OSError: the PNG cannot be written (named by ``path``).
    """
    if not result.configs:
        raise UserError(f"the benchmark of {result.model} has no results to plot")
    targets, batches = result.targets, result.batches
    fig, (ax_lat, ax_speed) = _figure(max(8.0, 1.1 * len(result.configs) + 4), 4.8, ncols=2)
    colors = {t: f"C{i}" for i, t in enumerate(targets)}

    positions, data, stats_only, labels = [], [], [], []
    pos = 0.0
    for b in batches:
        for t in targets:
            c = result.config(t, b)
            if c is None:
                continue
            pos += 1
            positions.append(pos)
            labels.append(f"{t}\nb={b}")
            if c.samples_ms:
                data.append((pos, t, c.samples_ms))
            else:  # a result loaded without samples: draw its percentiles
                stats_only.append((pos, t, c.stats))
        pos += 0.5
    for p, t, samples in data:
        box = ax_lat.boxplot([samples], positions=[p], widths=0.6, whis=(1, 99), showfliers=True,
                             patch_artist=True, flierprops={"markersize": 2, "alpha": 0.4})  # fmt: skip
        for patch in box["boxes"]:
            patch.set_facecolor(colors[t])
            patch.set_alpha(0.55)
    for p, t, s in stats_only:
        ax_lat.errorbar([p], [s.p50_ms], yerr=[[s.p50_ms - s.min_ms], [s.p99_ms - s.p50_ms]], fmt="o",
                        color=colors[t], capsize=4)  # fmt: skip
    ax_lat.set_xticks(positions)
    ax_lat.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    ax_lat.set_ylabel("latency per batch (ms)")
    ax_lat.set_yscale("log")
    ax_lat.set_title("latency distribution (box p25–p75, whiskers p1–p99)", fontsize=9)
    ax_lat.grid(axis="y", alpha=0.3, which="both")

    others = [t for t in targets if t != result.reference] or targets
    width = 0.8 / len(others)
    for i, t in enumerate(others):
        xs, ys = [], []
        for j, b in enumerate(batches):
            c = result.config(t, b)
            if c is not None and c.speedup is not None:
                xs.append(j + (i - (len(others) - 1) / 2) * width)
                ys.append(c.speedup)
        bars = ax_speed.bar(xs, ys, width=width, color=colors[t], label=t)
        ax_speed.bar_label(bars, labels=[f"{y:.2f}×" for y in ys], fontsize=7)
    ax_speed.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax_speed.set_xticks(range(len(batches)))
    ax_speed.set_xticklabels([f"batch {b}" for b in batches])
    ax_speed.set_ylabel(f"speed-up over {result.reference or 'reference'} (paired per round)")
    ax_speed.set_title("speed-up (higher is faster)" if result.reference else "no reference backend ran", fontsize=9)
    if any(result.config(t, b) and result.config(t, b).speedup for t in others for b in batches):  # type: ignore[union-attr]
        ax_speed.legend(fontsize=8)
    threads = result.machine.get("threads") or "default"
    fig.suptitle(f"{result.model} — {result.machine.get('cpu', '')}, {threads} thread(s)", fontsize=11)
    return _save(fig, Path(path))


def plot_speedups(results: Sequence[BenchResult], path: str | Path, batch: int | None = None) -> Path:
    """Speed-up over each model's reference, one group of bars per model (at ``batch``, default the smallest).

    Speed-up = reference median latency / backend median latency (×, > 1 is faster). Writes the PNG at
    ``path`` atomically and returns ``Path(path)``.

    Raises:
        UserError: no result has a reference backend and measurements, or matplotlib is not installed.
        OSError: the PNG cannot be written.
    """
    rows = [r for r in results if r.configs and r.reference]
    if not rows:
        raise UserError("no benchmark with a reference backend to plot speed-ups for")
    targets = list(dict.fromkeys(t for r in rows for t in r.targets if t != r.reference))
    fig, (ax,) = _figure(max(7.0, 0.9 * len(rows) * max(1, len(targets)) + 3), 4.6)
    width = 0.8 / max(1, len(targets))
    for i, t in enumerate(targets):
        xs, ys = [], []
        for j, r in enumerate(rows):
            b = batch if batch is not None else min(r.batches)
            c = r.config(t, b)
            if c is not None and c.speedup is not None:
                xs.append(j + (i - (len(targets) - 1) / 2) * width)
                ys.append(c.speedup)
        bars = ax.bar(xs, ys, width=width, color=f"C{i + 1}", label=t)
        ax.bar_label(bars, labels=[f"{y:.2f}×" for y in ys], fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.model for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("speed-up over PyTorch eager (paired per round)")
    threads = rows[0].machine.get("threads") or "default"
    ax.set_title(f"speed-up per model, batch {batch or 'smallest'}, {threads} thread(s)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))
