"""The parity metrics and policy on known arrays."""

import math

import numpy as np
import pytest

from attnx.core.errors import UserError
from attnx.deploy.parity.compare import POLICIES, compare, compare_output, policy, top1_agreement

FP32 = POLICIES["fp32"]


def test_identical_outputs_pass_with_zero_error():
    ref = np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32)
    out = compare_output("logits", ref, ref.copy(), FP32)
    assert out.passed
    assert out.max_abs == 0 and out.mean_abs == 0 and out.rel_l2 == 0
    assert out.cosine == pytest.approx(1.0)
    assert out.top1 == 1.0 and out.top1_samples == 3


def test_metrics_match_hand_computation():
    ref = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    cand = np.array([[1.0, 2.5, 2.0]], dtype=np.float32)
    out = compare_output("y", ref, cand, FP32)
    assert out.max_abs == pytest.approx(1.0)
    assert out.mean_abs == pytest.approx(0.5)
    assert out.rel_l2 == pytest.approx(math.sqrt(1.25) / math.sqrt(14))
    assert out.cosine == pytest.approx((1 + 5 + 6) / (math.sqrt(14) * math.sqrt(1 + 6.25 + 4)))
    assert out.top1 == 0.0  # argmax moved from class 2 to class 1
    assert not out.passed and len(out.failures) == 4


def test_error_just_inside_and_just_outside_tolerance():
    ref = np.zeros((2, 5), dtype=np.float32)
    ref[:, 0] = 10.0  # a clear winner, so top-1 is counted
    inside = ref + 0.9 * FP32.atol
    outside = ref.copy()
    outside[0, 3] += 3 * FP32.atol
    assert compare_output("y", ref, inside, FP32).passed
    failing = compare_output("y", ref, outside, FP32)
    assert not failing.passed and "max abs" in failing.failures[0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_candidate_fails_and_is_named(bad):
    ref = np.ones((1, 4), dtype=np.float32)
    cand = ref.copy()
    cand[0, 2] = bad
    out = compare_output("y", ref, cand, FP32)
    assert not out.passed
    assert out.nonfinite and ("NaN" in out.nonfinite and "Inf" in out.nonfinite)
    assert ("1 NaN" in out.nonfinite) == bool(np.isnan(bad))


def test_shape_mismatch_fails():
    out = compare_output("y", np.zeros((2, 3)), np.zeros((3, 2)), FP32)
    assert not out.passed and "shape" in out.failures[0]


def test_top1_ignores_reference_near_ties():
    ref = np.array([[1.0, 1.0 + 1e-7, 0.0], [5.0, 0.0, 0.0]])
    cand = np.array([[1.0 + 1e-7, 1.0, 0.0], [5.0, 0.0, 0.0]])  # the tie flips: not a disagreement
    agreement, counted = top1_agreement(ref, cand, margin=1e-4)
    assert (agreement, counted) == (1.0, 1)


def test_policy_lookup_and_overrides():
    assert policy("fp16").min_cosine == 0.999
    assert policy("fp32").with_overrides(atol=0.5, rtol=None).atol == 0.5
    with pytest.raises(UserError, match="unknown precision policy 'fp8'"):
        policy("fp8")


def test_compare_reports_missing_outputs():
    with pytest.raises(UserError, match="lacks output"):
        compare({"a": np.zeros(1)}, {"b": np.zeros(1)}, FP32, "batch 1", {})


def test_report_json_is_standard_json():
    import json

    from attnx.deploy.parity.report import ParityCase, ParityReport

    nan_out = compare_output("y", np.ones((1, 4)), np.full((1, 4), np.nan), FP32)
    case = ParityCase("batch 1", {"input": (1, 4)}, [nan_out])
    report = ParityReport("m", "torch", "ort", "fp32", FP32, "seeded", [case])
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert '"passed": false' in text
