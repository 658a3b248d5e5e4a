"""INT8 that holds on every CPU: feature detection (overridable), recipes, the static saturation proof, the
U8U8 guard, and TensorRT-layout checks by exact fake-quant. Nothing here depends on the CPU it runs on:
where an expectation differs by CPU, detection is forced through ATTNX_CPU_FEATURES and both branches run."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from attnx.calibration.graph import session
from attnx.calibration.int8_numerics import INT16_MAX, U8_MAX, cpu_form, fake_quant, saturation_proof
from attnx.calibration.plan import detect as detect_plan
from attnx.calibration.qdq import quantize
from attnx.core import cpu
from attnx.core.errors import UserError
from tests.calibration.conftest import attention_model
from tests.calibration.test_qdq import conv_model, cosine, prepared

AVX2 = cpu.parse_override("avx2,fma")  # Zen 3 / Haswell-class: u8×s8 pair sums saturate
VNNI = cpu.parse_override("avx2,fma,avx512f,avx512bw,avx512_vnni")
ARM = cpu.parse_override("asimddp")


@pytest.fixture
def force_cpu(monkeypatch):
    """Force detection to a feature list for the rest of the test (both branches run on any machine)."""

    def force(flags: str) -> cpu.CpuFeatures:
        monkeypatch.setenv(cpu.ENV_FEATURES, flags)
        return cpu.detect()

    monkeypatch.delenv(cpu.ENV_U8U8, raising=False)
    return force


def test_detection_reads_this_machine_and_the_override_wins(force_cpu, monkeypatch):
    monkeypatch.delenv(cpu.ENV_FEATURES, raising=False)
    here = cpu.detect()
    assert here.source in ("/proc/cpuinfo", "sysctl", "unknown") and here.arch
    assert force_cpu("avx2") == cpu.CpuFeatures("x86_64", frozenset({"avx2"}), cpu.ENV_FEATURES)
    assert cpu.detect().u8s8_saturates and "saturate" in cpu.detect().int8_kernel


@pytest.mark.parametrize(
    ("features", "saturates", "kernel"),
    [(AVX2, True, "VPMADDUBSW"), (VNNI, False, "VNNI"), (ARM, False, "ARM dot product"),
     (cpu.parse_override("avx2,amx_int8"), False, "AMX"), (cpu.parse_override("avx2,avx_vnni"), False, "VNNI")],
)  # fmt: skip
def test_which_cpus_saturate(features, saturates, kernel):
    assert features.u8s8_saturates is saturates and kernel in features.int8_kernel
    assert cpu.CpuFeatures.from_dict(json.loads(json.dumps(features.to_dict()))).same_kind(features)


def test_bad_override_and_target_are_one_line_errors():
    with pytest.raises(UserError, match="unknown flag.*avx2"):
        cpu.parse_override("avx3")
    with pytest.raises(UserError, match="choose native, portable, vnni"):
        cpu.int8_recipe("fast", AVX2)


@pytest.mark.parametrize(
    ("target", "features", "bits"),
    [("native", AVX2, 7), ("native", VNNI, 8), ("native", ARM, 8), ("portable", VNNI, 7), ("portable", AVX2, 7),
     ("vnni", AVX2, 8)],
)  # fmt: skip
def test_recipe_by_target_and_cpu(target, features, bits):
    recipe = cpu.int8_recipe(target, features)
    assert recipe.weight_bits == bits and recipe.saturation_safe is (bits == 7) and recipe.reason


def _quantized(weight_bits: int) -> tuple[onnx.ModelProto, onnx.ModelProto, np.ndarray]:
    model = conv_model()
    index, table, x = prepared(model, (1, 3, 12, 12))
    plan = detect_plan(index)
    return model, quantize(model, table, plan.int8_excluded(), "ort", weight_bits=weight_bits).model, x


def test_seven_bit_weights_are_proven_saturation_free_node_by_node():
    """For every quantized Conv/MatMul/Gemm: no pair of adjacent u8×s8 products can leave int16, for any input."""
    _, q, _ = _quantized(7)
    proof = saturation_proof(q)
    assert proof.safe and proof.checked >= 3  # conv1, conv2, fc (and the gate conv)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    producer = {o: n for n in q.graph.node for o in n.output}
    for node in q.graph.node:
        dq = producer.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type in ("Conv", "Gemm", "MatMul") and dq is not None and dq.op_type == "DequantizeLinear":
            w = inits[dq.input[0]]
            assert w.dtype == np.int8 and np.abs(w.astype(int)).max() <= 64
            rows = np.abs(w.astype(int)).reshape(w.shape[0], -1)
            top2 = np.sort(rows, axis=1)[:, -2:].sum(axis=1)
            assert (U8_MAX * top2 <= INT16_MAX).all()  # independent re-computation of the bound


def test_full_eight_bit_weights_are_not_proven_safe():
    _, q, _ = _quantized(8)
    proof = saturation_proof(q)
    assert not proof.safe and proof.worst()[1] > INT16_MAX
    assert proof.to_dict()["over_limit_count"] >= 1


@pytest.mark.parametrize("flags", ["avx2,fma", "avx2,fma,avx512f,avx512_vnni"])
def test_the_check_session_never_saturates(force_cpu, flags):
    """Full 8-bit weights on a CPU without VNNI run through ONNX Runtime's U8U8 kernels (exact), with VNNI
    through the usual ones; 7-bit weights never need U8U8. Accuracy is only asserted where the real CPU
    cannot be made to saturate: on the U8U8 path, or with 7-bit weights."""
    features = force_cpu(flags)
    model, q8, x = _quantized(8)
    _, q7, _ = _quantized(7)
    assert bool(cpu_form(q8).session_config) is features.u8s8_saturates
    assert not cpu_form(q7).session_config
    ref = session(model).run(None, {"x": x})[0]
    assert cosine(ref, session(q7).run(None, {"x": x})[0]) > 0.99
    if features.u8s8_saturates:
        assert cosine(ref, session(q8).run(None, {"x": x})[0]) > 0.99


def test_runtime_guard_by_cpu(force_cpu, monkeypatch):
    here = force_cpu("avx2,fma")
    safe = cpu.int8_runtime_path(True, VNNI, "ort")
    assert not safe.u8u8 and safe.warning is None and "7-bit" in safe.description
    moved = cpu.int8_runtime_path(False, VNNI, "ort", name="bundle b")
    assert moved.u8u8 and moved.session_config() == {"session.x64quantprecision": "1"}
    assert "bundle b" in moved.warning and "avx512_vnni" in moved.warning and "--cpu-target portable" in moved.warning
    same = cpu.int8_runtime_path(False, here, "ort")  # verified here, through U8U8: nothing to warn about
    assert same.u8u8 and same.warning is None
    ov = cpu.int8_runtime_path(False, VNNI, "openvino")
    assert not ov.u8u8 and "openvino may saturate" in ov.warning
    monkeypatch.setenv(cpu.ENV_U8U8, "off")
    off = cpu.int8_runtime_path(False, VNNI, "ort")
    assert not off.u8u8 and "opted out" in off.description and "=off" in off.warning
    monkeypatch.setenv(cpu.ENV_U8U8, "maybe")
    with pytest.raises(UserError, match="choose auto, on or off"):
        cpu.int8_runtime_path(False, VNNI, "ort")
    monkeypatch.delenv(cpu.ENV_U8U8)
    force_cpu("avx2,avx512f,avx512_vnni")
    vnni = cpu.int8_runtime_path(False, AVX2, "ort")
    assert not vnni.u8u8 and vnni.warning is None


def test_fake_quant_is_the_onnx_definition_of_a_trt_layout_graph():
    """TensorRT layout is checked on the CPU as fake-quant float ops; they agree with ONNX's reference
    evaluator of the same Q/DQ graph (which follows the spec, with int32 accumulation)."""
    from onnx.reference import ReferenceEvaluator

    model = attention_model()
    index, table, _ = prepared(model, (1, 16, 8))
    plan = detect_plan(index)
    q = quantize(model, table, plan.int8_excluded(), "trt").model
    x = np.random.default_rng(3).standard_normal((2, 16, 8)).astype(np.float32)
    spec = onnx.ModelProto()
    spec.CopyFrom(q)
    spec.opset_import[0].version = 19  # the evaluator implements Q/DQ from opset 19 (same int8 semantics as 13)
    expected = ReferenceEvaluator(spec).run(None, {"x": x})[0]
    fq = fake_quant(q)
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in fq.graph.node)
    got = session(q).run(None, {"x": x})[0]  # the check session picks fake-quant for a TensorRT-layout graph
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert cpu_form(q).description.startswith("exact fake-quant")
