"""What a parity run reports, and its JSON: the one home of the report structures.

* :class:`ParityReport` — a reference backend against a candidate on one or more input cases
  (:class:`ParityCase`), each output judged by :func:`attnx.deploy.parity.compare.compare_output`
  (:class:`OutputComparison`);
* :class:`LayerwiseReport` — the layer-wise search (:mod:`attnx.deploy.parity.layerwise`): every matched
  tensor (:class:`TensorCheck`), the unmatched ones (:class:`Unmatched`) and the first divergence;
* :func:`json_safe` — NaN/Inf as strings, so every ``to_dict()`` is standard JSON.

Rendering for people (rich tables) is the CLI's (``attnx.deploy.cli.tables``); JUnit XML is
``attnx.deploy.cli.junit``'s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attnx.deploy.parity.compare import Tolerance


@dataclass
class OutputComparison:
    """One output of one case: errors in float64 over the whole tensor (absolute errors in the output's
    units, ``rel_l2`` = ‖c − r‖ / ‖r‖, ``cosine`` in [-1, 1]) and the policy's failures (empty: passed)."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float
    worst_excess: float  # max of |d| − (atol + rtol·|ref|); ≤ 0 means the elementwise check holds
    error_stat: dict | None = None  # the statistic's values and verdict when the policy uses one
    top1: float | None = None  # agreement over unambiguous samples, for (N, K) classifier outputs
    top1_samples: int = 0
    nonfinite: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the output meets every criterion of the policy (no failures)."""
        return not self.failures


@dataclass
class ParityCase:
    """One comparison run: one set of inputs through both backends."""

    label: str  # e.g. "batch 3"
    input_shapes: dict[str, tuple[int, ...]]
    outputs: list[OutputComparison]

    @property
    def passed(self) -> bool:
        """True when every output of the case passes."""
        return all(o.passed for o in self.outputs)


@dataclass
class ParityReport:
    """A parity run: ``reference`` against ``candidate`` under ``precision``'s ``tolerance``, one
    :class:`ParityCase` per input set. ``to_dict()`` is its JSON (``attnx parity --json``, the CI records)."""

    model: str
    reference: str
    candidate: str
    precision: str
    tolerance: Tolerance
    input_source: str  # "seeded random (seed 0)" or the file
    cases: list[ParityCase] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when there is at least one case and every case passes."""
        return bool(self.cases) and all(c.passed for c in self.cases)

    def to_dict(self) -> dict:
        """JSON-ready data (non-finite floats as strings), with ``passed`` on the report, every case and output."""
        d = asdict(self)
        d["passed"] = self.passed
        for case, cd in zip(self.cases, d["cases"]):
            cd["passed"] = case.passed
            for out, od in zip(case.outputs, cd["outputs"]):
                od["passed"] = out.passed
        return json_safe(d)  # type: ignore[return-value]


@dataclass
class TensorCheck:
    """One matched tensor: where it is produced in the reference graph and how far the candidate is."""

    order: int  # position of the producing node in the reference's topological order
    node: str
    op_type: str
    tensor: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float
    failures: list[str] = field(default_factory=list)
    # False: the engine's exposed value does not reproduce the engine's own outputs (fed through the reference's
    # downstream graph it gives other outputs than the engine does), so it is not evidence of a divergence
    trusted: bool = True
    onnx_node: str = ""  # PyTorch reference: the ONNX node whose output the module output was matched to

    @property
    def passed(self) -> bool:
        """True when the tensor is within the policy (no failures)."""
        return not self.failures


@dataclass
class Unmatched:
    """A reference tensor with no same-named, same-shaped tensor in the candidate (fused away, renamed)."""

    order: int
    node: str
    op_type: str
    tensor: str


