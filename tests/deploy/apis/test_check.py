"""The CI gate: passes on an unchanged run (even on a slower machine), fails on an injected accuracy drop
or slowdown, and names bad inputs."""

import copy
import json

import numpy as np
import pytest

from attnx.core.errors import UserError
from attnx.deploy.apis.check import check_table, compare_to_baseline, load_parity_file, make_record, run_check
from attnx.deploy.bench.measure import BenchResult, ConfigResult, assign_speedups, summarize
from attnx.deploy.parity.compare import POLICIES, compare
from attnx.deploy.parity.report import ParityReport

MODEL = "cbam_resnet"


def parity_report(noise: float = 0.0, precision: str = "fp32", batch: int = 1, model: str = MODEL) -> ParityReport:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((batch, 10)).astype(np.float32)
    ref[:, 3] += 5  # a clear top-1
    cand = ref + noise * rng.standard_normal(ref.shape).astype(np.float32)
    tol = POLICIES[precision]
    report = ParityReport(model, "torch", "onnxruntime (model.onnx)", precision, tol, "seeded random (seed 0)")
    report.cases.append(compare({"output": ref}, {"output": cand}, tol, f"batch {batch}",
                                {"input": (batch, 3, 64, 64)}))  # fmt: skip
    return report


def bench_result(ms: dict[str, float], threads: int = 1, model: str = MODEL, shape=(1, 3, 64, 64)) -> BenchResult:
    """A benchmark with a fixed latency per backend (tiny jitter), at batch 1."""
    result = BenchResult(model=model, reference="torch eager", options={"batches": [1]},
                         machine={"cpu": "test", "threads": threads})  # fmt: skip
    for target, latency in ms.items():
        samples = [latency * (1 + 0.01 * np.sin(i)) for i in range(50)]
        result.configs.append(ConfigResult(target, "torch" if target == "torch eager" else "ort", "fp32", "cpu", 1,
                                           {"input": list(shape)}, summarize(samples), samples))  # fmt: skip
    assign_speedups(result, block=5)  # the paired ratios the gate reads by default
    return result


BASE_MS = {"torch eager": 10.0, "ort fp32": 4.0}


@pytest.fixture
def baseline():
    return make_record([parity_report()], bench_result(BASE_MS))


def test_unchanged_run_passes_and_lists_what_was_compared(baseline):
    result = compare_to_baseline(make_record([parity_report()], bench_result(BASE_MS)), baseline)
    assert result.passed
    assert any(c.kind == "latency" and c.key == "ort fp32 batch 1" and "within limit" in c.message
               for c in result.changes)  # fmt: skip


def test_a_slower_machine_is_no_regression(baseline):
    slow_machine = {k: 2.5 * v for k, v in BASE_MS.items()}  # everything 2.5× slower, ratios unchanged
    result = compare_to_baseline(make_record([parity_report()], bench_result(slow_machine)), baseline)
    assert result.passed
    assert any("machine speed" in c.message for c in result.changes)


def test_injected_slowdown_fails(baseline):
    slower = {**BASE_MS, "ort fp32": 4.0 * 1.5}
    result = compare_to_baseline(make_record([parity_report()], bench_result(slower)), baseline)
    assert not result.passed
    (fail,) = result.failures
    assert fail.kind == "latency" and fail.key == "ort fp32 batch 1" and "+50.0%" in fail.message
    assert "paired ratio" in fail.message
    assert fail.baseline == pytest.approx(0.4, rel=0.02) and fail.fresh == pytest.approx(0.6, rel=0.02)
    by_p50 = compare_to_baseline(make_record([parity_report()], bench_result(slower)), baseline, stat="p50")
    assert [c.key for c in by_p50.failures] == ["ort fp32 batch 1"] and "p50 ratio" in by_p50.failures[0].message
    # within a looser threshold it passes; a speed-up is reported, never failed
    assert compare_to_baseline(make_record([parity_report()], bench_result(slower)), baseline, max_slowdown=0.6).passed
    faster = compare_to_baseline(make_record([parity_report()], bench_result({**BASE_MS, "ort fp32": 2.0})), baseline)
    assert faster.passed and any("faster" in c.message for c in faster.changes)


def test_injected_accuracy_drop_fails(baseline):
    result = compare_to_baseline(make_record([parity_report(noise=0.05)], bench_result(BASE_MS)), baseline)
    assert not result.passed
    assert all(c.kind == "accuracy" for c in result.failures)
    assert any("fp32 policy" in c.message and "cosine" in c.message for c in result.failures)


