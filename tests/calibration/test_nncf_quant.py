"""attnx.calibration.nncf_quant: OpenVINO INT8 by NNCF with the attention-aware plan as ignored scope."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest

from attnx.core.errors import UserError

openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")

# held-out digits cosine against OpenVINO fp32 (measured 0.9998 for se_resnet, 0.9993 for vit_tiny with 16 images)
MIN_COSINE_CNN = 0.999
MIN_COSINE_VIT = 0.995
INT16_MAX = 32767


def _nncf() -> None:
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install nncf)")


def _prepare(path, count: int = 16, eval_count: int = 8):
    from attnx.calibration.config import CalibrationConfig
    from attnx.calibration.data import load_split
    from attnx.calibration.graph import graph_inputs, name_nodes
    from attnx.calibration.nncf_quant import float_plan

    model = onnx.load(str(path))
    name_nodes(model)
    cfg = CalibrationConfig.from_dict({"count": count, "eval_count": eval_count, "source": "digits"})
    calib, held = load_split(graph_inputs(model), cfg)
    ignored, transformer = float_plan(model, calib.input_shapes(), cfg)
    return model, calib, held, ignored, transformer


def _outputs(model, arrays: dict[str, np.ndarray]) -> np.ndarray:
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    ((name, x),) = arrays.items()
    return np.concatenate([np.asarray(request.infer({name: x[i : i + 1]})[compiled.output(0)]) for i in range(len(x))])


def _cosine(path, quantized, held) -> float:
    from attnx.calibration.evaluate import agreement

    ref = _outputs(openvino.Core().read_model(str(path)), held.arrays)
    return agreement({"y": ref}, {"y": _outputs(quantized, held.arrays)}).min_cosine


_THROUGH = {"Convert", "Subtract", "Multiply", "Reshape"}  # NNCF's compressed-weight chain: i8 → f32 → −zp → ×scale


def _quantized_inputs(op) -> list[int]:
    """Input ports of ``op`` fed by a FakeQuantize or by an int8 weight constant (through its decompression)."""
    found = []
    for i in range(op.get_input_size()):
        stack, depth = [(op.input(i).get_source_output().get_node(), 0)], 0
        while stack:
            node, depth = stack.pop()
            kind = node.get_type_name()
            if kind == "FakeQuantize" or (
                kind == "Constant" and node.get_element_type().get_type_name() in ("i8", "u8")
            ):
                found.append(i)
                break
            if kind in _THROUGH and depth < 3:
                stack.extend(
                    (node.input(j).get_source_output().get_node(), depth + 1) for j in range(node.get_input_size())
                )
    return found


def _int8_weights(model) -> list[np.ndarray]:
    return [op.get_data() for op in model.get_ordered_ops()
            if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8"]  # fmt: skip


def test_missing_nncf_is_one_user_error(monkeypatch, tmp_path):
    from attnx.calibration.nncf_quant import quantize_openvino

    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf → ImportError
    with pytest.raises(UserError, match="pip install nncf"):
        quantize_openvino(tmp_path / "model.onnx", {}, [])


def test_ignored_onnx_nodes_map_to_every_openvino_op_of_their_decomposition(zoo_onnx):
    from attnx.calibration.graph import name_nodes
    from attnx.calibration.nncf_quant import map_ignored

    path = zoo_onnx("se_resnet")
    model = onnx.load(str(path))
    name_nodes(model)
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv")  # Conv + bias → Convolution + Add
    ov_names, matched, unmatched = map_ignored(openvino.Core().read_model(str(path)), model, [conv, "no/such/node"])
    assert {conv, f"{conv}/WithoutBiases"} <= set(ov_names)
    assert matched == [conv] and unmatched == ["no/such/node"]


def test_se_resnet_int8_keeps_the_plan_float_and_tracks_fp32(zoo_onnx):
    _nncf()
    from attnx.calibration.nncf_quant import quantize_openvino

    path = zoo_onnx("se_resnet")
    model, calib, held, ignored, transformer = _prepare(path)
    assert ignored and not transformer  # the SE gates; no attention
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][:2]  # and two convolutions, by choice
    quantized, info = quantize_openvino(path, calib.arrays, [*ignored, *convs], transformer, False, 16)

    assert info["model_type"] == "default" and info["overflow_fix"] == "disable" and info["subset_size"] == 16
    assert info["ignored"]["matched"] == len(ignored) + 2 and not info["ignored"]["unmatched"]
    assert info["fake_quantize"] > 0 and info["nncf"]
    ops = {op.get_friendly_name(): op for op in quantized.get_ordered_ops()}
    assert any(_quantized_inputs(op) for op in ops.values() if op.get_type_name() == "Convolution")
    kept = [ops[n] for n in ignored if n in ops] + [ops[f"{c}/WithoutBiases"] for c in convs]
    assert kept and not [op.get_friendly_name() for op in kept if _quantized_inputs(op)]
    assert _cosine(path, quantized, held) >= MIN_COSINE_CNN


def test_saturation_safe_weights_cannot_saturate_an_int16_pair_sum(zoo_onnx):
    """VPMADDUBSW (x86 without VNNI) adds two u8×s8 products in int16: 255·(|w₁|+|w₂|) must stay ≤ 32767."""
    _nncf()
    from attnx.calibration.nncf_quant import quantize_openvino

    path = zoo_onnx("se_resnet")
    _, calib, _, ignored, _ = _prepare(path, count=4, eval_count=1)
    safe, info = quantize_openvino(path, calib.arrays, ignored, saturation_safe=True)
    assert info["overflow_fix"] == "enable" and info["saturation_safe"]
    weights = _int8_weights(safe)
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) * 2 * 255 <= INT16_MAX
    full, _ = quantize_openvino(path, calib.arrays, ignored, saturation_safe=False)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in _int8_weights(full)) * 2 * 255 > INT16_MAX


@pytest.mark.slow
def test_vit_int8_is_a_transformer_with_attention_float(zoo_onnx):
    _nncf()
    from attnx.calibration.nncf_quant import quantize_openvino

    path = zoo_onnx("vit_tiny")
    model, calib, held, ignored, transformer = _prepare(path)
    assert transformer
    quantized, info = quantize_openvino(path, calib.arrays, ignored, transformer, True)
    assert info["model_type"] == "transformer" and info["overflow_fix"] == "enable"
    assert info["ignored"]["matched"] == len(ignored)
    ops = {op.get_friendly_name(): op for op in quantized.get_ordered_ops()}
    softmax = [n.name for n in model.graph.node if n.op_type == "Softmax"]
    assert softmax and set(softmax) <= set(ignored)
    kept = [ops[n] for n in ignored if n in ops]
    assert not [op.get_friendly_name() for op in kept if _quantized_inputs(op)]
    assert any(_quantized_inputs(op) for op in ops.values() if op.get_type_name() == "MatMul")
    assert _cosine(path, quantized, held) >= MIN_COSINE_VIT
