"""Sensitivity mode: exclude the quantized nodes that hurt most until an accuracy budget holds.

1. Quantize as planned and measure against FP32 on held-out samples. Within budget: done.
2. Otherwise measure each quantized node alone (only that node quantized, everything else FP32): its
   effect is 1 − cosine of the worst output (ties broken by top-1 disagreement).
3. Exclude nodes worst-first, re-measuring the whole model after each, until the budget holds or
   ``max_excluded`` nodes are out (default: half the quantized nodes). The report lists every measured
   effect and what was excluded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attnx.calibration.evaluate import Agreement, compare_models

if TYPE_CHECKING:
    import numpy as np

    from attnx.calibration.config import Budget
    from attnx.calibration.data import CalibrationData
    from attnx.calibration.qdq import QuantResult


@dataclass
class SensitivityReport:
    """What sensitivity mode measured and decided.

    Attributes:
        budget: the accuracy budget held to.
        initial: agreement of the model quantized as planned.
        final: agreement of the model returned (``initial`` when nothing was excluded).
        held: whether ``final`` is within the budget.
        effects: node → {"cosine_loss": 1 − worst-output cosine with only that node quantized (1.0 when
            non-finite), "top1_drop_points": percentage points of top-1 disagreement}.
        excluded: the nodes excluded, worst first.
        builds: how many quantized models were built and measured.
    """

    budget: Budget
    initial: Agreement
    final: Agreement
    held: bool
    effects: dict[str, dict[str, float]] = field(default_factory=dict)  # node → cosine loss, top-1 drop
    excluded: list[str] = field(default_factory=list)
    builds: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the plan: the budget, both agreements, the excluded nodes with their effects, every
        effect worst first, and the number of quantize runs."""
        ranked = sorted(self.effects.items(), key=lambda kv: (-kv[1]["cosine_loss"], -kv[1]["top1_drop_points"]))
        return {
            "budget": vars(self.budget).copy(),
            "held": self.held,
            "initial": self.initial.to_dict(),
            "final": self.final.to_dict(),
            "excluded": [{"node": n, **self.effects.get(n, {})} for n in self.excluded],
            "effects": [{"node": n, **e} for n, e in ranked],
            "quantize_runs": self.builds,
        }


def search(
    build: Callable[[list[str]], QuantResult],
    reference: dict[str, np.ndarray],
    data: CalibrationData,
    budget: Budget,
    base_exclude: list[str],
    all_nodes: list[str],
    batch_size: int,
    threads: int | None = None,
    margin: float = 0.0,
) -> tuple[QuantResult, SensitivityReport]:
    """The best model found and the report. ``build(exclude)`` quantizes with those nodes left float.

    Args:
        build: node names to leave float → a quantized model.
        reference: the FP32 model's outputs on ``data`` (output name → (N, ...) array).
        data: held-out samples to measure on.
        budget: what must hold (``Budget``: min cosine, max top-1 drop in points, max nodes to exclude).
        base_exclude: the plan's exclusions, always kept.
        all_nodes: every node name (measuring a node alone excludes all the others).
        batch_size, threads: ONNX Runtime batch size and intra-op threads for the measurements.
        margin: top-2 gap (logit units) a sample needs to count for top-1 (see ``Agreement``).

    Returns:
        (the last model built: within budget, or with ``max_excluded`` nodes out; the report). Costs one
        build and run per quantized node plus one per exclusion.
    """
    result = build(base_exclude)
    first = compare_models(reference, result.model, data, batch_size, threads, margin)
    report = SensitivityReport(budget, first, first, first.within(budget.min_cosine, budget.max_top1_drop), builds=1)
    if report.held or not result.quantized:
        return result, report
    for node in result.quantized:
        alone = build([n for n in all_nodes if n != node])
        report.builds += 1
        agree = compare_models(reference, alone.model, data, batch_size, threads, margin)
        loss = 1.0 - agree.min_cosine if not agree.nonfinite else 1.0
        report.effects[node] = {"cosine_loss": round(loss, 8), "top1_drop_points": round(agree.top1_drop, 3)}
    order = sorted(
        report.effects, key=lambda n: (-report.effects[n]["cosine_loss"], -report.effects[n]["top1_drop_points"])
    )
    best, best_agree = result, first
    limit = budget.max_excluded or max(1, len(result.quantized) // 2)
    for node in order[:limit]:
        report.excluded.append(node)
        candidate = build(base_exclude + report.excluded)
        report.builds += 1
        agree = compare_models(reference, candidate.model, data, batch_size, threads, margin)
        best, best_agree = candidate, agree
        if agree.within(budget.min_cosine, budget.max_top1_drop):
            report.held = True
            break
    report.final = best_agree
    return best, report