def test_loosened_policy_and_missing_checks_fail(baseline):
    loose = parity_report()
    loose.tolerance = loose.tolerance.with_overrides(atol=1e-2)
    result = compare_to_baseline(make_record([loose], bench_result(BASE_MS)), baseline)
    assert [c.key for c in result.failures] == ["torch vs onnxruntime (model.onnx) [fp32] tolerance atol"]
    result = compare_to_baseline(make_record([], bench_result(BASE_MS)), baseline)
    assert [c.kind for c in result.failures] == ["coverage"]  # the baseline's parity check was not run
    no_bench = compare_to_baseline(make_record([parity_report()]), baseline)
    assert [c.key for c in no_bench.failures] == ["bench"]
    only_torch = bench_result({"torch eager": 10.0})
    assert [c.key for c in compare_to_baseline(make_record([parity_report()], only_torch), baseline).failures] == [
        "ort fp32 batch 1"
    ]


def test_baseline_of_another_model_is_a_user_error(baseline):
    other = make_record([parity_report(model="se_resnet")], bench_result(BASE_MS, model="se_resnet"))
    with pytest.raises(UserError, match="baseline of model 'cbam_resnet'.*'se_resnet'"):
        compare_to_baseline(other, baseline)


def test_mismatched_shapes_and_threads_are_user_errors(baseline):
    bigger = make_record([parity_report()], bench_result(BASE_MS, shape=(1, 3, 128, 128)))
    with pytest.raises(UserError, match=r"inputs .*128.* here but .*64"):
        compare_to_baseline(bigger, baseline)
    other_parity = parity_report()
    other_parity.cases[0].input_shapes = {"input": (1, 3, 32, 32)}
    with pytest.raises(UserError, match="parity case 'batch 1'"):
        compare_to_baseline(make_record([other_parity], bench_result(BASE_MS)), baseline)
    with pytest.raises(UserError, match="1 thread"):
        compare_to_baseline(make_record([parity_report()], bench_result(BASE_MS, threads=2)), baseline)


def test_records_of_mixed_models_are_refused():
    with pytest.raises(UserError, match="different models"):
        make_record([parity_report()], bench_result(BASE_MS, model="se_resnet"))
    with pytest.raises(UserError, match="nothing to check"):
        make_record([], None)


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_run_check_from_files_update_then_gate(tmp_path):
    parity_file = _write(tmp_path / "parity.json", parity_report().to_dict())
    bench_file = _write(tmp_path / "bench.json", bench_result(BASE_MS).to_dict())
    base = tmp_path / "ci" / "baseline.json"
    with pytest.raises(UserError, match="baseline not found.*--update-baseline"):
        run_check(base, [parity_file], bench_file)
    created = run_check(base, [parity_file], bench_file, update=True)
    assert created.updated and created.passed and base.is_file()
    stored = json.loads(base.read_text())
    assert stored["model"] == MODEL and all(c["samples_ms"] == [] for c in stored["bench"]["configs"])
    assert run_check(base, [parity_file], bench_file).passed

    slow_file = _write(tmp_path / "slow.json", bench_result({**BASE_MS, "ort fp32": 8.0}).to_dict())
    failed = run_check(base, [parity_file], slow_file)
    assert not failed.passed
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(check_table(failed))
    text = console.export_text()
    assert "FAIL" in text and "ort fp32 batch 1" in text
    # --update-baseline accepts the change and says what it was
    accepted = run_check(base, [parity_file], slow_file, update=True)
    assert accepted.passed and any("slower" in c.message for c in accepted.changes)
    assert run_check(base, [parity_file], slow_file).passed


def test_bad_files_are_user_errors(tmp_path, baseline):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    parity_file = _write(tmp_path / "parity.json", parity_report().to_dict())
    with pytest.raises(UserError, match="not valid JSON"):
        run_check(garbage, [parity_file], None)
    with pytest.raises(UserError, match="not an attnx parity report"):
        load_parity_file(_write(tmp_path / "p.json", {"hello": 1}))
    with pytest.raises(UserError, match="not an attnx baseline"):
        run_check(_write(tmp_path / "b.json", {"format": "other"}), [parity_file])
    with pytest.raises(UserError, match="not an attnx benchmark"):
        run_check(_write(tmp_path / "base.json", baseline), [], _write(tmp_path / "x.json", {"model": MODEL}))
    with pytest.raises(UserError, match="not an attnx benchmark result \\(format 'list'\\)"):
        run_check(_write(tmp_path / "base.json", baseline), [], _write(tmp_path / "l.json", [1, 2]))
    with pytest.raises(UserError, match="record version 'x', not an integer"):
        run_check(_write(tmp_path / "v.json", {**baseline, "version": "x"}), [parity_file])
    with pytest.raises(UserError, match="--max-slowdown"):
        compare_to_baseline(baseline, copy.deepcopy(baseline), max_slowdown=-0.1)
    with pytest.raises(UserError, match="statistic"):
        compare_to_baseline(baseline, copy.deepcopy(baseline), stat="p42")
