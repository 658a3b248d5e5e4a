"""The error-statistic check (Polygraphy's --check-error-stat) on known arrays."""

import numpy as np
import pytest

from attnx.core.errors import UserError
from attnx.deploy.parity.metrics import check_outputs, error_quantile, error_stat


def test_quantile_of_known_errors():
    ref = np.zeros(101)
    cand = np.arange(101, dtype=np.float64)  # |Δ| = 0..100
    assert error_quantile(ref, cand, 0.99) == pytest.approx(99.0)
    assert error_quantile(ref, cand, 0.5) == pytest.approx(50.0)
    ref2 = np.full(4, 2.0)
    assert error_quantile(ref2, ref2 + np.array([0, 0, 1, 2]), 1.0, relative=True) == pytest.approx(1.0)
    with pytest.raises(UserError, match="between 0 and 1"):
        error_quantile(ref, cand, 1.5)


def test_one_outlier_fails_max_and_elemwise_but_not_the_quantile():
    ref = np.linspace(1.0, 2.0, 1000)
    cand = ref + 1e-4
    cand[7] += 1.0  # one element in a thousand is off
    assert not error_stat(ref, cand, atol=1e-3, rtol=1e-3, stat="max").passed
    assert not error_stat(ref, cand, atol=1e-3, rtol=1e-3, stat="elemwise").passed
    q = error_stat(ref, cand, atol=1e-3, rtol=1e-3, stat="quantile", quantile=0.99)
    assert q.passed and q.abs_value == pytest.approx(1e-4) and "q0.99" in q.message
    assert error_stat(ref, cand, atol=1e-3, rtol=1e-3, stat="median").passed
    assert not error_stat(ref, cand, atol=1e-3, rtol=1e-3, stat="quantile", quantile=1.0).passed


def test_pass_by_relative_error_when_absolute_is_large():
    ref = np.full(10, 1000.0)
    cand = ref + 0.5  # |Δ| = 0.5 > atol, but |Δ|/|ref| = 5e-4 ≤ rtol
    s = error_stat(ref, cand, atol=1e-3, rtol=1e-3, stat="mean")
    assert s.passed and s.abs_value == pytest.approx(0.5) and s.rel_value == pytest.approx(5e-4)
    assert not error_stat(ref, cand, atol=1e-3, rtol=1e-4, stat="mean").passed


def test_nonfinite_shapes_and_names():
    ref = np.ones(3)
    assert not error_stat(ref, np.array([1.0, np.nan, 1.0]), 1, 1, "median").passed
    with pytest.raises(UserError, match="unknown error statistic"):
        error_stat(ref, ref, 1e-3, 1e-3, stat="p99")
    with pytest.raises(UserError, match="shapes"):
        error_stat(ref, np.ones(4), 1e-3, 1e-3)
    out = check_outputs({"y": ref}, {"y": ref, "z": ref}, 1e-3, 1e-3)
    assert out["y"].passed and out["y"].to_dict()["message"]
    with pytest.raises(UserError, match="lacks output"):
        check_outputs({"y": ref, "w": ref}, {"y": ref}, 1e-3, 1e-3)


def test_an_empty_output_has_a_message_under_every_statistic():
    empty = np.zeros((0, 4), np.float32)
    for stat in ("quantile", "max", "mean"):
        assert "abs error" in error_stat(empty, empty, 1e-3, 1e-3, stat=stat).message
