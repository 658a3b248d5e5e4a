"""Error statistics for parity, in the manner of Polygraphy's ``--check-error-stat``.

The elementwise rule (|Δ| ≤ atol + rtol·|ref| everywhere) lets one outlier element fail a whole output.
For reduced precisions a statistic of the error is often the fairer gate: ``max``, ``mean``, ``median``
or a ``quantile`` (default the 0.99 quantile) of the absolute error |Δ| and of the relative error
|Δ| / |ref|. As in Polygraphy, an output passes when the statistic of the absolute error is ≤ atol
**or** that of the relative error is ≤ rtol (small values are judged absolutely, large ones relatively).
``elemwise`` is the existing elementwise rule, for completeness.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attnx.core.errors import UserError

ERROR_STATS = ("elemwise", "max", "mean", "median", "quantile")
_REL_EPS = 1e-12  # keeps |Δ| / |ref| finite where the reference is exactly zero


@dataclass(frozen=True)
class ErrorStat:
    """One output's error statistic and its verdict."""

    stat: str
    quantile: float | None  # for stat "quantile"
    abs_value: float  # the statistic of |Δ|
    rel_value: float  # the statistic of |Δ| / |ref|
    atol: float
    rtol: float
    passed: bool

    @property
    def message(self) -> str:
        name = f"q{self.quantile:g}" if self.stat == "quantile" else self.stat
        verdict = "within" if self.passed else "exceeds"
        return (f"{name} abs error {self.abs_value:.3g} / rel error {self.rel_value:.3g} {verdict} "
                f"atol {self.atol:g} or rtol {self.rtol:g}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def error_quantile(ref: np.ndarray, cand: np.ndarray, q: float = 0.99, relative: bool = False) -> float:
    """The ``q`` quantile (0..1, NumPy's linear interpolation) of |cand − ref| (or of |Δ| / |ref|)."""
    if not 0.0 <= q <= 1.0:
        raise UserError(f"error quantile must be between 0 and 1, got {q}")
    diff = _errors(ref, cand, relative)
    return float(np.quantile(diff, q)) if diff.size else 0.0


def error_stat(
    ref: np.ndarray, cand: np.ndarray, atol: float, rtol: float, stat: str = "quantile", quantile: float = 0.99
) -> ErrorStat:
    """Judge ``cand`` against ``ref`` by a statistic of its errors (see the module docstring)."""
    if stat not in ERROR_STATS:
        raise UserError(f"unknown error statistic '{stat}': choose one of {', '.join(ERROR_STATS)}")
    if not 0.0 <= quantile <= 1.0:
        raise UserError(f"--error-quantile must be between 0 and 1, got {quantile}")
    if ref.shape != cand.shape:
        raise UserError(f"cannot compare shapes {tuple(cand.shape)} and {tuple(ref.shape)}")
    absd = _errors(ref, cand, relative=False)
    reld = _errors(ref, cand, relative=True)
    if not np.all(np.isfinite(absd)):
        return ErrorStat(stat, quantile if stat == "quantile" else None, float("nan"), float("nan"), atol, rtol, False)
    if absd.size == 0:
        return ErrorStat(stat, None, 0.0, 0.0, atol, rtol, True)
    if stat == "elemwise":
        magnitude = np.abs(ref.astype(np.float64)).ravel()
        excess = absd - (atol + rtol * magnitude)
        worst = int(np.argmax(excess))
        return ErrorStat(stat, None, float(absd[worst]), float(reld[worst]), atol, rtol, bool(excess[worst] <= 0))
    a, r = _reduce(absd, stat, quantile), _reduce(reld, stat, quantile)
    return ErrorStat(stat, quantile if stat == "quantile" else None, a, r, atol, rtol, bool(a <= atol or r <= rtol))


def _reduce(values: np.ndarray, stat: str, quantile: float) -> float:
    if stat == "max":
        return float(np.max(values))
    if stat == "mean":
        return float(np.mean(values))
    if stat == "median":
        return float(np.median(values))
    return float(np.quantile(values, quantile))


def check_outputs(
    ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], atol: float, rtol: float,
    stat: str = "quantile", quantile: float = 0.99,
) -> dict[str, ErrorStat]:  # fmt: skip
    """``error_stat`` for every output of ``ref`` (by name)."""
    missing = [n for n in ref if n not in cand]
    if missing:
        raise UserError(f"candidate backend lacks output(s) {missing}; it has {sorted(cand)}")
    return {n: error_stat(ref[n], cand[n], atol, rtol, stat, quantile) for n in ref}


def _errors(ref: np.ndarray, cand: np.ndarray, relative: bool) -> np.ndarray:
    r = ref.astype(np.float64).ravel()
    d = np.abs(cand.astype(np.float64).ravel() - r)
    return d / np.maximum(np.abs(r), _REL_EPS) if relative else d
