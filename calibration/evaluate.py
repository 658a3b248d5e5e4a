"""How close a reduced-precision model stays to its FP32 source, on held-out or seeded inputs.

Cosine similarity per output (over all samples at once) and, for classifier outputs (N, K), top-1
agreement with FP32. A model's accuracy cannot change by more than its disagreement with the FP32 model,
so disagreement bounds the accuracy drop without labels (the zoo's weights are seeded, not trained, so
there is no accuracy to read). Two figures:

* ``top1_drop_all``: disagreement over every sample;
* ``top1_drop``: disagreement over the samples whose FP32 top-2 gap exceeds ``margin`` (the parity
  policy's atol, as in ``attnx.deploy.parity.compare``): untrained models have near-tied logits, and a near-tie flips
  under any perturbation. This is the figure budgets are held to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.graph import session
from attnx.deploy.parity.compare import top1_agreement
from attnx.deploy.parity.metrics import cosine_similarity, max_abs_error

if TYPE_CHECKING:
    import onnx

    from attnx.calibration.data import CalibrationData


@dataclass
class Agreement:
    """How a candidate model's outputs agree with FP32 reference outputs over ``samples`` inputs.

    Attributes:
        cosine: output name → cosine similarity in [-1, 1] over all samples flattened together (NaN for
            a non-finite output).
        top1: classifier outputs (N, K) only: fraction in [0, 1] of samples whose argmax agrees.
        top1_clear: classifier outputs: (agreement fraction, sample count) over the samples whose FP32
            top-2 gap exceeds ``margin``.
        max_abs: output name → largest absolute difference (output units), finite outputs only.
        samples: number of samples N compared.
        margin: the top-2 gap (logit units) a sample needs to count in ``top1_clear``.
        nonfinite: outputs where the candidate produced NaN or ±inf.
    """

    cosine: dict[str, float] = field(default_factory=dict)
    top1: dict[str, float] = field(default_factory=dict)  # classifier outputs only, every sample
    top1_clear: dict[str, tuple[float, int]] = field(default_factory=dict)  # (agreement, samples) beyond margin
    max_abs: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    margin: float = 0.0
    nonfinite: list[str] = field(default_factory=list)

    @property
    def min_cosine(self) -> float:
        """The worst output's cosine (1.0 with no outputs)."""
        return min(self.cosine.values()) if self.cosine else 1.0

    @property
    def top1_drop_all(self) -> float:
        """Percentage points of top-1 disagreement with FP32 over all samples (worst output); 0 without one."""
        return 100.0 * (1.0 - min(self.top1.values())) if self.top1 else 0.0

    @property
    def top1_drop(self) -> float:
        """Disagreement in points over the samples with a clear FP32 top-1 (0 when none is clear)."""
        counted = [a for a, n in self.top1_clear.values() if n]
        return 100.0 * (1.0 - min(counted)) if counted else 0.0

    def within(self, min_cosine: float, max_top1_drop: float) -> bool:
        """True when every output is finite, ``min_cosine`` is reached and ``top1_drop`` (percentage points,
        1e-9 slack for rounding) is at most ``max_top1_drop``: the sensitivity budget's test."""
        return not self.nonfinite and self.min_cosine >= min_cosine and self.top1_drop <= max_top1_drop + 1e-9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report: the figures rounded for reading (cosine to 7 decimals, top-1 drop in points to
        3, agreement fractions to 5, max_abs to 4 significant digits)."""
        return {
            "samples": self.samples,
            "min_cosine": round(self.min_cosine, 7),
            "top1_drop_points": round(self.top1_drop, 3),
            "top1_drop_points_all": round(self.top1_drop_all, 3),
            "top1_margin": self.margin,
            "cosine": {k: round(v, 7) for k, v in self.cosine.items()},
            "top1_agreement": {k: round(v, 5) for k, v in self.top1.items()},
            "top1_clear": {k: {"agreement": round(a, 5), "samples": n} for k, (a, n) in self.top1_clear.items()},
            "max_abs": {k: float(f"{v:.4g}") for k, v in self.max_abs.items()},
            "nonfinite": self.nonfinite,
        }


def run(
    model_or_session: onnx.ModelProto | Any, data: CalibrationData, batch_size: int, threads: int | None = None
) -> dict[str, np.ndarray]:
    """All outputs over all samples, batch by batch (concatenated along the first axis).

    ``model_or_session`` is an ONNX model (run in ONNX Runtime on CPU, :func:`attnx.calibration.graph.session`)
    or an object with ONNX Runtime's ``get_outputs`` / ``run``. Returns output name → array (N, ...) in the
    output's own dtype (an empty array when ``data`` has no samples). ONNX Runtime's errors pass through.
    """
    sess = session(model_or_session, threads=threads) if hasattr(model_or_session, "graph") else model_or_session
    names = [o.name for o in sess.get_outputs()]
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in data.batches(batch_size):
        for n, out in zip(names, sess.run(names, feed)):
            chunks[n].append(np.asarray(out))
    return {n: np.concatenate(v) if v else np.empty(0) for n, v in chunks.items()}


def agreement(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], margin: float = 0.0) -> Agreement:
    """How ``cand`` agrees with ``ref`` (output name → array, samples on axis 0): per output, cosine and max abs
    error (``attnx.deploy.parity.metrics``, float64) and, for (N, K) classifier outputs, top-1 agreement over
    every sample and over the samples whose reference top-2 gap exceeds ``margin``. A non-finite candidate
    output is listed in ``nonfinite`` with cosine NaN. Raises KeyError when ``cand`` lacks an output of ``ref``."""
    result = Agreement(samples=int(next(iter(ref.values())).shape[0]) if ref else 0, margin=margin)
    for name, r in ref.items():
        c = cand[name].astype(np.float64)
        r64 = r.astype(np.float64)
        if not np.isfinite(c).all():
            result.nonfinite.append(name)
            result.cosine[name] = float("nan")
            continue
        result.cosine[name] = cosine_similarity(r64, c)
        result.max_abs[name] = max_abs_error(r64, c)
        if r.ndim == 2 and r.shape[1] > 1:
            result.top1[name] = float(np.mean(np.argmax(r, axis=1) == np.argmax(c, axis=1)))
            clear, n = top1_agreement(r64, c, margin)
            result.top1_clear[name] = (clear if clear is not None else 1.0, n)
    return result


def compare_models(
    reference: dict[str, np.ndarray],
    candidate: onnx.ModelProto,
    data: CalibrationData,
    batch_size: int,
    threads: int | None = None,
    margin: float = 0.0,
) -> Agreement:
    """Run ``candidate`` over ``data`` (ONNX Runtime, CPU) and compare with ``reference`` (its FP32 outputs on
    the same samples, as :func:`run` returns them): :func:`agreement` with top-1 ``margin``."""
    return agreement(reference, run(candidate, data, batch_size, threads), margin)
