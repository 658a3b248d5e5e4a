"""Benchmark statistics on known samples, the interleaved scheduler, and one small real run.

No test here asserts a speed: timings on a shared CI machine say nothing; `make bench` measures.
"""

import math
import sys

import numpy as np
import pytest

from attnx.core.errors import UserError
from attnx.deploy.bench.measure import (
    BenchOptions,
    BenchResult,
    BenchTarget,
    assign_speedups,
    measure,
    paired_ratios,
    steady_malloc,
    summarize,
)


def test_statistics_of_known_samples():
    s = summarize(list(range(1, 101)), batch=4)  # 1..100 ms
    assert s.n == 100 and s.mean_ms == 50.5 and s.min_ms == 1 and s.max_ms == 100
    # NumPy's linear interpolation: position q·(n−1) in the sorted samples
    assert (s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms) == pytest.approx((50.5, 90.1, 95.05, 99.01))
    assert s.iqr_ms == pytest.approx(75.25 - 25.75)
    assert s.std_ms == pytest.approx(math.sqrt(sum((x - 50.5) ** 2 for x in range(1, 101)) / 99))
    assert s.cv == pytest.approx(s.std_ms / 50.5)
    assert s.throughput == pytest.approx(4 * 1000 / 50.5)  # items/s at batch 4


def test_statistics_edge_cases():
    one = summarize([2.0])
    assert one.std_ms == 0 and one.cv == 0 and one.p99_ms == 2.0 and one.throughput == 500
    skewed = summarize([1.0] * 98 + [50.0, 100.0])
    assert skewed.p50_ms == 1.0 and skewed.p99_ms == pytest.approx(50.5) and skewed.max_ms == 100
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0], batch=0)


def test_paired_ratio_cancels_load_shared_within_a_round():
    ref = [10.0] * 5 + [30.0] * 5 + [10.0] * 5  # the middle round ran while the machine was busy ...
    fast = [4.0] * 5 + [12.0] * 5 + [4.0] * 5  # ... for both backends
    assert paired_ratios(fast, ref, block=5).tolist() == pytest.approx([0.4, 0.4, 0.4])
    assert paired_ratios(fast[:12], ref, block=5).size == 2  # whole rounds only
    # one slow burst inside a block moves that block's median not at all
    burst = [4.0, 4.0, 40.0, 4.0, 4.0] + [12.0] * 5 + [4.0] * 5
    assert float(np.median(paired_ratios(burst, ref, block=5))) == pytest.approx(0.4)


def test_assign_speedups_uses_the_paired_ratio():
    from attnx.deploy.bench.measure import ConfigResult

    result = BenchResult("m", "torch eager", {}, {})
    drift = [10.0, 10.0, 20.0, 20.0, 40.0, 40.0]  # the machine slows down through the run
    for name, scale in (("torch eager", 1.0), ("ort fp32", 0.25)):
        samples = [scale * x for x in drift]
        result.configs.append(ConfigResult(name, "x", "fp32", "cpu", 1, {}, summarize(samples), samples))
    assign_speedups(result, block=2)
    ort = result.config("ort fp32", 1)
    assert ort.ratio_to_reference == pytest.approx(0.25) and ort.speedup == pytest.approx(4.0)
    assert ort.ratio_iqr == pytest.approx(0.0) and ort.block == 2
    assert result.config("torch eager", 1).speedup == pytest.approx(1.0)


def _logging_target(name, log, max_batch=None):
    return BenchTarget(name=name, backend="fake", precision="fp32", infer=lambda feed: log.append(name),
                       max_batch=max_batch)  # fmt: skip


def test_scheduler_interleaves_with_a_rotating_order():
    log: list[str] = []
    targets = [_logging_target(n, log) for n in "ABC"]
    results = measure(targets, {}, 1, BenchOptions(warmup=2, iterations=6, block=2))
    assert log[:6] == ["A", "A", "B", "B", "C", "C"]  # warm-up, each in turn
    timed = "".join(log[6:])
    assert timed == "AABBCC" + "BBCCAA" + "CCAABB"  # 3 rounds, order rotated each round
    assert [len(m.samples_ms) for m in results] == [6, 6, 6]
    assert all(t >= 0 for m in results for t in m.samples_ms)


def test_scheduler_trims_to_iterations_and_runs_by_duration():
    log: list[str] = []
    results = measure([_logging_target("A", log)], {}, 1, BenchOptions(warmup=0, iterations=7, block=5))
    assert len(results[0].samples_ms) == 7  # two blocks of 5 ran, 7 kept
    log.clear()
    results = measure([_logging_target("A", log), _logging_target("B", log)], {}, 1,
                      BenchOptions(warmup=0, iterations=None, duration_s=0.05, block=3))  # fmt: skip
    a, b = (len(m.samples_ms) for m in results)
    assert a == b and a >= 3 and a % 3 == 0  # whole rounds: every backend gets the same count


def test_gpu_timing_hook_supplies_latency_and_phases():
    def hook(feed, n):
        return [{"latency_ms": 1.0 + i, "h2d_ms": 0.1, "compute_ms": 0.8 + i, "d2h_ms": 0.1, "enqueue_ms": 0.02}
                for i in range(n)]  # fmt: skip

    t = BenchTarget("trt fp16", "trt", "fp16", infer=lambda f: pytest.fail("infer is not timed when a hook exists"),
                    device="gpu", timed=hook)  # fmt: skip
    (m,) = measure([t], {}, 1, BenchOptions(warmup=1, iterations=4, block=2))
    assert m.samples_ms == [1.0, 2.0, 1.0, 2.0]
    assert set(m.phases_ms) == {"h2d_ms", "compute_ms", "d2h_ms", "enqueue_ms"}
    assert m.phases_ms["compute_ms"] == [0.8, 1.8, 0.8, 1.8]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batches": (0,)}, "batch sizes"),
        ({"iterations": None}, "--iterations"),
        ({"duration_s": -1.0}, "--duration"),
        ({"threads": 0}, "--threads"),
        ({"warmup": -1}, "--warmup"),
    ],
)
def test_bad_options_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        BenchOptions(**kwargs).validate()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_steady_malloc_reports_what_it_did():
    text = steady_malloc()
    assert "pinned" in text or "not glibc" in text


def test_inputs_are_seeded_and_shared():
    """Every backend at a batch gets the same array (one feed per batch)."""
    seen = []

    def spy(feed):
        seen.append(next(iter(feed.values())).copy())

    t1 = BenchTarget("a", "fake", "fp32", spy)
    t2 = BenchTarget("b", "fake", "fp32", spy)
    feed = {"input": np.arange(6, dtype=np.float32)}
    measure([t1, t2], feed, 1, BenchOptions(warmup=0, iterations=1, block=1))
    assert len(seen) == 2 and np.array_equal(seen[0], seen[1])
