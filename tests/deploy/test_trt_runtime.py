"""TensorRT runtime (deploy/runtime/trt.py, deploy/cuda_mem.py).

Without a GPU the runtime runs against fakes of tensorrt and cuda-python (tests/deploy/trt_fakes.py)
that keep "device" memory in host buffers, so the data path, the pool, CUDA-graph reuse, clean-up and
every error message are exercised. The ``gpu`` tests at the end run real engines and skip here.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnx.deploy.backends.tensorrt.runner as rt_mod
from attnx.core.device import gpu_status
from attnx.core.errors import UserError
from attnx.deploy.backends.tensorrt import cuda_mem
from attnx.deploy.backends.tensorrt.runner import TrtRuntime, check_plan_compat, np_dtype, version_tuple
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import BundleWriter, IOSpec, Manifest
from tests.deploy.trt_fakes import (
    FAKE_STATE,
    DataType,
    FakeCudart,
    cudaError_t,
    fake_tensorrt,
    installed,
    plan_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
X_IN = {"name": "x", "dtype": "FLOAT", "shape": [-1, 3, 4, 4], "min": [1, 3, 4, 4], "max": [8, 3, 4, 4]}
OUTS = [
    {"name": "y", "dtype": "FLOAT", "of": "x", "op": "affine"},
    {"name": "p", "dtype": "FLOAT", "of": "x", "op": "pool"},
]


@pytest.fixture
def cud(monkeypatch: pytest.MonkeyPatch) -> Any:
    with installed(monkeypatch) as fake:
        yield fake


def make_manifest(plan: bytes, **build: Any) -> Manifest:
    return Manifest(
        backend="trt",
        precision="fp32",
        source={"model": "tiny_net"},
        opset=17,
        inputs=[
            IOSpec("x", "float32", ["batch", 3, 4, 4], {"min": [1, 3, 4, 4], "opt": [2, 3, 4, 4], "max": [8, 3, 4, 4]})
        ],
        outputs=[IOSpec("y", "float32", ["batch", 3, 4, 4]), IOSpec("p", "float32", ["batch", 3])],
        files={"engine": "engine.plan"},
        device={"kind": "cuda", "name": "Fake RTX A6000", "compute_capability": "8.6"},
        build={"tensorrt_version": "11.4.0.106", "plan_bytes": len(plan), **build},
    )


def make_bundle(tmp_path: Path, plan: bytes | None = None, manifest: Manifest | None = None, **build: Any) -> Path:
    plan = plan if plan is not None else plan_bytes([X_IN], OUTS)
    manifest = manifest or make_manifest(plan, **build)
    with BundleWriter(tmp_path / "bundle") as w:
        w.path("engine.plan").write_bytes(plan)
        return w.commit(manifest)


def expected(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"y": 2 * x + 1, "p": x.mean(axis=(-2, -1))}


def check_outputs(out: dict[str, np.ndarray], x: np.ndarray) -> None:
    want = expected(x)
    assert set(out) == set(want)
    for k in want:
        assert out[k].shape == want[k].shape and out[k].dtype == np.float32
        np.testing.assert_allclose(out[k], want[k], rtol=1e-6)


def batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 4, 4)).astype(np.float32)


# -- the data path -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pinned", [True, False])
def test_engine_runs_a_trt_bundle(cud: FakeCudart, tmp_path: Path, pinned: bool) -> None:
    bundle = make_bundle(tmp_path)
    with Engine.load(bundle) as engine:
        engine._runtime.pinned = pinned
        for n in (1, 3, 8, 2):
            x = batch(n, n)
            check_outputs(engine({"x": x}), x)
    kinds = {k for k, _ in cud.copies}
    assert kinds == {"h2d", "d2h"}


def test_outputs_are_not_overwritten_by_the_next_call(cud: FakeCudart, tmp_path: Path) -> None:
    with Engine.load(make_bundle(tmp_path)) as engine:
        a, b = batch(2, 1), batch(2, 2)
        out_a = engine({"x": a})
        engine({"x": b})
        check_outputs(out_a, a)


def test_concurrent_callers_share_a_pool(cud: FakeCudart, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    errors: list[BaseException] = []
    with Engine.load(bundle, pool_size=3) as engine:

        def worker(i: int) -> None:
            try:
                for j in range(4):
                    x = batch(1 + (i + j) % 8, 100 * i + j)
                    check_outputs(engine({"x": x}), x)
            except BaseException as exc:  # collected and re-raised in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(engine._runtime._slots) == 3
    assert not errors, errors[0]


def test_close_frees_everything_and_is_final(cud: FakeCudart, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    rt = TrtRuntime(bundle, make_manifest(plan_bytes([X_IN], OUTS)), pool_size=2, cuda_graph=True)
    rt.run_timed({"x": batch(2)})
    rt.run({"x": batch(2)})
    assert cud.live()["device"] == 2 * 3 and cud.live()["graphs"] > 0
    rt.close()
    rt.close()
    assert cud.live() == {"device": 0, "host": 0, "streams": 0, "events": 0, "graphs": 0}
    with pytest.raises(RuntimeError, match="closed"):
        rt.run({"x": batch(1)})


def test_run_timed_reports_each_phase(cud: FakeCudart, tmp_path: Path) -> None:
    with TrtRuntime(make_bundle(tmp_path), make_manifest(plan_bytes([X_IN], OUTS))) as rt:
        x = batch(4)
        out, ms = rt.run_timed({"x": x})
        check_outputs(out, x)
        assert set(ms) == {"h2d_ms", "compute_ms", "d2h_ms", "enqueue_ms"}
        assert all(v >= 0 for v in ms.values())
        assert ms["compute_ms"] >= 0.5  # the fake engine sleeps 1 ms per output while computing


def test_cuda_graph_is_captured_once_per_shape_and_replayed(cud: FakeCudart, tmp_path: Path) -> None:
    with TrtRuntime(make_bundle(tmp_path), make_manifest(plan_bytes([X_IN], OUTS)), cuda_graph=True) as rt:
        ctx = rt._slots[0].ctx
        x1 = batch(2, 1)
        check_outputs(rt.run({"x": x1}), x1)  # warm-up run + capture
        assert ctx.executions == 1 and cud.launches == 0
        for seed in (2, 3):
            x = batch(2, seed)
            check_outputs(rt.run({"x": x}), x)  # replay with new data in the same buffers
        assert ctx.executions == 1 and cud.launches == 2
        x4 = batch(5, 4)
        check_outputs(rt.run({"x": x4}), x4)  # a new shape: another warm-up and capture
        assert ctx.executions == 2 and rt.info["cuda_graphs_captured"] == 2


def test_uncapturable_engine_falls_back(cud: FakeCudart, tmp_path: Path) -> None:
    plan = plan_bytes([X_IN], OUTS, uncapturable=True)
    with TrtRuntime(make_bundle(tmp_path, plan), make_manifest(plan), cuda_graph=True) as rt:
        for seed in range(3):
            x = batch(3, seed)
            check_outputs(rt.run({"x": x}), x)
        assert rt.info["cuda_graphs_refused"] == 1 and cud.launches == 0
        assert cud.live()["graphs"] == 0


def test_shape_outside_profile_is_named(cud: FakeCudart, tmp_path: Path) -> None:
    with TrtRuntime(make_bundle(tmp_path), make_manifest(plan_bytes([X_IN], OUTS))) as rt:
        with pytest.raises(UserError, match=r"input 'x' shape \(9, 3, 4, 4\) is outside the engine's profile"):
            rt.run({"x": batch(9)})
        with pytest.raises(UserError, match="dtype float64"):
            rt.run({"x": batch(2).astype(np.float64)})
        x = batch(2)
        check_outputs(rt.run({"x": x}), x)  # the slot is still usable


def test_data_dependent_output_is_refused(cud: FakeCudart, tmp_path: Path) -> None:
    outs = [{"name": "y", "dtype": "FLOAT", "of": "x", "op": "data_dependent"}]
    plan = plan_bytes([X_IN], outs)
    manifest = make_manifest(plan)
    manifest.outputs = [IOSpec("y", "float32", ["n"])]
    with pytest.raises(UserError, match="data-dependent shape"):
        TrtRuntime(make_bundle(tmp_path, plan, manifest), manifest)
    assert cud.live()["device"] == 0 and cud.live()["streams"] == 0


def test_run_torch_rejects_host_tensors(cud: FakeCudart, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    with TrtRuntime(make_bundle(tmp_path), make_manifest(plan_bytes([X_IN], OUTS))) as rt:
        with pytest.raises(UserError, match=r"input 'x' is on cpu; run_torch takes tensors on cuda:0"):
            rt.run_torch({"x": torch.zeros(1, 3, 4, 4)})


class FakeCudaTensor:
    """A 'CUDA' tensor whose memory is a fake device allocation (for run_torch without a GPU)."""

    def __init__(self, cud: FakeCudart, shape: tuple[int, ...], dtype: Any) -> None:
        import ctypes

        import torch

        self.shape, self.dtype, self.is_cuda = torch.Size(shape), dtype, True
        self.device = types.SimpleNamespace(index=0, type="cuda")
        nbytes = int(np.prod(shape)) * 4
        self.ptr = int(cud.cudaMalloc(nbytes)[1])
        self.array = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(self.ptr)).view(np.float32)
        self.array = self.array.reshape(shape)

    def contiguous(self) -> FakeCudaTensor:
        return self

    def data_ptr(self) -> int:
        return self.ptr


def test_run_torch_binds_tensors_and_orders_streams(
    cud: FakeCudart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=4242))
    monkeypatch.setattr(torch, "empty", lambda shape, dtype, device: FakeCudaTensor(cud, tuple(shape), dtype))
    with TrtRuntime(make_bundle(tmp_path), make_manifest(plan_bytes([X_IN], OUTS)), cuda_graph=True) as rt:
        x = FakeCudaTensor(cud, (3, 3, 4, 4), torch.float32)
        x.array[:] = batch(3)
        copies = len(cud.copies)
        out = rt.run_torch({"x": x})  # type: ignore[dict-item]
        assert len(cud.copies) == copies  # no host copies
        assert {k: v.array.shape for k, v in out.items()} == {"y": (3, 3, 4, 4), "p": (3, 3)}
        check_outputs({k: v.array for k, v in out.items()}, x.array)
        slot = rt._slots[0]
        assert slot.bound["x"] == x.ptr and slot.pending is not None
        x2 = batch(3, 7)
        check_outputs(rt.run({"x": x2}), x2)  # back to the slot's own buffers
        assert slot.pending is None and slot.bound["x"] == slot.device["x"].ptr
        with pytest.raises(UserError, match=r"input 'x' shape \(9, 3, 4, 4\) is outside"):
            rt.run_torch({"x": FakeCudaTensor(cud, (9, 3, 4, 4), torch.float32)})  # type: ignore[dict-item]
        with pytest.raises(UserError, match="dtype torch.float16, the engine wants torch.float32"):
            rt.run_torch({"x": FakeCudaTensor(cud, (1, 3, 4, 4), torch.float16)})  # type: ignore[dict-item]


# -- failures at load --------------------------------------------------------------------------------------


def test_plan_from_another_tensorrt_and_gpu_is_refused_before_deserialising(
    cud: FakeCudart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cud.cc = (9, 0)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.9.0.34", cudart=cud))
    bundle = make_bundle(tmp_path)
    with pytest.raises(UserError) as exc:
        Engine.load(bundle)
    msg = str(exc.value)
    assert msg.startswith(
        "engine.plan was built with TensorRT 11.4.0.106 for sm_86; this is TensorRT 10.9.0.34 on sm_90"
    )
    assert f"rebuild the bundle with `attnx build tiny_net -o {bundle} --backend trt` on this machine" in msg
    assert "\n" not in msg
    assert FAKE_STATE["runtimes"] == []  # TensorRT never saw the plan


def test_compatibility_rules() -> None:
    plan = plan_bytes([X_IN], OUTS)

    def check(run_version: str, run_cc: str, **build: Any) -> None:
        check_plan_compat(make_manifest(plan, **build), run_version, {"compute_capability": run_cc}, "engine.plan", "H")

    check("11.4.0.106", "8.6")
    with pytest.raises(UserError, match="runs only on the TensorRT version that built it"):
        check("11.4.1.2", "8.6")
    with pytest.raises(
        UserError, match=r"for sm_86; this is TensorRT 11.4.0.106 on sm_89 \(a plan runs only on the compute"
    ):
        check("11.4.0.106", "8.9")
    check("11.5.0.1", "8.6", version_compatible=True)
    with pytest.raises(UserError, match="needs TensorRT 11.4.0.106 or later"):
        check("11.3.0.1", "8.6", version_compatible=True)
    check("11.4.0.106", "9.0", hardware_compatibility="ampere+")
    check("11.4.0.106", "12.0", hardware_compatibility="ampere+")
    with pytest.raises(UserError, match="ampere\\+ plan needs compute capability 8.0"):
        check("11.4.0.106", "7.5", hardware_compatibility="ampere+")
    with pytest.raises(UserError, match="compute capability it was built for"):
        check("11.4.0.106", "8.9", hardware_compatibility="same_compute_capability")
    bare = make_manifest(plan)
    bare.build.pop("tensorrt_version")
    with pytest.raises(UserError, match="records no TensorRT version"):
        check_plan_compat(bare, "11.4.0.106", {"compute_capability": "8.6"}, "engine.plan", "H")


def test_version_tuple() -> None:
    assert version_tuple("10.13.0.35") == (10, 13, 0, 35)
    assert version_tuple("11.4.0.106") > version_tuple("11.4.0.35")
    assert version_tuple("12.0") > version_tuple("9.0")
    assert version_tuple("10.9.0.post1") == (10, 9, 0)


def test_corrupt_plan_is_named(cud: FakeCudart, tmp_path: Path) -> None:
    garbage = b"\x00not a plan" * 10
    bundle = make_bundle(tmp_path, garbage)
    with pytest.raises(UserError, match=r"cannot deserialise .*engine\.plan \(.*magic tag does not match\).*corrupt"):
        Engine.load(bundle)


def test_truncated_plan_is_named(cud: FakeCudart, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    plan = bundle / "engine.plan"
    full = plan.stat().st_size
    plan.write_bytes(plan.read_bytes()[: full // 2])
    with pytest.raises(UserError, match="engine.plan does not match its recorded SHA-256"):
        Engine.load(bundle)  # the bundle's own check
    with pytest.raises(UserError, match=rf"engine\.plan is truncated: {full // 2} bytes, the manifest records {full}"):
        Engine.load(bundle, verify=False)  # the runtime's check
    plan.write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        Engine.load(bundle, verify=False)
    plan.unlink()
    with pytest.raises(UserError, match="engine.plan is missing"):
        Engine.load(bundle, verify=False)


def test_plan_and_manifest_disagree(cud: FakeCudart, tmp_path: Path) -> None:
    plan = plan_bytes([X_IN], OUTS)
    manifest = make_manifest(plan)
    manifest.outputs = [IOSpec("z", "float32", ["batch", 3])]
    with pytest.raises(UserError, match="does not match manifest.json: the plan has inputs"):
        TrtRuntime(make_bundle(tmp_path, plan, manifest), manifest)
    manifest = make_manifest(plan)
    manifest.inputs[0].dtype = "float16"
    with pytest.raises(UserError, match="tensor 'x' is float32 in the plan, float16 in the manifest"):
        TrtRuntime(make_bundle(tmp_path, plan, manifest), manifest)


def test_pool_that_does_not_fit_frees_what_it_took(cud: FakeCudart, tmp_path: Path) -> None:
    plan = plan_bytes([X_IN], OUTS, max_contexts=1)
    with pytest.raises(
        UserError, match=r"could not create execution context 2 \(out of device memory.*smaller pool_size"
    ):
        TrtRuntime(make_bundle(tmp_path, plan), make_manifest(plan), pool_size=2)
    assert cud.live() == {"device": 0, "host": 0, "streams": 0, "events": 0, "graphs": 0}


def test_cuda_errors_name_the_call(cud: FakeCudart, tmp_path: Path) -> None:
    cud.fail["cudaMalloc"] = cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(cuda_mem.CudaError, match=r"cudaMalloc\(\d+\) failed: cudaErrorMemoryAllocation \(2\)"):
        TrtRuntime(make_bundle(tmp_path), make_manifest(plan_bytes([X_IN], OUTS)))
    assert cud.live()["device"] == 0 and cud.live()["streams"] == 0


def test_plugin_libraries_and_version_compatible_plans(cud: FakeCudart, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    lib = tmp_path / "libmyplugin.so"
    lib.write_bytes(b"\x7fELF")
    bundle = make_bundle(tmp_path, plugin_libraries=[str(lib)], version_compatible=True)
    # files are data: native code a manifest names loads only when the user names it too
    with pytest.raises(UserError, match="runs host code stored in the bundle: set ATTNX_TRT_ALLOW_HOST_CODE=1"):
        Engine.load(bundle)
    monkeypatch.setenv("ATTNX_TRT_ALLOW_HOST_CODE", "1")
    with pytest.raises(UserError, match=r"asks TensorRT to load plugin library .*libmyplugin\.so; .*set "
                                        r"ATTNX_TRT_PLUGIN_LIBRARIES="):  # fmt: skip
        Engine.load(bundle)
    assert FAKE_STATE["runtimes"][-1].registry.loaded == []
    monkeypatch.setenv("ATTNX_TRT_PLUGIN_LIBRARIES", str(lib))
    with Engine.load(bundle) as engine:
        runtime = FAKE_STATE["runtimes"][-1]
        assert runtime.registry.loaded == [str(lib)]
        assert runtime.engine_host_code_allowed is True
        x = batch(1)
        check_outputs(engine(x), x)
    lib.unlink()
    with pytest.raises(UserError, match=r"plugin library .*libmyplugin\.so, which engine\.plan needs, is not on this"):
        Engine.load(bundle)


def test_no_gpu_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCudart(devices=0)
    old = cuda_mem.use_cudart(fake)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(cudart=fake))
    try:
        with pytest.raises(UserError, match="no CUDA GPU 0 here"):
            Engine.load(make_bundle(tmp_path))
    finally:
        cuda_mem.use_cudart(old)


def test_numpy_cannot_hold_bf16_io() -> None:
    assert np_dtype(DataType.HALF, "x") == np.float16
    with pytest.raises(UserError, match="type BF16, which NumPy cannot hold"):
        np_dtype(DataType.BF16, "x")


def test_cuda_mem_helpers(cud: FakeCudart) -> None:
    assert cuda_mem.decode_version(12090) == "12.9"
    info = cuda_mem.device_info(0)
    assert info["compute_capability"] == "8.6" and info["sm"] == "sm_86" and info["name"] == "Fake RTX A6000"
    assert info["driver_version"] == "13.0" and info["cuda_runtime_version"] == "12.9"
    buf = cuda_mem.PinnedBuffer(64)
    view = buf.view(np.float32, (2, 8))
    view[:] = 7
    assert buf.view(np.float32, (16,)).sum() == 112
    with pytest.raises(ValueError, match="cannot hold"):
        buf.view(np.float32, (17,))
    assert buf.ensure(32) is False and buf.ensure(128) is True
    buf.free()
    assert cud.live()["host"] == 0


def test_tensorrt_and_cuda_are_imported_lazily() -> None:
    code = (
        "import sys, attnx.deploy.backends.tensorrt.builder, attnx.deploy.backends.tensorrt.runner;"
        "import attnx.deploy.backends.tensorrt.cuda_mem;"
        "bad = [m for m in ('tensorrt', 'cuda', 'cuda.bindings', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.skipif(gpu_status()[0], reason="TensorRT is usable here")
def test_missing_tensorrt_is_a_user_error() -> None:
    with pytest.raises(UserError, match="TensorRT|tensorrt"):
        rt_mod.import_tensorrt()


# -- on a GPU ----------------------------------------------------------------------------------------------

GPU_OK, GPU_WHY = gpu_status()
gpu = pytest.mark.skipif(not GPU_OK, reason=f"needs an NVIDIA GPU with TensorRT: {GPU_WHY}")


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attnx.deploy.apis.build import BuildOptions, build_bundle

    out = tmp_path_factory.mktemp("trt") / "cbam"
    build_bundle("cbam_resnet", out, BuildOptions(backend="trt", max_batch=4))
    return out


@pytest.mark.gpu
@gpu
def test_gpu_concurrency_graphs_timing_and_torch(real_bundle: Path) -> None:
    import torch

    from attnx.deploy.bundle.manifest import load_manifest

    manifest = load_manifest(real_bundle)
    rt = TrtRuntime(real_bundle, manifest, pool_size=2, cuda_graph=True)
    try:
        shape = tuple(manifest.inputs[0].profile["opt"])  # type: ignore[index]
        name = manifest.inputs[0].name
        xs = [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(6)]
        ref = [rt.run({name: x}) for x in xs]
        results: dict[int, dict[str, np.ndarray]] = {}

        def worker(i: int) -> None:
            results[i] = rt.run({name: xs[i]})

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, r in results.items():
            for k in r:
                np.testing.assert_array_equal(r[k], ref[i][k])  # same engine, same input: bitwise equal
        assert rt.info["cuda_graphs_captured"] >= 1
        _, ms = rt.run_timed({name: xs[0]})
        assert ms["compute_ms"] > 0 and ms["h2d_ms"] > 0 and ms["d2h_ms"] > 0
        out = rt.run_torch({name: torch.from_numpy(xs[0]).cuda()})
        torch.cuda.synchronize()
        for k, v in out.items():
            assert v.is_cuda
            np.testing.assert_allclose(v.cpu().numpy(), ref[0][k], rtol=1e-5, atol=1e-5)
    finally:
        rt.close()


@pytest.mark.slow
def test_mypy_typechecks_tensorrt_code() -> None:
    """mypy --disallow-untyped-defs with the TensorRT stubs in plugins/typings (about 15 s)."""
    pytest.importorskip("mypy")
    files = ["attnx/deploy/backends/tensorrt"]
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--disallow-untyped-defs", "--follow-imports=silent", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
