"""`attnx build` for ONNX Runtime bundles: manifest, parity, engine, atomic writes, corrupt bundles."""

import json
import threading

import numpy as np
import onnx
import pytest
import torch

from attnx.core.errors import UserError
from attnx.deploy.apis.build import BuildOptions, build_bundle
from attnx.deploy.apis.pipeline import export_model, prepare_model
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import MANIFEST_NAME, load_manifest
from attnx.exporters.export import ExportOptions

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "tiny"
    build_bundle(TINY, out, BuildOptions(backend="ort", input_shape=SHAPE))
    return out


def test_bundle_holds_engine_onnx_and_manifest(bundle):
    assert {p.name for p in bundle.iterdir()} == {"manifest.json", "model.onnx", "engine.onnx"}
    m = load_manifest(bundle)
    assert (m.backend, m.precision, m.source["model"], m.source["reference"]) == ("ort", "fp32", TINY, "torch")
    assert m.inputs[0].shape == ["batch", 3, 16, 16] and m.inputs[0].profile["max"] == [8, 3, 16, 16]
    assert m.outputs[0].name == "output" and m.libraries["onnxruntime"]
    assert m.parity["passed"] and [c["label"] for c in m.parity["cases"]] == ["batch 1", "batch 3"]
    assert set(m.sha256) == {"model.onnx", "engine.onnx"}
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")], "no temp folders left"


def test_manifest_round_trip(bundle):
    m = load_manifest(bundle)
    assert m.to_dict() == json.loads((bundle / MANIFEST_NAME).read_text())


def test_engine_matches_torch_and_takes_numpy_or_torch(bundle):
    model = prepare_model(TINY).model
    x = np.random.default_rng(3).standard_normal((5, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    with Engine.load(bundle) as engine:
        assert np.abs(engine({"input": x})["output"] - ref).max() < 1e-5
        assert np.abs(engine(torch.from_numpy(x))["output"] - ref).max() < 1e-5  # single-input shorthand
        assert np.abs(engine(input=x)["output"] - ref).max() < 1e-5


def test_engine_is_thread_safe(bundle):
    model = prepare_model(TINY).model
    inputs = [np.full((1, 3, 16, 16), i / 10, dtype=np.float32) for i in range(16)]
    with torch.no_grad():
        refs = [model(torch.from_numpy(x)).numpy() for x in inputs]
    results: dict[int, np.ndarray] = {}
    with Engine.load(bundle, pool_size=2) as engine:

        def work(i: int) -> None:
            for _ in range(5):
                results[i] = engine(inputs[i])["output"]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(np.abs(results[i] - refs[i]).max() < 1e-5 for i in range(16))


@pytest.mark.parametrize(
    ("feed", "fragment"),
    [
        ({"input": np.zeros((1, 3, 16, 16), np.float64)}, "dtype float64"),
        ({"input": np.zeros((3, 16, 16), np.float32)}, "rank 3"),
        ({"input": np.zeros((1, 3, 17, 16), np.float32)}, "axis 2 must be 16"),
        ({"image": np.zeros((1, 3, 16, 16), np.float32)}, "unknown input"),
        ({}, "missing input 'input'"),
    ],
)
def test_engine_rejects_bad_inputs(bundle, feed, fragment):
    with Engine.load(bundle) as engine, pytest.raises(UserError, match=fragment):
        engine(feed)


def test_corrupt_bundles_are_named(bundle, tmp_path):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(bundle, cut)
    data = (cut / "engine.onnx").read_bytes()
    (cut / "engine.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt: engine.onnx does not match its recorded SHA-256"):
        Engine.load(cut)
    (cut / "engine.onnx").unlink()
    with pytest.raises(UserError, match="incomplete: engine.onnx is missing"):
        load_manifest(cut)
    (cut / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(UserError, match="manifest.json is corrupt"):
        load_manifest(cut)
    (cut / MANIFEST_NAME).unlink()
    with pytest.raises(UserError, match="not an attnx bundle"):
        load_manifest(cut)
    with pytest.raises(UserError, match="bundle not found"):
        load_manifest(tmp_path / "nowhere")
    newer = json.loads((bundle / MANIFEST_NAME).read_text()) | {"format_version": 99}
    (cut / MANIFEST_NAME).write_text(json.dumps(newer))
    with pytest.raises(UserError, match="newer than this attnx reads"):
        load_manifest(cut, verify=False)


def test_build_from_onnx_with_and_without_attnx_metadata(tmp_path):
    prepared = prepare_model(TINY)
    result, _ = export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=SHAPE))
    with_meta = build_bundle(str(result.path), tmp_path / "a", BuildOptions(backend="ort"), model_spec=TINY)
    assert with_meta.manifest.source["reference"] == "torch" and with_meta.parity.passed
    # the metadata names a factory, not a zoo model: without --model it is not imported, the fp32 ONNX is the reference
    from_meta = build_bundle(str(result.path), tmp_path / "m", BuildOptions(backend="ort"))
    assert from_meta.manifest.source["reference"] == "onnxruntime fp32" and from_meta.parity.passed

    proto = onnx.load(str(result.path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    plain = build_bundle(str(tmp_path / "plain.onnx"), tmp_path / "b", BuildOptions(backend="ort"))
    assert plain.manifest.source["reference"] == "onnxruntime fp32" and plain.parity.passed


def test_plugin_form_bundle_runs(tmp_path):
    pytest.importorskip("onnxruntime_extensions")
    result = build_bundle("ea_seg", tmp_path / "ea", BuildOptions(backend="ort", plugins="trt"))
    assert result.manifest.plugins == ["DoubleNorm"] and result.parity.passed
    with Engine.load(result.bundle) as engine:
        out = engine(np.zeros((2, 3, 64, 64), np.float32))
    assert out[result.manifest.outputs[0].name].shape == (2, 5, 64, 64)


def test_failed_build_leaves_nothing(tmp_path):
    with pytest.raises(UserError, match="linalg_svdvals"):
        build_bundle("tests.fixtures:unexportable_net", tmp_path / "out", BuildOptions(backend="ort",
                     input_shape=(1, 3, 8, 8)))  # fmt: skip
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (BuildOptions(backend="ort", precision="fp4"), "unknown precision 'fp4'"),
        (BuildOptions(backend="tpu"), "unknown backend 'tpu'"),
        (BuildOptions(backend="ort", max_batch=0), "--max-batch"),
    ],
)
def test_bad_build_options(options, fragment, tmp_path):
    with pytest.raises(UserError, match=fragment):
        build_bundle(TINY, tmp_path / "x", options)
    assert not list(tmp_path.iterdir())


def test_trt_backend_without_gpu_is_a_clear_error(tmp_path):
    from attnx.core.device import gpu_status

    if gpu_status()[0]:
        pytest.skip("a GPU with TensorRT is present")
    with pytest.raises(UserError, match="--backend trt needs an NVIDIA GPU"):
        build_bundle(TINY, tmp_path / "x", BuildOptions(backend="trt", input_shape=SHAPE))


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="is not a bundle"):
        build_bundle(TINY, tmp_path / "stuff", BuildOptions(backend="ort", input_shape=SHAPE))
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine"
