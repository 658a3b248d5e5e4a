"""Parity metrics: the one implementation of the per-output figures, and error statistics.

``cosine_similarity``, ``rel_l2_error`` and ``max_abs_error`` compare a candidate tensor with a reference
in float64 over every element at once; parity (:mod:`attnx.deploy.parity.compare`), the layer-wise search
and calibration's agreement with FP32 (``attnx.calibration.evaluate``) all use them.

Error statistics, in the manner of Polygraphy's ``--check-error-stat``:

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


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)  # no copy when already float64


def cosine_similarity(ref: np.ndarray, cand: np.ndarray) -> float:
    """Cosine of the angle between ``ref`` and ``cand`` (same shape, any dtype), flattened, in float64.

    Returns a value in [-1, 1]; where either tensor is all zeros (no direction), 1.0 if they are equal, else 0.0.
    Non-finite values propagate (NaN); callers that must name them check first.
    """
    r, c = _f64(ref), _f64(cand)
    denom = float(np.linalg.norm(r) * np.linalg.norm(c))
    return float(np.sum(r * c) / denom) if denom > 0 else (1.0 if np.array_equal(r, c) else 0.0)


def rel_l2_error(ref: np.ndarray, cand: np.ndarray) -> float:
    """Relative L2 error ‖cand − ref‖₂ / ‖ref‖₂ in float64 (the absolute ‖cand − ref‖₂ where ``ref`` is all zeros)."""
    r, c = _f64(ref), _f64(cand)
    ref_norm = float(np.linalg.norm(r))
    return float(np.linalg.norm(c - r) / ref_norm) if ref_norm > 0 else float(np.linalg.norm(c - r))


def max_abs_error(ref: np.ndarray, cand: np.ndarray) -> float:
    """max |cand − ref| in float64, in the outputs' units (0.0 for empty tensors)."""
    d = np.abs(_f64(cand) - _f64(ref))
    return float(d.max()) if d.size else 0.0


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
        """One line: the statistic of the absolute and relative error, and whether it is within atol or rtol."""
        # quantile is None when the output is empty (nothing to rank)
        name = f"q{self.quantile:g}" if self.stat == "quantile" and self.quantile is not None else self.stat
        verdict = "within" if self.passed else "exceeds"
        return (f"{name} abs error {self.abs_value:.3g} / rel error {self.rel_value:.3g} {verdict} "
                f"atol {self.atol:g} or rtol {self.rtol:g}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The fields and :attr:`message` as a dict."""
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
