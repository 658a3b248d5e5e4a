"""Layer-wise search: an injected fault is found at the node that carries it."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attnx.core.errors import UserError
from attnx.deploy.backends.onnx_graph import expose_intermediates
from attnx.deploy.parity.compare import POLICIES
from attnx.deploy.parity.layerwise import (
    layerwise_compare,
    run_with_intermediates,
    topological_nodes,
)

FP32 = POLICIES["fp32"]


def gated_net() -> onnx.ModelProto:
    """conv1 → relu1 → conv2 → sig; gate = relu1 · sig → pool → head: a small attention-gated classifier."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
        for n, s in [
            ("w1", (8, 3, 3, 3)),
            ("b1", (8,)),
            ("w2", (8, 8, 3, 3)),
            ("b2", (8,)),
            ("fc", (5, 8)),
            ("fcb", (5,)),
        ]  # fmt: skip
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4, name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1] * 4, name="conv2"),
        helper.make_node("Sigmoid", ["c2"], ["s2"], name="sig"),
        helper.make_node("Mul", ["r1", "s2"], ["m"], name="gate"),
        helper.make_node("GlobalAveragePool", ["m"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1, name="head"),
    ]
    graph = helper.make_graph(
        nodes, "gated", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def perturb_weight(model: onnx.ModelProto, name: str, scale: float) -> onnx.ModelProto:
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    for init in bad.graph.initializer:
        if init.name == name:
            arr = numpy_helper.to_array(init).copy()
            arr[0] *= scale  # one output channel computes wrongly
            init.CopyFrom(numpy_helper.from_array(arr, name))
    return bad


@pytest.fixture
def feed():
    return {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}


def test_identical_graph_agrees_everywhere(feed):
    report = layerwise_compare(gated_net(), gated_net(), feed, FP32)
    assert report.passed and report.first_divergence is None
    assert [c.tensor for c in report.checks] == ["c1", "r1", "c2", "s2", "m", "g", "f", "y"]
    assert all(c.max_abs == 0 for c in report.checks)


def test_perturbed_node_is_found_as_the_first_divergence(feed):
    report = layerwise_compare(gated_net(), perturb_weight(gated_net(), "w2", 1.05), feed, FP32)
    first = report.first_divergence
    assert first is not None and (first.node, first.op_type, first.tensor) == ("conv2", "Conv", "c2")
    assert report.last_agreeing.node == "relu1"  # everything before it agreed
    assert all(c.passed for c in report.checks if c.order < first.order)
    assert "conv2" in report.summary() and "Conv" in report.summary()
    json.dumps(report.to_dict())  # JSON-ready


def test_replaced_op_is_found(feed):
    bad = gated_net()
    relu = next(n for n in bad.graph.node if n.name == "relu1")
    relu.op_type = "LeakyRelu"  # the kind of slip a converter makes: wrong op, same tensor names
    relu.attribute.append(helper.make_attribute("alpha", 0.5))
    report = layerwise_compare(gated_net(), bad, feed, FP32)
    assert (report.first_divergence.node, report.first_divergence.op_type) == ("relu1", "Relu")
    assert report.checks[0].passed  # conv1 is fine


def test_fused_candidate_points_at_the_fused_region(feed):
    """After ORT fuses conv2+sigmoid their outputs vanish: the divergence shows up at the first tensor that
    still exists, and the unmatched fused nodes before it are named as suspects.

    Which tensors survive depends on the CPU: with AVX2 (8-float blocks) ORT also moves these 8-channel maps
    to its NCHWc layout, so the gate's output vanishes too; with AVX-512 (16-float blocks) it does not."""
    report = layerwise_compare(gated_net(), perturb_weight(gated_net(), "w2", 1.05), feed, FP32,
                               candidate_optimize="all")  # fmt: skip
    unmatched = {u.tensor for u in report.unmatched}
    assert unmatched >= {"c2"}
    order = ["c1", "r1", "c2", "s2", "m", "g", "f", "y"]
    first_kept = next(t for t in order[order.index("c2") + 1 :] if t not in unmatched)
    assert report.first_divergence.tensor == first_kept
    assert "conv2" in {u.node for u in report.suspects}
    assert "possibly the cause" in report.summary()
    clean = layerwise_compare(gated_net(), gated_net(), feed, FP32, candidate_optimize="all")
    assert clean.passed and len(clean.checks) == len(order) - len(unmatched)  # every surviving tensor compared


def test_fp16_tolerance_accepts_small_errors_that_fp32_rejects(feed):
    slightly = perturb_weight(gated_net(), "w2", 1.0005)
    assert not layerwise_compare(gated_net(), slightly, feed, FP32).passed
    assert layerwise_compare(gated_net(), slightly, feed, POLICIES["fp16"], precision="fp16").passed


def test_known_renamings_are_matched(feed):
    """ORT's precision-free cast removal prefixes tensor names; fp16 converters add _output_cast_N."""
    from attnx.deploy.parity.layerwise import canonical_name

    assert canonical_name("InsertedPrecisionFreeCast_/stem/Conv_output_0") == "/stem/Conv_output_0"
    assert canonical_name("/attn/ReduceMean_output_cast_0") == "/attn/ReduceMean_output_0"
    renamed = perturb_weight(gated_net(), "w2", 1.05)
    for node in renamed.graph.node:  # rename conv2's output as ORT would
        node.output[:] = ["InsertedPrecisionFreeCast_c2" if t == "c2" else t for t in node.output]
        node.input[:] = ["InsertedPrecisionFreeCast_c2" if t == "c2" else t for t in node.input]
    report = layerwise_compare(gated_net(), renamed, feed, FP32)
    assert report.first_divergence.tensor == "c2" and not report.unmatched


def test_expose_and_run_intermediates(feed):
    exposed = expose_intermediates(gated_net())
    assert [o.name for o in exposed.graph.output][1:] == ["c1", "r1", "c2", "s2", "m", "g", "f"]
    values = run_with_intermediates(gated_net(), feed, names=["r1"])
    assert set(values) == {"y", "r1"} and values["r1"].min() >= 0
    assert [n.name for n in topological_nodes(gated_net())][:2] == ["conv1", "relu1"]


def test_bad_inputs_are_user_errors(tmp_path, feed):
    with pytest.raises(UserError, match="not found"):
        layerwise_compare(tmp_path / "missing.onnx", gated_net(), feed, FP32)
    with pytest.raises(UserError, match="rejects the inputs"):
        layerwise_compare(gated_net(), gated_net(), {"x": np.zeros((1, 4, 8, 8), np.float32)}, FP32)


def test_ort_bundle_engine_matches_its_fp32_onnx(tmp_path):
    """A real bundle: the shipped engine.onnx (ORT-optimised, fused) against the exported fp32 graph."""
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.apis.parity import layerwise_bundle
    from attnx.deploy.apis.pipeline import export_model, prepare_model
    from attnx.exporters.export import ExportOptions

    prepared = prepare_model("tests.fixtures:tiny_net")
    onnx_path, _ = export_model(prepared, tmp_path / "fp32.onnx", ExportOptions(input_shape=(1, 3, 16, 16)))
    bundle = build_bundle(str(onnx_path.path), tmp_path / "bundle",
                          BuildOptions(backend="ort", precision="fp32", max_batch=2)).bundle  # fmt: skip
    x = {"input": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    report = layerwise_bundle(bundle, onnx_path.path, x)
    assert report.passed, report.summary()
    assert report.checks[-1].tensor == "output"
    assert layerwise_bundle(bundle, onnx_path.path, x, graph="model-raw").passed
    with pytest.raises(UserError, match="engine, model or model-raw"):
        layerwise_bundle(bundle, onnx_path.path, x, graph="plan")


# -- OpenVINO bundles: the candidate runs in OpenVINO, at the bundle's inference precision ---------------------
def _zoo_fp32(tmp_path) -> Path:
    """cbam_resnet (tiny config) exported for CPU backends, without attnx custom ops (OpenVINO runs none)."""
    from attnx.deploy.apis.pipeline import export_model, prepare_model
    from attnx.exporters.export import ExportOptions

    options = ExportOptions(input_shape=(1, 3, 32, 32), dynamic_batch=True)
    result, _ = export_model(prepare_model("cbam_resnet"), tmp_path / "fp32.onnx", options, plugins="none")
    return result.path


def _openvino_bundle(engine: onnx.ModelProto, dest, inference_precision: str = "f32"):
    """An OpenVINO bundle around ``engine`` as it is (a fault injected into it stays there)."""
    from attnx.deploy.apis.build import io_specs
    from attnx.deploy.bundle.manifest import BundleWriter, Manifest

    with BundleWriter(dest) as writer:
        onnx.save(engine, str(writer.path("model.onnx")))
        onnx.save(engine, str(writer.path("engine.onnx")))
        manifest = Manifest(
            backend="openvino", precision="bf16" if inference_precision == "bf16" else "fp32", source={}, opset=17,
            inputs=io_specs(engine, 2, None)[0], outputs=io_specs(engine, 2, None)[1],
            files={"onnx": "model.onnx", "engine": "engine.onnx"}, build={"inference_precision": inference_precision},
        )  # fmt: skip
        return writer.commit(manifest)


def test_openvino_runner_exposes_intermediates(feed):
    pytest.importorskip("openvino")
    from attnx.deploy.backends.openvino.runner import OpenVinoRunner

    runner = OpenVinoRunner(gated_net())
    values = runner.infer_with_outputs(feed, ["r1", "c2"])
    ref = run_with_intermediates(gated_net(), feed, names=["r1", "c2"])
    assert {"y", "r1", "c2"} <= set(values)
    for name in ("y", "r1", "c2"):
        np.testing.assert_allclose(values[name], ref[name], rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match=r"OpenVINO rejects the inputs: ParameterMismatch"):
        runner.infer_with_outputs({"x": np.zeros((1, 4, 8, 8), np.float32)}, [])
    with pytest.raises(UserError, match=r"intermediates exposed: nope node not found"):
        runner.infer_with_outputs(feed, ["nope"])


def test_openvino_runner_finds_the_perturbed_node(feed):
    pytest.importorskip("openvino")
    from attnx.deploy.backends.openvino.runner import OpenVinoRunner

    report = layerwise_compare(gated_net(), perturb_weight(gated_net(), "w2", 1.05), feed, FP32,
                               candidate_runner=OpenVinoRunner)  # fmt: skip
    first = report.first_divergence
    assert (first.node, first.tensor) == ("conv2", "c2") and report.last_agreeing.node == "relu1"


def test_openvino_bundle_is_searched_in_openvino(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    import attnx.deploy.backends.openvino.runner as ov
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.apis.parity import layerwise_bundle

    fp32 = _zoo_fp32(tmp_path)
    bundle = build_bundle(str(fp32), tmp_path / "ov", BuildOptions(backend="openvino", max_batch=2)).bundle
    calls = []
    real = ov.OpenVinoRunner.infer_with_outputs

    def spy(self, feed, names):
        calls.append({"inference_precision": self.inference_precision})
        return real(self, feed, names)

    monkeypatch.setattr(ov.OpenVinoRunner, "infer_with_outputs", spy)
    x = {"input": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    report = layerwise_bundle(bundle, fp32, x)
    # twice: with the intermediates exposed, and a normal run its outputs are checked against (trust)
    assert [c["inference_precision"] for c in calls] == ["f32", "f32"], "the candidate ran in OpenVINO"
    assert "(model.onnx, OpenVINO f32)" in report.candidate
    assert report.passed and len(report.checks) > 50 and report.checks[-1].tensor == "output", report.summary()

    # a fault in the shipped graph is found at its node, through OpenVINO
    model = onnx.load(str(fp32))
    conv = [n for n in topological_nodes(model) if n.op_type == "Conv"][3]
    broken = _openvino_bundle(perturb_weight(model, conv.input[1], 1.05), tmp_path / "broken")
    report = layerwise_bundle(broken, fp32, x)
    assert report.first_divergence.node == conv.name, report.summary()
    assert all(c.passed for c in report.checks if c.order < report.first_divergence.order)


def test_bf16_openvino_bundle_is_searched_in_bf16(tmp_path):
    pytest.importorskip("openvino")
    from attnx.deploy.apis.parity import layerwise_bundle
    from attnx.deploy.backends.openvino.runner import bf16_supported

    fp32 = _zoo_fp32(tmp_path)
    model = onnx.load(str(fp32))
    bf16 = _openvino_bundle(model, tmp_path / "bf16", "bf16")
    x = {"input": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    if not bf16_supported()[0]:
        with pytest.raises(UserError, match="bf16"):
            layerwise_bundle(bf16, fp32, x)
        return
    report = layerwise_bundle(bf16, fp32, x)
    assert "OpenVINO bf16" in report.candidate and report.precision == "bf16"
    assert report.passed, report.summary()
    # bf16 rounding shows from the first convolution on; the same graph in f32 agrees to float error
    f32 = layerwise_bundle(_openvino_bundle(model, tmp_path / "f32"), fp32, x)
    assert report.checks[0].max_abs > 1e-4 > 1e-5 > f32.checks[0].max_abs
