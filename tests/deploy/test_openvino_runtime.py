"""The OpenVINO runtime behind Engine: fp32 parity with torch, concurrency, attnx custom nodes, Q/DQ int8."""

import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("openvino")

from deploy.build import io_specs  # noqa: E402
from deploy.bundle import BundleWriter, Manifest, load_manifest  # noqa: E402
from deploy.engine import Engine  # noqa: E402
from deploy.errors import UserError  # noqa: E402
from deploy.pipeline import export_model, prepare_model  # noqa: E402
from deploy.runtime.openvino import bf16_supported  # noqa: E402
from exporters.export import ExportOptions  # noqa: E402

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)


def _bundle(onnx_path: Path, dest: Path, precision: str = "fp32", build: dict | None = None) -> Path:
    """An openvino bundle written by hand: the baked ONNX as both model.onnx and engine.onnx."""
    model = onnx.load(str(onnx_path))
    inputs, outputs = io_specs(model, 8, SHAPE)
    with BundleWriter(dest) as writer:
        shutil.copyfile(onnx_path, writer.path("model.onnx"))
        shutil.copyfile(onnx_path, writer.path("engine.onnx"))
        manifest = Manifest(
            backend="openvino", precision=precision, source={"model": TINY}, opset=17, inputs=inputs,
            outputs=outputs, files={"onnx": "model.onnx", "engine": "engine.onnx"}, build=build or {},
        )  # fmt: skip
        return writer.commit(manifest)


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ov") / "fp32.onnx"
    result, _ = export_model(prepare_model(TINY), out, ExportOptions(input_shape=SHAPE))
    return Path(result.path)


@pytest.fixture(scope="module")
def bundle(fp32_onnx, tmp_path_factory) -> Path:
    return _bundle(fp32_onnx, tmp_path_factory.mktemp("ovb") / "tiny")


def _torch(x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return prepare_model(TINY).model(torch.from_numpy(x)).numpy()


def test_engine_runs_openvino_bundle_matching_torch(bundle):
    assert load_manifest(bundle).backend == "openvino"
    x = np.random.default_rng(3).standard_normal((5, 3, 16, 16)).astype(np.float32)
    ref = _torch(x)
    with Engine.load(bundle, threads=1) as engine:
        assert type(engine._runtime).__name__ == "OpenVinoRuntime"
        out = engine({"input": x})
        assert set(out) == {"output"} and out["output"].dtype == np.float32 and out["output"].shape == ref.shape
        assert np.abs(out["output"] - ref).max() <= 1e-4
        one = engine(torch.from_numpy(x[:1]))["output"]  # dynamic batch: another batch size on the same engine
        assert np.abs(one - ref[:1]).max() <= 1e-4


def test_openvino_engine_is_thread_safe(bundle):
    inputs = [np.full((1, 3, 16, 16), i / 10, dtype=np.float32) for i in range(12)]
    refs = [_torch(x) for x in inputs]
    assert not np.allclose(refs[0], refs[-1]), "distinct inputs must give distinct outputs"
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(12)}
    with Engine.load(bundle, pool_size=2, threads=1) as engine:

        def work(i: int) -> None:
            for _ in range(5):
                results[i].append(engine(inputs[i])["output"])

        workers = [threading.Thread(target=work, args=(i,)) for i in range(12)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    for i in range(12):
        assert len(results[i]) == 5
        assert all(np.abs(r - refs[i]).max() <= 1e-4 for r in results[i]), f"caller {i} got another's result"


def test_attnx_custom_nodes_are_refused_with_a_fix(fp32_onnx, tmp_path):
    model = onnx.load(str(fp32_onnx))
    node = model.graph.node[-1]
    custom = onnx.helper.make_node("SpatialGate", list(node.input), list(node.output), domain="attnx")
    model.graph.node.remove(node)
    model.graph.node.append(custom)
    model.opset_import.append(onnx.helper.make_opsetid("attnx", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    bundle = _bundle(path, tmp_path / "custom")
    with pytest.raises(UserError, match=r"SpatialGate.*--plugins none"):
        Engine.load(bundle)


def test_unknown_inference_precision_is_a_user_error(fp32_onnx, tmp_path):
    bundle = _bundle(fp32_onnx, tmp_path / "bad", build={"inference_precision": "fp8"})
    with pytest.raises(UserError, match="fp8"):
        Engine.load(bundle)


def test_bf16_support_is_reported_and_bf16_bundle_runs_where_supported(fp32_onnx, tmp_path):
    ok, why = bf16_supported()
    assert why and "\n" not in why
    bundle = _bundle(fp32_onnx, tmp_path / "bf16", build={"inference_precision": "bf16"})
    if not ok:
        with pytest.raises(UserError, match="bf16"):
            Engine.load(bundle)
        return
    x = np.random.default_rng(5).standard_normal((4, 3, 16, 16)).astype(np.float32)
    ref = _torch(x)
    with Engine.load(bundle, threads=1) as engine:
        assert engine._runtime.inference_precision == "bf16"
        import openvino

        assert engine._runtime._compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16
        out = engine(x)["output"]
    assert out.dtype == np.float32
    cos = float((out.ravel() @ ref.ravel()) / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert cos >= 0.99


def test_qdq_int8_runs_in_openvino_like_onnxruntime(fp32_onnx, tmp_path):
    import onnxruntime as ort

    from calibration.precision import apply_precision

    result = apply_precision(
        fp32_onnx, "int8", style="ort", calibration={"source": "synthetic", "count": 16}, work_dir=tmp_path / "work"
    )
    assert any(n.op_type == "QuantizeLinear" for n in result.model.graph.node), "expected a Q/DQ model"
    int8_path = tmp_path / "int8.onnx"
    onnx.save(result.model, str(int8_path))
    bundle = _bundle(int8_path, tmp_path / "int8", precision="int8")
    x = np.random.default_rng(7).standard_normal((8, 3, 16, 16)).astype(np.float32)
    session = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    ref = session.run(["output"], {"input": x})[0]
    with Engine.load(bundle, threads=1) as engine:
        out = engine(x)["output"]
    assert out.shape == ref.shape
    cos = float((out.ravel() @ ref.ravel()) / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert cos >= 0.99, cos


def test_missing_openvino_degrades_with_a_notice(monkeypatch, bundle):
    import sys

    from deploy.runtime.openvino import openvino_available

    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    ok, why = openvino_available()
    assert not ok and "pip install openvino" in why
    assert bf16_supported() == (False, why)
    with pytest.raises(UserError, match="OpenVINO is not installed"):
        Engine.load(bundle)