@dataclass
class LayerwiseReport:
    """A layer-wise search: the matched tensors in the reference's topological order, the unmatched ones,
    and (properties) the first trusted divergence, the tensors around it and a one-line ``summary()``."""

    reference: str
    candidate: str
    precision: str
    tolerance: Tolerance
    input_shapes: dict[str, tuple[int, ...]]
    checks: list[TensorCheck] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference_kind: str = "onnx"  # "pytorch": module outputs (forward hooks) against the ONNX tensors they map to
    # The final outputs of both sides: None when not compared, else whether they agree under the policy.
    outputs_agree: bool | None = None
    outputs_note: str = ""  # how the final outputs differ (when they do)
    # Non-empty when exposing intermediates changed the engine's own final outputs: nothing it exposes is trusted.
    engine_outputs_changed: str = ""

    @property
    def first_divergence(self) -> TensorCheck | None:
        """The first trusted tensor, in the reference's topological order, outside the policy; None when none is, or
        when exposing intermediates changed the engine's own outputs (nothing is trusted then).
        """
        if self.engine_outputs_changed:
            return None
        return next((c for c in self.checks if not c.passed and c.trusted), None)

    @property
    def untrusted(self) -> list[TensorCheck]:
        """Divergent engine tensors that do not reproduce the engine's own outputs (not evidence)."""
        return [c for c in self.checks if not c.passed and not c.trusted]

    @property
    def last_agreeing(self) -> TensorCheck | None:
        """The last tensor before the first divergence that still agreed (where the error starts)."""
        first = self.first_divergence
        before = [c for c in self.checks if c.passed and (first is None or c.order < first.order)]
        return before[-1] if before else None

    @property
    def suspects(self) -> list[Unmatched]:
        """Unmatched nodes between the last agreeing tensor and the first divergence: the error may have
        entered there (a fused pattern hides their outputs), not at the first divergent node itself."""
        first = self.first_divergence
        if first is None:
            return []
        last = self.last_agreeing
        lo = last.order if last else -1
        return [u for u in self.unmatched if lo < u.order < first.order]

    @property
    def passed(self) -> bool:
        """True when at least one tensor was compared, none diverges (trusted or not), the final outputs do not differ,
        and exposing intermediates left the engine's outputs unchanged.
        """
        return (bool(self.checks) and self.first_divergence is None and self.outputs_agree is not False
                and not self.engine_outputs_changed and not self.untrusted)  # fmt: skip

    def summary(self) -> str:
        """One line for people: the first divergence and its possible causes, or that the tensors agree."""
        first = self.first_divergence
        n = len(self.checks)
        torch_ref = self.reference_kind == "pytorch"
        what = "mapped" if torch_ref else "matched"
        if self.engine_outputs_changed:
            return self.engine_outputs_changed
        differ = f" ({self.outputs_note})" if self.outputs_note else ""
        if not self.checks:
            text = (f"no PyTorch module output of {self.reference} maps to a tensor of {self.candidate}"
                    if torch_ref else f"no tensor of {self.reference} could be matched in {self.candidate}")
            if self.outputs_agree is False:
                text += f"; the outputs differ{differ}, at a place the search cannot locate"
            return text
        untrusted = self.untrusted
        distrust = ""
        if untrusted:
            names = ", ".join(f"'{c.tensor}' at '{c.node}' ({c.op_type}, cosine {c.cosine:.3f})" for c in untrusted[:4])
            distrust = (f"; not trusted, because the engine's exposed value does not reproduce the engine's own "
                        f"outputs (the engine does not compute the exposed value it returns): {names}")  # fmt: skip
        if first is None:
            if self.outputs_agree is False:
                tail = self.checks[-1]
                return (f"all {n} {what} tensors agree within the {self.precision} policy, but the outputs differ"
                        f"{differ}: the divergence is after the last {what} tensor ('{tail.tensor}' of '{tail.node}') "
                        f"or in a part with no {'module mapping' if torch_ref else 'matching tensor'}{distrust}")
            if untrusted:
                return f"no trusted tensor diverges ({n} {what}){distrust}"
            return f"all {n} {what} tensors agree within the {self.precision} policy"
        where = (f"module '{first.node}' ({first.op_type}), ONNX tensor '{first.tensor}'"
                 + (f" of node '{first.onnx_node}'" if first.onnx_node else "")
                 if torch_ref else f"node '{first.node}' ({first.op_type}), tensor '{first.tensor}'")  # fmt: skip
        text = (
            f"first divergence at {where} "
            f"[{first.order}]: {'; '.join(first.failures)} (max abs {first.max_abs:.3g}, rel L2 {first.rel_l2:.3g}, "
            f"cosine {first.cosine:.6f}); {sum(not c.passed for c in self.checks)} of {n} {what} tensors diverge"
        )
        last = self.last_agreeing
        if torch_ref and last is not None:
            text += f"; the last agreeing module before it is '{last.node}' ({last.op_type})"
        suspects = self.suspects
        if suspects:
            names = ", ".join(f"'{u.node}' ({u.op_type})" for u in suspects)
            text += (f"; modules between them with no ONNX tensor to compare: {names}" if torch_ref else
                     f"; not comparable in the candidate (fused or renamed), so possibly the cause: {names}")
        return text + distrust

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (non-finite floats as strings), with ``passed`` per check, ``first_divergence``,
        ``suspects``, ``passed`` and ``summary``.
        """
        d = asdict(self)
        for check, cd in zip(self.checks, d["checks"]):
            cd["passed"] = check.passed
        first = self.first_divergence
        d["first_divergence"] = None if first is None else {**asdict(first), "passed": False}
        d["suspects"] = [asdict(u) for u in self.suspects]
        d["passed"] = self.passed
        d["summary"] = self.summary()
        return json_safe(d)  # type: ignore[return-value]


def json_safe(obj: object) -> object:
    """``obj`` with every non-finite float written as a string (``"nan"``, ``"inf"``), recursively through dicts,
    lists and tuples (tuples become lists): JSON has no NaN/Inf, so the file stays standard JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
