"""TensorRT runner (attnx/deploy/backends/tensorrt/runner.py, cuda_mem.py).

Without a GPU the runtime runs against fakes of tensorrt and cuda-python (tests/fakes/tensorrt.py)
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

import attnx.deploy.backends.tensorrt.util as trt_util
from attnx.core.device import gpu_status
from attnx.core.errors import UserError
from attnx.deploy.backends.base import CapabilityError, TensorSpec
from attnx.deploy.backends.tensorrt import cuda_mem
from attnx.deploy.backends.tensorrt.runner import TrtPlanInfo, TrtRunner, check_plan_compat
from attnx.deploy.backends.tensorrt.util import np_dtype, version_tuple
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import BundleWriter, IOSpec, Manifest
from tests.fakes.tensorrt import (
    FAKE_STATE,
    DataType,
    FakeCudart,
    cudaError_t,
    fake_tensorrt,
    installed,
    plan_bytes,
)
from tests.helpers import REPO_ROOT as ROOT

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


def open_trt(bundle: Path, manifest: Manifest | None = None, **options: Any) -> TrtRunner:
    """The activated runner of a bundle's plan, as the bundle layer opens it (``options``: TrtRunner's)."""
    manifest = manifest or make_manifest(plan_bytes([X_IN], OUTS))
    info = TrtPlanInfo.from_record(manifest.to_dict(), bundle)
    return TrtRunner.from_bundle_files(bundle / manifest.files["engine"], info, **options)


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
    with Engine.load(bundle) as engine:  # pinned staging, the default
        for n in (1, 3, 8, 2):
            x = batch(n, n)
            check_outputs(engine({"x": x}), x)
    with open_trt(bundle, pinned=pinned) as rt:
        for n in (1, 3, 8, 2):
            x = batch(n, n)
            check_outputs(rt.infer({"x": x}), x)
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
    with open_trt(bundle, pool_size=3) as rt:

        def worker(i: int) -> None:
            try:
                for j in range(4):
                    x = batch(1 + (i + j) % 8, 100 * i + j)
                    check_outputs(rt.infer({"x": x}), x)
            except BaseException as exc:  # collected and re-raised in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(rt.slots()) == 3
    assert not errors, errors[0]


def test_close_frees_everything_and_is_final(cud: FakeCudart, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    rt = open_trt(bundle, pool_size=2, cuda_graph=True)
    rt.infer_timed({"x": batch(2)})
    rt.infer({"x": batch(2)})
    assert cud.live()["device"] == 2 * 3 and cud.live()["graphs"] > 0
    rt.deactivate()
    rt.deactivate()
    assert cud.live() == {"device": 0, "host": 0, "streams": 0, "events": 0, "graphs": 0}
    with pytest.raises(RuntimeError, match="closed"):
        rt.infer({"x": batch(1)})


def test_infer_timed_reports_each_phase(cud: FakeCudart, tmp_path: Path) -> None:
    with open_trt(make_bundle(tmp_path)) as rt:
        assert rt.capabilities.timed_runs and rt.capabilities.device_tensors
        x = batch(4)
        out, ms = rt.infer_timed({"x": x})
        check_outputs(out, x)
        assert set(ms) == {"h2d_ms", "compute_ms", "d2h_ms", "enqueue_ms"}
        assert all(v >= 0 for v in ms.values())
        assert ms["compute_ms"] >= 0.5  # the fake engine sleeps 1 ms per output while computing


def test_cuda_graph_is_captured_once_per_shape_and_replayed(cud: FakeCudart, tmp_path: Path) -> None:
    with open_trt(make_bundle(tmp_path), cuda_graph=True) as rt:
        ctx = rt.slots()[0].ctx
        x1 = batch(2, 1)
        check_outputs(rt.infer({"x": x1}), x1)  # warm-up run + capture
        assert ctx.executions == 1 and cud.launches == 0
        for seed in (2, 3):
            x = batch(2, seed)
            check_outputs(rt.infer({"x": x}), x)  # replay with new data in the same buffers
        assert ctx.executions == 1 and cud.launches == 2
        x4 = batch(5, 4)
        check_outputs(rt.infer({"x": x4}), x4)  # a new shape: another warm-up and capture
        assert ctx.executions == 2 and rt.info["cuda_graphs_captured"] == 2


def test_uncapturable_engine_falls_back(cud: FakeCudart, tmp_path: Path) -> None:
    plan = plan_bytes([X_IN], OUTS, uncapturable=True)
    with open_trt(make_bundle(tmp_path, plan), make_manifest(plan), cuda_graph=True) as rt:
        for seed in range(3):
            x = batch(3, seed)
            check_outputs(rt.infer({"x": x}), x)
        assert rt.info["cuda_graphs_refused"] == 1 and cud.launches == 0
        assert cud.live()["graphs"] == 0


def test_shape_outside_profile_is_named(cud: FakeCudart, tmp_path: Path) -> None:
    with open_trt(make_bundle(tmp_path)) as rt:
        with pytest.raises(UserError, match=r"input 'x' shape \(9, 3, 4, 4\) is outside the engine's profile"):
            rt.infer({"x": batch(9)})
        with pytest.raises(UserError, match="dtype float64"):
            rt.infer({"x": batch(2).astype(np.float64)})
        x = batch(2)
        check_outputs(rt.infer({"x": x}), x)  # the slot is still usable


def test_data_dependent_output_is_refused(cud: FakeCudart, tmp_path: Path) -> None:
    outs = [{"name": "y", "dtype": "FLOAT", "of": "x", "op": "data_dependent"}]
    plan = plan_bytes([X_IN], outs)
    manifest = make_manifest(plan)
    manifest.outputs = [IOSpec("y", "float32", ["n"])]
    with pytest.raises(UserError, match="data-dependent shape"):
        open_trt(make_bundle(tmp_path, plan, manifest), manifest)
    assert cud.live()["device"] == 0 and cud.live()["streams"] == 0


def test_infer_device_rejects_host_tensors(cud: FakeCudart, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    with open_trt(make_bundle(tmp_path)) as rt:
        with pytest.raises(UserError, match=r"input 'x' is on cpu; infer_device takes tensors on cuda:0"):
            rt.infer_device({"x": torch.zeros(1, 3, 4, 4)})


class FakeCudaTensor:
    """A 'CUDA' tensor whose memory is a fake device allocation (for infer_device without a GPU)."""

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


def test_infer_device_binds_tensors_and_orders_streams(
    cud: FakeCudart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=4242))
    monkeypatch.setattr(torch, "empty", lambda shape, dtype, device: FakeCudaTensor(cud, tuple(shape), dtype))
    with open_trt(make_bundle(tmp_path), cuda_graph=True) as rt:
        x = FakeCudaTensor(cud, (3, 3, 4, 4), torch.float32)
        x.array[:] = batch(3)
        copies = len(cud.copies)
        out = rt.infer_device({"x": x})  # type: ignore[dict-item]
        assert len(cud.copies) == copies  # no host copies
        assert {k: v.array.shape for k, v in out.items()} == {"y": (3, 3, 4, 4), "p": (3, 3)}
        check_outputs({k: v.array for k, v in out.items()}, x.array)
        slot = rt.slots()[0]
        assert slot.bound["x"] == x.ptr and slot.pending is not None
        x2 = batch(3, 7)
        check_outputs(rt.infer({"x": x2}), x2)  # back to the slot's own buffers
        assert slot.pending is None and slot.bound["x"] == slot.device["x"].ptr
        with pytest.raises(UserError, match=r"input 'x' shape \(9, 3, 4, 4\) is outside"):
            rt.infer_device({"x": FakeCudaTensor(cud, (9, 3, 4, 4), torch.float32)})  # type: ignore[dict-item]
        with pytest.raises(UserError, match="dtype torch.float16, the engine wants torch.float32"):
            rt.infer_device({"x": FakeCudaTensor(cud, (1, 3, 4, 4), torch.float16)})  # type: ignore[dict-item]


# -- layer-wise search: network outputs marked, as Polygraphy's --trt-outputs -------------------------------


def chain_onnx(path: Path) -> Path:
    """x → relu_1 → h1 → sigmoid_1 → h2 → neg_1 → y, and a shape tensor s = Shape(x)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["h1"], name="relu_1"),
             helper.make_node("Sigmoid", ["h1"], ["h2"], name="sigmoid_1"),
             helper.make_node("Neg", ["h2"], ["y"], name="neg_1"),
             helper.make_node("Shape", ["x"], ["s"], name="shape_1")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 4, 4])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def chain_info(**build_options: Any) -> TrtPlanInfo:
    return TrtPlanInfo(
        inputs=(TensorSpec("x", np.dtype("float32"), ("batch", 3, 4, 4)),),
        outputs=(TensorSpec("y", np.dtype("float32"), ("batch", 3, 4, 4)),),
        profiles={"x": {"min": [1, 3, 4, 4], "opt": [2, 3, 4, 4], "max": [8, 3, 4, 4]}},
        build_options=build_options,
    )


