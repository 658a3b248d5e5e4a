"""`attnx triton-repo`: per-model config.pbtxt parsed back with Triton's own schema (tritonclient's
model_config_pb2), the model files in their version folders, cc_model_filenames for plans, the README."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from attnx.core.errors import UserError
from attnx.deploy.apis.build import io_specs
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import BundleWriter, Manifest, cpu_device, sha256_file
from attnx.deploy.serving.cli import triton_repo
from attnx.deploy.serving.triton_repo import (
    check_pbtxt,
    compute_capability,
    model_config,
    render_pbtxt,
    write_repository,
)
from tests.deploy.serving.conftest import multi_model


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def trt_bundle(dest: Path, cc: str | None, plugins: list[str] | None = None, plan: bytes = b"plan-bytes") -> Path:
    """A TensorRT-backend bundle as `attnx build --backend trt` lays it out. The repository writer only copies
    a plan (Triton deserialises it), so placeholder bytes stand in for a GPU-built engine here."""
    model = multi_model()
    with BundleWriter(dest) as writer:
        onnx.save(model, str(writer.path("model.onnx")))
        writer.path("engine.plan").write_bytes(plan)
        inputs, outputs = io_specs(model, max_batch=16, opt_shape=None)
        device = {"kind": "gpu", "name": "NVIDIA GPU"} | ({"compute_capability": cc} if cc else {})
        manifest = Manifest(
            backend="trt", precision="fp16", source={"model": "multi"}, opset=17, inputs=inputs, outputs=outputs,
            files={"onnx": "model.onnx", "engine": "engine.plan"}, plugins=plugins or [],
            libraries={"tensorrt": "10.13.0"}, device=device, parity={"passed": True},
        )  # fmt: skip
        return writer.commit(manifest)


def test_ort_repository(bundles, tmp_path, capsys):
    repo = tmp_path / "repo"
    folders = triton_repo([bundles["tiny"], f"pair={bundles['multi']}", bundles["static"]], repo, max_delay_us=500)
    assert folders == [repo / "tiny", repo / "pair", repo / "static"]
    printed = capsys.readouterr().out
    assert "onnxruntime_onnx, max_batch_size 8" in printed and "checked with Triton's model_config schema" in printed

    tiny = parse(repo / "tiny" / "config.pbtxt")
    assert (tiny.name, tiny.platform, tiny.max_batch_size) == ("tiny", "onnxruntime_onnx", 8)
    assert [(t.name, t.data_type, list(t.dims)) for t in tiny.input] == [
        ("input", model_config_pb2.TYPE_FP32, [3, 16, 16])
    ]
    assert [(t.name, list(t.dims)) for t in tiny.output] == [("output", [4])]
    assert tiny.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.count, g.kind) for g in tiny.instance_group] == [(1, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    assert tiny.default_model_filename == "model.onnx"

    pair = parse(repo / "pair" / "config.pbtxt")
    assert pair.name == "pair" and [t.data_type for t in pair.input] == [
        model_config_pb2.TYPE_FP32,
        model_config_pb2.TYPE_INT64,
    ]

    static = parse(repo / "static" / "config.pbtxt")
    assert static.max_batch_size == 0 and list(static.input[0].dims) == [2, 3]
    assert not static.HasField("dynamic_batching")

    # the file Triton loads is the bundle's ONNX and computes what the bundle's Engine computes
    model_file = repo / "tiny" / "1" / "model.onnx"
    assert sha256_file(model_file) == sha256_file(bundles["tiny"] / "model.onnx")
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    got = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with Engine.load(bundles["tiny"]) as engine:
        np.testing.assert_allclose(got, engine(x)["output"], rtol=1e-5, atol=1e-6)

    side = json.loads((repo / "tiny" / "attnx.json").read_text())
    assert side["bundles"][0]["bundle"] == str(bundles["tiny"].resolve()) and side["files"] == ["1/model.onnx"]
    readme = (repo / "README.md").read_text()
    assert f"tritonserver --model-repository={repo.resolve()}" in readme
    assert "| tiny | ort | fp32 | 1/model.onnx |" in readme and "| static |" in readme
    assert not list(repo.glob(".*")), "no temporary folders left behind"


def test_plans_for_two_compute_capabilities_become_one_model(tmp_path):
    a = trt_bundle(tmp_path / "b89", "8.9", plugins=["DoubleNorm"], plan=b"plan for sm89")
    b = trt_bundle(tmp_path / "b90", "sm_90", plugins=["DoubleNorm"], plan=b"plan for sm90")
    repo = tmp_path / "repo"
    models = write_repository([f"net={a}", f"net={b}"], repo, max_batch=4)
    assert [m.name for m in models] == ["net"]
    config = parse(repo / "net" / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4  # min(--max-batch, profile max 16)
    assert dict(config.cc_model_filenames) == {"8.9": "model.sm89.plan", "9.0": "model.sm90.plan"}
    assert config.default_model_filename == ""
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert (repo / "net" / "1" / "model.sm89.plan").read_bytes() == b"plan for sm89"
    assert (repo / "net" / "1" / "model.sm90.plan").read_bytes() == b"plan for sm90"
    readme = (repo / "README.md").read_text()
    assert "--backend-config=tensorrt,plugins=" in readme and "['DoubleNorm']" in readme
    assert "same TensorRT (10.13.0)" in readme


def test_a_plan_without_compute_capability_is_the_default_file(tmp_path):
    plan = trt_bundle(tmp_path / "p", None)
    write_repository([f"p={plan}"], tmp_path / "repo")
    config = parse(tmp_path / "repo" / "p" / "config.pbtxt")
    assert config.default_model_filename == "model.plan" and not config.cc_model_filenames
    assert config.max_batch_size == 16  # the profile's max


def test_repository_errors(bundles, tmp_path):
    repo = tmp_path / "repo"
    with pytest.raises(UserError, match="2 ONNX Runtime bundles are named 'x'"):
        write_repository([f"x={bundles['tiny']}", f"x={bundles['static']}"], repo)
    a, b = trt_bundle(tmp_path / "a", "9.0"), trt_bundle(tmp_path / "b", "9.0")
    with pytest.raises(UserError, match="two plans for compute capability 9.0"):
        write_repository([f"n={a}", f"n={b}"], repo)
    with pytest.raises(UserError, match="different backends"):
        write_repository([f"n={a}", f"n={bundles['multi']}"], repo)
    with pytest.raises(UserError, match="runs only on GPU instances"):
        write_repository([a], repo, instance_kind="cpu")
    with pytest.raises(UserError, match="unknown instance kind 'tpu'"):
        write_repository([a], repo, instance_kind="tpu")
    with pytest.raises(UserError, match="bundle not found"):
        write_repository([tmp_path / "nothing"], repo)
    assert not repo.exists(), "nothing is written when any model fails"

    write_repository([bundles["tiny"]], repo)
    with pytest.raises(UserError, match="exists: pass --force"):
        write_repository([bundles["tiny"]], repo)
    write_repository([bundles["tiny"]], repo, max_batch=2, force=True)
    assert parse(repo / "tiny" / "config.pbtxt").max_batch_size == 2


def test_ort_bundle_with_python_custom_ops_is_refused(bundles, tmp_path):
    import shutil

    copy = tmp_path / "custom"
    shutil.copytree(bundles["tiny"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["plugins"] = ["DoubleNorm"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="--plugins none"):
        write_repository([copy], tmp_path / "repo")


def test_check_pbtxt_rejects_what_triton_would():
    good = {"name": "m", "platform": "onnxruntime_onnx", "max_batch_size": 2,
            "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [3]}],
            "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [3]}],
            "parameters": {"intra_op_thread_count": {"string_value": "1"}}}  # fmt: skip
    check_pbtxt(render_pbtxt(good), good, "good")
    with pytest.raises(RuntimeError, match="does not parse"):
        check_pbtxt(render_pbtxt(good) + "max_batch: 3\n", good, "unknown field")
    with pytest.raises(RuntimeError, match="does not parse"):
        check_pbtxt(render_pbtxt(good).replace("TYPE_FP32", "TYPE_FLOAT", 1), good, "bad enum")
    with pytest.raises(RuntimeError, match="different configuration"):
        check_pbtxt(render_pbtxt(good).replace("max_batch_size: 2", "max_batch_size: 3"), good, "drift")
    dup = {**good, "output": [{"name": "x", "data_type": "TYPE_FP32", "dims": [3]}]}
    with pytest.raises(RuntimeError, match="tensor names repeat"):
        check_pbtxt(render_pbtxt(dup), dup, "dup")
    unbatched = {**good, "max_batch_size": 0, "dynamic_batching": {}}
    with pytest.raises(RuntimeError, match="dynamic_batching needs max_batch_size > 0"):
        check_pbtxt(render_pbtxt(unbatched), unbatched, "unbatched")


def test_scalar_outputs_get_dims_1_reshaped(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch"])
    graph = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, axes=None)], "g", [x], [s])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    manifest = Manifest("ort", "fp32", {}, 17, *io_specs(model, 8, None), files={}, device=cpu_device())
    config = model_config("s", manifest, max_batch=8, max_delay_us=None, instance_count=2, instance_kind="KIND_CPU")
    check_pbtxt(render_pbtxt(config), config, "scalar")
    parsed = text_format.Parse(render_pbtxt(config), model_config_pb2.ModelConfig())
    assert list(parsed.output[0].dims) == [1] and parsed.output[0].HasField("reshape")
    assert parsed.instance_group[0].count == 2


@pytest.mark.parametrize(
    "device,cc",
    [({"compute_capability": "8.6"}, "8.6"), ({"compute_capability": [9, 0]}, "9.0"), ({"cc": "sm_120"}, "12.0"),
     ({"sm": 89}, "8.9"), ({}, None), ({"compute_capability": "unknown"}, None)],
)  # fmt: skip
def test_compute_capability_forms(device, cc):
    m = Manifest("trt", "fp16", {}, 17, [], [], {}, device=device)
    assert compute_capability(m) == cc


# -- OpenVINO bundles → Triton's OpenVINO backend ---------------------------------------------------------
@pytest.fixture(scope="module")
def ov_bundles(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("openvino")
    import shutil

    from attnx.deploy.apis.build import BuildOptions, build_bundle

    root = tmp_path_factory.mktemp("ov-bundles")
    options = BuildOptions(backend="openvino", precision="fp32", input_shape=(1, 3, 16, 16))
    fp32 = build_bundle("tests.fixtures:tiny_net", root / "fp32", options).bundle
    # a bf16 bundle differs only in its recorded inference precision (and compiled model): the repository
    # writer reads the manifest, so a copy with bf16 recorded stands in on CPUs without bf16 too
    bf16 = root / "bf16"
    shutil.copytree(fp32, bf16)
    manifest = json.loads((bf16 / "manifest.json").read_text())
    manifest["precision"], manifest["build"]["inference_precision"] = "bf16", "bf16"
    (bf16 / "manifest.json").write_text(json.dumps(manifest))
    return {"fp32": fp32, "bf16": bf16}


def test_openvino_repository(ov_bundles, tmp_path, capsys):
    import openvino

    repo = tmp_path / "repo"
    triton_repo([f"ov={ov_bundles['fp32']}", f"ovbf={ov_bundles['bf16']}"], repo, instances=3, max_batch=4)
    out = capsys.readouterr().out.replace(str(repo) + "/", "")
    assert "ov: openvino backend, max_batch_size 0" in out
    # The fp32 model may run in bf16 under Triton: said on the console, and only for it.
    assert "warning: ov: Triton's OpenVINO backend cannot pin f32" in out and "warning: ovbf:" not in out

    config = parse(repo / "ov" / "config.pbtxt")
    assert (config.backend, config.platform, config.max_batch_size) == ("openvino", "", 0)
    # the ONNX's own dynamic batch axis, and no dynamic batcher (the backend fixes a batched model's batch)
    assert [(t.name, list(t.dims)) for t in config.input] == [("input", [-1, 3, 16, 16])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("output", [-1, 4])]
    assert not config.HasField("dynamic_batching")
    assert [(g.count, g.kind) for g in config.instance_group] == [(3, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    assert config.default_model_filename == "model.onnx"
    assert {k: v.string_value for k, v in config.parameters.items()} == {"NUM_STREAMS": "3"}
    bf16 = parse(repo / "ovbf" / "config.pbtxt")
    assert {k: v.string_value for k, v in bf16.parameters.items()} == {"NUM_STREAMS": "3", "HINT_BF16": "YES"}

    # Triton's backend gets the bundle's ONNX (not its compiled model, which is tied to attnx's OpenVINO),
    # and OpenVINO computes from it what the bundle's Engine computes, at any batch size
    assert sorted(p.name for p in (repo / "ov" / "1").iterdir()) == ["model.onnx"]
    model_file = repo / "ov" / "1" / "model.onnx"
    assert sha256_file(model_file) == sha256_file(ov_bundles["fp32"] / "model.onnx")
    compiled = openvino.Core().compile_model(str(model_file), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    got = compiled.create_infer_request().infer({"input": x})["output"]
    with Engine.load(ov_bundles["fp32"]) as engine:
        np.testing.assert_allclose(got, engine(x)["output"], rtol=1e-5, atol=1e-6)

    readme = (repo / "README.md").read_text()
    assert "| ov | openvino | fp32 | 1/model.onnx |" in readme and "| ovbf | openvino | bf16 |" in readme
    assert "OpenVINO backend" in readme and "`max_batch_size: 0`" in readme and "pins f32" in readme


def test_openvino_repository_errors(ov_bundles, tmp_path):
    repo = tmp_path / "repo"
    with pytest.raises(UserError, match="GPU instances are CUDA devices: use --instance-kind cpu"):
        write_repository([ov_bundles["fp32"]], repo, instance_kind="gpu")
    with pytest.raises(UserError, match="2 OpenVINO bundles are named 'x'"):
        write_repository([f"x={ov_bundles['fp32']}", f"x={ov_bundles['bf16']}"], repo)
    with pytest.raises(UserError, match="different backends"):
        write_repository([f"x={ov_bundles['fp32']}", f"x={trt_bundle(tmp_path / 't', '9.0')}"], repo)
    assert not repo.exists()


def test_check_pbtxt_knows_the_openvino_backend():
    good = {"name": "m", "backend": "openvino", "max_batch_size": 0,
            "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 3]}],
            "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [-1, 3]}],
            "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
            "parameters": {"NUM_STREAMS": {"string_value": "1"}}}  # fmt: skip
    check_pbtxt(render_pbtxt(good), good, "good")
    batched = {**good, "max_batch_size": 4, "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [3]}],
               "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [3]}]}  # fmt: skip
    with pytest.raises(RuntimeError, match="fails every batch smaller than max_batch_size"):
        check_pbtxt(render_pbtxt(batched), batched, "batched")
    padded = {**batched, "parameters": {"ENABLE_BATCH_PADDING": {"string_value": "YES"}}}
    check_pbtxt(render_pbtxt(padded), padded, "padded")
    gpu = {**good, "instance_group": [{"count": 1, "kind": "KIND_GPU"}]}
    with pytest.raises(RuntimeError, match="takes CPU instances"):
        check_pbtxt(render_pbtxt(gpu), gpu, "gpu")
