"""Accuracy parity between a reference backend and a candidate, judged by a per-precision policy.

Per output we report max/mean absolute error, relative L2 error, cosine similarity and, for classifier
outputs (N, K), top-1 agreement. NaN or Inf in a candidate output always fails, named as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.parity.metrics import cosine_similarity, error_stat, max_abs_error, rel_l2_error
from attnx.deploy.parity.report import OutputComparison, ParityCase


@dataclass(frozen=True)
class Tolerance:
    """One precision's pass criteria. Elementwise: |cand − ref| ≤ atol + rtol·|ref| everywhere."""

    atol: float
    rtol: float
    min_cosine: float
    max_rel_l2: float
    min_top1: float  # fraction of unambiguous samples whose top-1 class agrees
    # How atol/rtol are applied (see attnx.deploy.parity.metrics): "elemwise" (every element), or a statistic of
    # the error — "max", "mean", "median", "quantile" — passing if stat(|Δ|) ≤ atol or stat(|Δ|/|ref|) ≤ rtol.
    error_stat: str = "elemwise"
    error_quantile: float = 0.99

    def with_overrides(self, **overrides: float | None) -> Tolerance:
        """A copy with the non-None ``overrides`` (field name → value) applied; TypeError for an unknown field."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# fp32 is what export must preserve; fp16 / int8 are the targets the precision work is held to.
# INT8 is carried by the scale-free criteria (cosine, relative L2, top-1): quantization spreads a small error
# over every logit, so an absolute bound on the largest one would fail engines whose cosine is 0.999 whenever
# the logits are large. Its error bound is on the *mean* (Polygraphy's --check-error-stat), as a sanity net.
POLICIES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3, min_cosine=0.99999, max_rel_l2=1e-4, min_top1=1.0),
    "fp16": Tolerance(atol=1e-2, rtol=1e-2, min_cosine=0.999, max_rel_l2=3e-2, min_top1=0.99),
    # bf16 keeps fp32's range with 8 mantissa bits (~3 decimal digits): looser elementwise, same cosine floor.
    "bf16": Tolerance(atol=5e-2, rtol=5e-2, min_cosine=0.999, max_rel_l2=5e-2, min_top1=0.99),
    "int8": Tolerance(atol=1.0, rtol=0.25, min_cosine=0.99, max_rel_l2=0.2, min_top1=0.95, error_stat="mean"),
}


def policy(name: str) -> Tolerance:
    """The :class:`Tolerance` of precision ``name`` (fp32 | fp16 | bf16 | int8; POLICIES). Raises
    :class:`~attnx.core.errors.UserError` for another name.
    """
    if name not in POLICIES:
        raise UserError(f"unknown precision policy '{name}': choose one of {', '.join(POLICIES)}")
    return POLICIES[name]


def compare_output(name: str, ref: np.ndarray, cand: np.ndarray, tol: Tolerance) -> OutputComparison:
    """Judge output ``name`` of the candidate (``cand``) against ``ref`` under ``tol``; any numeric dtypes, compared
    in float64. Returns an :class:`OutputComparison` (errors, and failures: empty when it passes); a shape mismatch
    or NaN/Inf in either tensor is a failure, not an exception. Top-1 agreement is judged for (N, K > 1) outputs.
    """
    if ref.shape != cand.shape:
        return OutputComparison(
            name, tuple(ref.shape), math.inf, math.inf, math.inf, -1.0, math.inf,
            failures=[f"shape {tuple(cand.shape)} != reference {tuple(ref.shape)}"],
        )  # fmt: skip
    r = ref.astype(np.float64)
    c = cand.astype(np.float64)
    nonfinite = _nonfinite(c) or _nonfinite(r, "reference ")
    if nonfinite:
        return OutputComparison(
            name, tuple(ref.shape), math.nan, math.nan, math.nan, math.nan, math.nan,
            nonfinite=nonfinite, failures=[nonfinite],
        )  # fmt: skip
    diff = np.abs(c - r)
    rel_l2 = rel_l2_error(r, c)
    cosine = cosine_similarity(r, c)
    worst_excess = float(np.max(diff - (tol.atol + tol.rtol * np.abs(r)))) if diff.size else 0.0
    comp = OutputComparison(
        name=name,
        shape=tuple(ref.shape),
        max_abs=max_abs_error(r, c),
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        rel_l2=rel_l2,
        cosine=cosine,
        worst_excess=worst_excess,
    )
    if ref.ndim == 2 and ref.shape[1] > 1:
        comp.top1, comp.top1_samples = top1_agreement(r, c, margin=tol.atol)
    if tol.error_stat != "elemwise":
        stat = error_stat(r, c, tol.atol, tol.rtol, tol.error_stat, tol.error_quantile)
        comp.error_stat = stat.to_dict()
        if not stat.passed:
            comp.failures.append(stat.message)
    elif worst_excess > 0:
        comp.failures.append(f"max abs {comp.max_abs:.3g} exceeds atol {tol.atol:g} + rtol {tol.rtol:g}·|ref|")
    if cosine < tol.min_cosine:
        comp.failures.append(f"cosine {cosine:.6f} < {tol.min_cosine}")
    if rel_l2 > tol.max_rel_l2:
        comp.failures.append(f"rel L2 {rel_l2:.3g} > {tol.max_rel_l2:g}")
    if comp.top1 is not None and comp.top1 < tol.min_top1:
        comp.failures.append(f"top-1 agreement {comp.top1:.3f} < {tol.min_top1}")
    return comp


def top1_agreement(ref: np.ndarray, cand: np.ndarray, margin: float) -> tuple[float | None, int]:
    """Top-1 agreement over samples whose reference top-2 gap exceeds ``margin``.

    A near-tie in the reference is a coin toss for any backend, so it cannot count against one.
    Returns (agreement or None if no sample is unambiguous, number of samples counted).
    """
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > margin
    if not clear.any():
        return None, 0
    agree = np.argmax(ref, axis=1)[clear] == np.argmax(cand, axis=1)[clear]
    return float(agree.mean()), int(clear.sum())


def _nonfinite(arr: np.ndarray, who: str = "") -> str | None:
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(np.isinf(arr).sum())
    if n_nan or n_inf:
        return f"{who}output has {n_nan} NaN and {n_inf} Inf values"
    return None


def compare(
    ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], tol: Tolerance, label: str,
    input_shapes: dict[str, tuple[int, ...]],
) -> ParityCase:  # fmt: skip
    """One :class:`ParityCase` labelled ``label``: every output of ``ref`` (name → array) judged against ``cand``'s by
    :func:`compare_output` under ``tol``; ``input_shapes`` are the shapes fed. Candidate outputs the reference lacks
    are ignored; one it has and the candidate lacks raises :class:`~attnx.core.errors.UserError`.
    """
    missing = [n for n in ref if n not in cand]
    if missing:
        raise UserError(f"candidate backend lacks output(s) {missing}; it has {sorted(cand)}")
    return ParityCase(label, input_shapes, [compare_output(n, ref[n], cand[n], tol) for n in ref])