def test_layerwise_marks_the_requested_tensors_as_network_outputs(cud: FakeCudart, tmp_path: Path) -> None:
    model = chain_onnx(tmp_path / "model.onnx")
    runner = TrtRunner(None, chain_info(workspace_mib=32, optimization_level=2), onnx=model)
    assert runner.capabilities.mark_outputs
    x = batch(3)
    with runner:
        out = runner.infer_with_outputs({"x": x}, ["h2", "h1", "h2"])
    # the fake plan computes what each marked tensor is: the output of node i is (i + 1) * x, the graph output 2x + 1
    assert set(out) == {"y", "h1", "h2"}
    np.testing.assert_allclose(out["h1"], x)
    np.testing.assert_allclose(out["h2"], 2 * x)
    np.testing.assert_allclose(out["y"], 2 * x + 1)
    assert all(v.dtype == np.float32 and v.shape == x.shape for v in out.values())
    assert FAKE_STATE["built_outputs"] == [["y", "h2", "h1"]]  # the model's output, then each name once
    config = FAKE_STATE["builders"][-1].config
    trt = sys.modules["tensorrt"]
    assert config.pool_limits == {trt.MemoryPoolType.WORKSPACE: 32 << 20}  # the bundle's build options
    assert config.builder_optimization_level == 2 and config.cache is None  # no timing cache read or written
    assert config.profiles[0].shapes == {"x": ([1, 3, 4, 4], [2, 3, 4, 4], [8, 3, 4, 4])}
    assert cud.live() == {"device": 0, "host": 0, "streams": 0, "events": 0, "graphs": 0}  # its engine is freed


