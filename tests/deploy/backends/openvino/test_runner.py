"""The OpenVINO runtime behind Engine: fp32 parity with torch, concurrency, attnx custom nodes, Q/DQ int8, and the
compiled model saved in the bundle (used when made for this OpenVINO and CPU, else the ONNX with a notice)."""

import json
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("openvino")

from attnx.core.errors import UserError  # noqa: E402
from attnx.deploy.apis.build import io_specs  # noqa: E402
from attnx.deploy.apis.pipeline import export_model, prepare_model  # noqa: E402
from attnx.deploy.backends.openvino.runner import bf16_supported, compiled_key, write_compiled  # noqa: E402
from attnx.deploy.bundle.engine import Engine  # noqa: E402
from attnx.deploy.bundle.manifest import BundleWriter, Manifest, load_manifest  # noqa: E402
from attnx.exporters.export import ExportOptions  # noqa: E402

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)


def _bundle(onnx_path: Path, dest: Path, precision: str = "fp32", build: dict | None = None,
            compiled: bool = False) -> Path:  # fmt: skip
    """An openvino bundle written by hand: the baked ONNX as both model.onnx and engine.onnx (and, with
    ``compiled``, the compiled model as `attnx build` saves it)."""
    model = onnx.load(str(onnx_path))
    inputs, outputs = io_specs(model, 8, SHAPE)
    build = dict(build or {})
    files = {"onnx": "model.onnx", "engine": "engine.onnx"}
    with BundleWriter(dest) as writer:
        shutil.copyfile(onnx_path, writer.path("model.onnx"))
        shutil.copyfile(onnx_path, writer.path("engine.onnx"))
        if compiled:
            precision_hint = "bf16" if build.get("inference_precision") == "bf16" else "f32"
            build["compiled"] = write_compiled(writer.path("engine.onnx"), writer.path("compiled.blob"), precision_hint)
            files["compiled"] = "compiled.blob"
        manifest = Manifest(
            backend="openvino", precision=precision, source={"model": TINY}, opset=17, inputs=inputs,
            outputs=outputs, files=files, build=build,
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
        assert type(engine.runner).__name__ == "OpenVinoRunner"
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
        assert engine.runner.inference_precision == "bf16"
        import openvino

        assert engine.runner.compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16
        out = engine(x)["output"]
    assert out.dtype == np.float32
    cos = float((out.ravel() @ ref.ravel()) / (np.linalg.norm(out) * np.linalg.norm(ref)))
    assert cos >= 0.99


def test_qdq_int8_runs_in_openvino_like_onnxruntime(fp32_onnx, tmp_path):
    import onnxruntime as ort

    from attnx.calibration.precision import apply_precision

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

    from attnx.deploy.backends.openvino.runner import openvino_available

    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    ok, why = openvino_available()
    assert not ok and "pip install openvino" in why
    assert bf16_supported() == (False, why)
    with pytest.raises(UserError, match="OpenVINO is not installed"):
        Engine.load(bundle)


# -- the compiled model saved in the bundle ---------------------------------------------------------------
@pytest.fixture(scope="module")
def compiled_bundle(fp32_onnx, tmp_path_factory) -> Path:
    return _bundle(fp32_onnx, tmp_path_factory.mktemp("ovc") / "tiny", compiled=True)


def _edited(bundle: Path, dest: Path, edit) -> Path:
    """A copy of ``bundle`` whose manifest.json went through ``edit`` (the manifest itself is not hashed)."""
    shutil.copytree(bundle, dest)
    data = json.loads((dest / "manifest.json").read_text())
    edit(data)
    (dest / "manifest.json").write_text(json.dumps(data))
    return dest


def test_build_saves_the_compiled_model_and_loading_uses_it(tmp_path):
    from attnx.deploy.apis.build import BuildOptions, build_bundle

    result = build_bundle(TINY, tmp_path / "b", BuildOptions(backend="openvino", input_shape=SHAPE, max_batch=4))
    manifest = load_manifest(result.bundle)
    assert manifest.files["compiled"] == "compiled.blob" and "compiled.blob" in manifest.sha256  # SHA-checked
    assert manifest.build["compiled"] == compiled_key("f32")
    assert result.parity.passed  # the build's parity check ran on the imported model
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with Engine.load(result.bundle, pool_size=2, threads=1) as engine:
        assert engine.runner.compiled_from == "blob"
        # streams and threads are applied at import: they are not baked into the blob
        assert engine.runner.compiled.get_property("NUM_STREAMS") == 2
        assert engine.runner.compiled.get_property("INFERENCE_NUM_THREADS") == 2
        out = engine(x)["output"]
    assert np.abs(out - _torch(x)).max() <= 1e-4


def test_compiled_model_gives_what_the_onnx_gives(compiled_bundle, bundle):
    x = np.random.default_rng(4).standard_normal((5, 3, 16, 16)).astype(np.float32)
    with Engine.load(compiled_bundle, threads=1) as fast, Engine.load(bundle, threads=1) as slow:
        assert (fast.runner.compiled_from, slow.runner.compiled_from) == ("blob", "onnx")
        np.testing.assert_array_equal(fast(x)["output"], slow(x)["output"])


@pytest.mark.parametrize(
    "field,value,says",
    [("openvino", "2024.0.0-14509-34caeefd078-releases/2024/0", "is for OpenVINO 2024.0.0"),
     ("inference_precision", "bf16", "is for inference precision bf16 (here f32)"),
     ("cpu", "Some Other CPU", "is for the CPU 'Some Other CPU'"),
     ("isa", ["sse2"], "is for a CPU with other extensions (here +")],
)  # fmt: skip
def test_compiled_model_for_another_machine_falls_back_with_one_notice(compiled_bundle, tmp_path, caplog, field,
                                                                       value, says):  # fmt: skip
    copy = _edited(compiled_bundle, tmp_path / "other", lambda m: m["build"]["compiled"].__setitem__(field, value))
    with caplog.at_level(logging.WARNING, logger="attnx.openvino"), Engine.load(copy, threads=1) as engine:
        assert engine.runner.compiled_from == "onnx"
        x = np.random.default_rng(6).standard_normal((2, 3, 16, 16)).astype(np.float32)
        assert np.abs(engine(x)["output"] - _torch(x)).max() <= 1e-4
    notices = [r.getMessage() for r in caplog.records if r.name == "attnx.openvino"]
    assert len(notices) == 1 and "\n" not in notices[0], notices
    assert says in notices[0] and "compiling engine.onnx instead" in notices[0] and "rebuild the bundle" in notices[0]


def test_a_blob_openvino_cannot_import_falls_back(compiled_bundle, tmp_path, caplog):
    from attnx.deploy.bundle.manifest import sha256_file

    copy = tmp_path / "garbage"
    shutil.copytree(compiled_bundle, copy)
    (copy / "compiled.blob").write_bytes(b"not a compiled model" * 64)
    data = json.loads((copy / "manifest.json").read_text())
    data["sha256"]["compiled.blob"] = sha256_file(copy / "compiled.blob")  # consistent, so SHA passes
    (copy / "manifest.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="attnx.openvino"), Engine.load(copy) as engine:
        assert engine.runner.compiled_from == "onnx"
    assert any("does not import" in r.getMessage() for r in caplog.records)


def test_a_modified_blob_fails_the_bundle_check(compiled_bundle, tmp_path):
    copy = tmp_path / "modified"
    shutil.copytree(compiled_bundle, copy)
    with open(copy / "compiled.blob", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    with pytest.raises(UserError, match=r"corrupt: compiled.blob does not match"):
        Engine.load(copy)


def test_bf16_compiled_model_keeps_its_precision(fp32_onnx, tmp_path):
    if not bf16_supported()[0]:
        pytest.skip("no bf16 on this CPU")
    import openvino

    bundle = _bundle(fp32_onnx, tmp_path / "bf16", build={"inference_precision": "bf16"}, compiled=True)
    assert load_manifest(bundle).build["compiled"]["inference_precision"] == "bf16"
    with Engine.load(bundle, threads=1) as engine:
        assert engine.runner.compiled_from == "blob"
        assert engine.runner.compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16
