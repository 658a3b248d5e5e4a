"""deploy/tools/gpu_check.py: the one-shot GPU check, kept from rotting on the CPU.

The dry mode runs as CI runs it (a fresh process, Triton's interpreter, tiny sizes); a wrong reference
must fail it. The CUDA sections (cuda_mem, runtime) run here against the fake CUDA runtime of
tests/fakes/tensorrt.py (device-to-device copies and cudaMemGetInfo included), with the same fake
TensorRT the GPU run uses, so their logic is checked; whether a real device agrees is what the GPU run
is for (the ``gpu`` test at the end, skipped without CUDA).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnx.deploy.tools import gpu_check
from tests.fakes.tensorrt import FakeCudart
from tests.helpers import REPO_ROOT as ROOT


def _load(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "gpu_check.json").read_text())
    return data


def test_dry_mode_writes_json_and_markdown_and_passes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # --dry must set it itself
    proc = subprocess.run(
        [sys.executable, "-m", "attnx.deploy.tools.gpu_check", "--dry", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = _load(tmp_path)
    assert data["mode"] == "dry" and data["ok"] is True
    checks = data["sections"]["numerics"]["checks"]
    # GridSample and AffineGridSample: 3 modes x 3 paddings x 2 align_corners x 2 dtypes; DoubleNorm 4 x 2.
    assert len(checks) == 36 + 36 + 8
    assert all(c["ok"] and c["ok_ref"] and c["ok_torch"] for c in checks)
    assert {(c["op"], c["dtype"]) for c in checks} == {(o, d) for o in gpu_check.OPS for d in gpu_check.DTYPES}
    for name in ("timing", "cuda_mem", "runtime"):
        assert data["sections"][name]["status"].startswith("skipped: no CUDA")
    md = (tmp_path / "gpu_check.md").read_text()
    assert "PASS" in md and "| GridSample | float16 | 18 |" in md and "| timing | skipped: no CUDA" in md
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_wrong_reference_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refs = gpu_check._references()
    right = refs["DoubleNorm"]

    def wrong(attn: np.ndarray, eps: float = 1e-9) -> np.ndarray:
        out = right(attn, eps)
        return (out * 1.01).astype(out.dtype)

    monkeypatch.setattr(gpu_check, "REFERENCES", {**refs, "DoubleNorm": wrong})
    rc = gpu_check.main(["--dry", "--out", str(tmp_path), "--ops", "DoubleNorm", "--sections", "numerics"])
    assert rc == 1
    data = _load(tmp_path)
    assert data["ok"] is False and data["sections"]["numerics"]["status"] == "fail"
    failed = [c for c in data["sections"]["numerics"]["checks"] if not c["ok"]]
    assert failed and all(not c["ok_ref"] and c["ok_torch"] for c in failed)
    assert "FAIL" in (tmp_path / "gpu_check.md").read_text()


def test_without_cuda_a_full_run_fails_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if gpu_check._cuda_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # a GPU run refuses the interpreter
    assert gpu_check.main(["--out", str(tmp_path)]) == 1
    data = _load(tmp_path)
    assert "no CUDA" in data["note"]
    assert all(s["status"] == "skipped: no CUDA" for s in data["sections"].values())


@pytest.mark.parametrize("op", gpu_check.OPS)
def test_bench_functions_compute_the_same_as_torch(op: str) -> None:
    # The timing section's inputs and calls, on tiny CPU shapes in the interpreter.
    shape = {"DoubleNorm": (2, 37, 16)}.get(op, (2, 3, 9, 11))
    case = {"op": op, "shape": shape, "mode": "bilinear", "dtype": "float32", "large": False}
    kernel_fn, torch_fn, nbytes = gpu_check._bench_fns(case, dev="cpu")
    np.testing.assert_allclose(kernel_fn().numpy(), torch_fn().numpy(), atol=1e-4)
    assert nbytes >= 2 * 4 * int(np.prod(shape))
    assert {c["op"] for c in gpu_check._bench_cases(list(gpu_check.OPS))} == set(gpu_check.OPS)


def test_timing_section_assembles_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # CUDA events and the copy peak replaced by constants; inputs, calls and arithmetic as on the GPU.
    tiny = [
        {"op": "GridSample", "shape": (1, 2, 5, 7), "mode": "nearest", "dtype": "float16", "large": True},
        {"op": "DoubleNorm", "shape": (1, 9, 4), "dtype": "float32", "large": False},
    ]
    monkeypatch.setattr(gpu_check, "_bench_cases", lambda ops: tiny)
    on_cpu = gpu_check._bench_fns
    monkeypatch.setattr(gpu_check, "_bench_fns", lambda case: on_cpu(case, dev="cpu"))
    monkeypatch.setattr(gpu_check, "_median_us", lambda fn: (fn(), 10.0)[1])
    monkeypatch.setattr(gpu_check, "_peak_copy_bytes_per_s", lambda: {"bytes_per_s": 1e9, "copy_mib": 1})
    report = gpu_check.Report("gpu")
    gpu_check.section_timing(report, list(gpu_check.OPS))
    rows = report.data["sections"]["timing"]["checks"]
    assert [r["op"] for r in rows] == ["GridSample", "DoubleNorm"] and all(r["ok"] for r in rows)
    gs = rows[0]
    assert gs["bytes"] == 2 * (70 + 70 + 70) and gs["bound_us"] == pytest.approx(gs["bytes"] / 1e3)
    assert gs["x_bound"] == pytest.approx(10.0 / gs["bound_us"]) and gs["ratio_to_torch"] == 1.0
    assert gs["meets_target"] is False and "meets_target" not in rows[1]  # 10 µs against a 0.42 µs bound
    assert "| GridSample | 1×2×5×7 | nearest | float16 | 10.0 |" in gpu_check.markdown(report.data)


def test_markdown_renders_every_section() -> None:
    data = {
        "mode": "gpu", "ok": False, "seconds": 12.0,
        "env": {"gpu": "NVIDIA H200", "driver": "580.1", "torch": "2.11", "triton": "3.6"},
        "sections": {
            "timing": {"status": "ok", "peak": {"bytes_per_s": 4.3e12, "copy_mib": 1024}, "checks": [
                {"ok": True, "op": "GridSample", "shape": [8, 256, 64, 64], "mode": "bilinear", "dtype": "float16",
                 "median_us": 20.0, "bytes_per_s": 2e12, "bound_us": 9.0, "x_bound": 2.2, "torch_median_us": 30.0,
                 "ratio_to_torch": 0.67, "meets_target": False},
                {"ok": False, "op": "DoubleNorm", "shape": [1, 3136, 64], "dtype": "float32", "error": "boom"},
            ]},
            "cuda_mem": {"status": "fail", "checks": [
                {"ok": False, "check": "no device memory leak", "leaked_bytes": 9}]},
        },
    }  # fmt: skip
    md = gpu_check.markdown(data)
    assert "4.30 TB/s" in md and "| 2.20 |" in md and "missed" in md and "error: boom" in md
    assert "FAIL: no device memory leak" in md and "NVIDIA H200" in md


# -- the CUDA sections against a fake CUDA runtime --------------------------------------------------------


@pytest.fixture
def fake_cuda() -> Iterator[FakeCudart]:
    from attnx.deploy.backends.tensorrt import cuda_mem

    fake = FakeCudart()
    old = cuda_mem.use_cudart(fake)
    try:
        yield fake
    finally:
        cuda_mem.use_cudart(old)


def test_cuda_sections_pass_on_a_fake_device(fake_cuda: FakeCudart) -> None:
    trt_before = sys.modules.get("tensorrt")
    report = gpu_check.Report("gpu")
    gpu_check.section_cuda_mem(report, loops=4, nbytes=1 << 16)
    gpu_check.section_runtime(report, loops=3, torch_cuda=False)
    for name in ("cuda_mem", "runtime"):
        sec = report.data["sections"][name]
        assert sec["status"] == "ok", json.dumps(sec, indent=1, default=str)
    runs = [c for c in report.data["sections"]["runtime"]["checks"] if "cuda_graph" in c]
    assert len(runs) == 8 and any(c["graphs_captured"] for c in runs)
    assert fake_cuda.live() == {"device": 0, "host": 0, "streams": 0, "events": 0, "graphs": 0}
    assert sys.modules.get("tensorrt") is trt_before  # the stand-in is gone


def test_a_leak_fails_the_memory_check(fake_cuda: FakeCudart, monkeypatch: pytest.MonkeyPatch) -> None:
    from attnx.deploy.backends.tensorrt import cuda_mem

    monkeypatch.setattr(cuda_mem.DeviceBuffer, "free", lambda self: None)
    report = gpu_check.Report("gpu")
    gpu_check.section_cuda_mem(report, loops=2, nbytes=gpu_check.LEAK_TOLERANCE_BYTES * 2)
    bad = {c["check"] for c in report.data["sections"]["cuda_mem"]["checks"] if not c["ok"]}
    assert "no device memory leak" in bad and report.data["ok"] is False


# -- on a real GPU --------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_check._cuda_available(), reason="no CUDA GPU: the full check needs one (make gpu-check)")
def test_gpu_check_on_the_device(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "attnx.deploy.tools.gpu_check", "--out", str(tmp_path),
         "--sections", "numerics,cuda_mem,runtime", "--loops", "5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