def test_layerwise_names_what_the_network_does_not_produce(
    cud: FakeCudart, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = chain_onnx(tmp_path / "model.onnx")
    runner = TrtRunner(None, chain_info(), onnx=model)
    x = batch(2)
    with caplog.at_level("WARNING", logger="attnx.tensorrt"):
        out = runner.infer_with_outputs({"x": x}, ["h1", "fused_away", "s"])
    assert set(out) == {"y", "h1"}
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "TensorRT cannot expose 2 tensor(s) of model.onnx as outputs" in warning
    assert "'fused_away': no layer of the network produces it" in warning and "'s': a shape tensor" in warning
    with pytest.raises(UserError, match=r"cannot expose 1 tensor\(s\) of model.onnx as outputs \('fused_away': no"):
        runner.infer_with_outputs({"x": x}, ["h1", "fused_away"], strict=True)


def test_layerwise_needs_the_source_onnx(cud: FakeCudart, tmp_path: Path) -> None:
    with open_trt(make_bundle(tmp_path)) as rt:
        assert not rt.capabilities.mark_outputs
        with pytest.raises(CapabilityError, match="cannot expose intermediate tensors as outputs"):
            rt.infer_with_outputs({"x": batch(1)}, ["h1"])


def test_layerwise_search_of_a_trt_bundle_runs_through_the_runner(
    cud: FakeCudart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/parity/layerwise.py's TensorRT candidate: the bundle's model.onnx rebuilt with its tensors marked."""
    import attnx.core.device
    from attnx.deploy.parity.layerwise import trt_candidate_runner

    monkeypatch.setattr(attnx.core.device, "gpu_status", lambda: (True, "fake GPU"))
    model = chain_onnx(tmp_path / "model.onnx")
    manifest = make_manifest(plan_bytes([X_IN], OUTS))
    manifest.outputs = [IOSpec("y", "float32", ["batch", 3, 4, 4])]
    manifest.build["trt_options"] = {"workspace_mib": 16}
    factory = trt_candidate_runner(manifest)
    x = batch(2)
    import onnx

    with factory(onnx.load(str(model))) as engine:
        out = engine.infer_with_outputs({"x": x}, ["h2"])
    np.testing.assert_allclose(out["h2"], 2 * x)
    assert FAKE_STATE["builders"][-1].config.pool_limits == {sys.modules["tensorrt"].MemoryPoolType.WORKSPACE: 16 << 20}


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

    def info(manifest: Manifest) -> TrtPlanInfo:
        return TrtPlanInfo.from_record(manifest.to_dict())

    def check(run_version: str, run_cc: str, **build: Any) -> None:
        device = {"compute_capability": run_cc}
        check_plan_compat(info(make_manifest(plan, **build)), run_version, device, "engine.plan")

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
        check_plan_compat(info(bare), "11.4.0.106", {"compute_capability": "8.6"}, "engine.plan")


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
        open_trt(make_bundle(tmp_path, plan, manifest), manifest)
    manifest = make_manifest(plan)
    manifest.inputs[0].dtype = "float16"
    with pytest.raises(UserError, match="tensor 'x' is float32 in the plan, float16 in the manifest"):
        open_trt(make_bundle(tmp_path, plan, manifest), manifest)


def test_pool_that_does_not_fit_frees_what_it_took(cud: FakeCudart, tmp_path: Path) -> None:
    plan = plan_bytes([X_IN], OUTS, max_contexts=1)
    with pytest.raises(
        UserError, match=r"could not create execution context 2 \(out of device memory.*smaller pool_size"
    ):
        open_trt(make_bundle(tmp_path, plan), make_manifest(plan), pool_size=2)
    assert cud.live() == {"device": 0, "host": 0, "streams": 0, "events": 0, "graphs": 0}


def test_cuda_errors_name_the_call(cud: FakeCudart, tmp_path: Path) -> None:
    cud.fail["cudaMalloc"] = cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(cuda_mem.CudaError, match=r"cudaMalloc\(\d+\) failed: cudaErrorMemoryAllocation \(2\)"):
        open_trt(make_bundle(tmp_path))
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
        "import attnx.deploy.backends.tensorrt.util;"
        "import attnx.deploy.backends.tensorrt.cuda_mem;"
        "bad = [m for m in ('tensorrt', 'cuda', 'cuda.bindings', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.skipif(gpu_status()[0], reason="TensorRT is usable here")
def test_missing_tensorrt_is_a_user_error() -> None:
    with pytest.raises(UserError, match="TensorRT|tensorrt"):
        trt_util.import_tensorrt()


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
    rt = open_trt(real_bundle, manifest, pool_size=2, cuda_graph=True)
    try:
        shape = tuple(manifest.inputs[0].profile["opt"])  # type: ignore[index]
        name = manifest.inputs[0].name
        xs = [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(6)]
        ref = [rt.infer({name: x}) for x in xs]
        results: dict[int, dict[str, np.ndarray]] = {}

        def worker(i: int) -> None:
            results[i] = rt.infer({name: xs[i]})

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, r in results.items():
            for k in r:
                np.testing.assert_array_equal(r[k], ref[i][k])  # same engine, same input: bitwise equal
        assert rt.info["cuda_graphs_captured"] >= 1
        _, ms = rt.infer_timed({name: xs[0]})
        assert ms["compute_ms"] > 0 and ms["h2d_ms"] > 0 and ms["d2h_ms"] > 0
        out = rt.infer_device({name: torch.from_numpy(xs[0]).cuda()})
        torch.cuda.synchronize()
        for k, v in out.items():
            assert v.is_cuda
            np.testing.assert_allclose(v.cpu().numpy(), ref[0][k], rtol=1e-5, atol=1e-5)
    finally:
        rt.deactivate()


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
