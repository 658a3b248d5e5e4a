"""Both INT8 layouts from one table: TensorRT style (symmetric, inputs only) and ORT style (u8/s8)."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from attnx.calibration.data import CalibrationData
from attnx.calibration.graph import GraphIndex, graph_sha256, name_nodes, session
from attnx.calibration.plan import detect
from attnx.calibration.precision import float_input_nodes
from attnx.calibration.qdq import quantize
from attnx.calibration.table import cached_or_collect
from attnx.core.errors import UserError
from tests.calibration.conftest import attention_model, const, make_model, tensor


def conv_model(seed: int = 0) -> onnx.ModelProto:
    """conv → relu → conv → sigmoid-gated → global pool → gemm: a tiny gated CNN."""
    rng = np.random.default_rng(seed)
    inits = [
        const("w1", rng.standard_normal((8, 3, 3, 3)) * 0.3), const("b1", rng.standard_normal(8) * 0.1),
        const("w2", rng.standard_normal((8, 8, 3, 3)) * 0.2), const("b2", rng.standard_normal(8) * 0.1),
        const("wg", rng.standard_normal((8, 8, 1, 1)) * 0.3),
        const("fc", rng.standard_normal((5, 8)) * 0.5), const("fcb", np.zeros(5)),
    ]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Conv", ["c2", "wg"], ["gl"], name="gate_conv"),
        helper.make_node("Sigmoid", ["gl"], ["g"], name="gate"),
        helper.make_node("Mul", ["c2", "g"], ["gated"], name="gate_mul"),
        helper.make_node("GlobalAveragePool", ["gated"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1, name="fc"),
    ]
    return make_model(nodes, [tensor("x", ["n", 3, 12, 12])], [tensor("y", ["n", 5])], inits)


def prepared(model, shape, seed=0):
    name_nodes(model)
    index = GraphIndex.build(model, {model.graph.input[0].name: shape})
    x = np.random.default_rng(seed).standard_normal((16, *shape[1:])).astype(np.float32)
    data = CalibrationData({model.graph.input[0].name: x}, "test", synthetic=True)
    table, _, _ = cached_or_collect(model, index, data, "minmax", None, graph_sha256(model), None, 8)
    return index, table, x


def producers(model):
    return {t: n for n in model.graph.node for t in n.output}


def cosine(a, b):
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


def test_trt_layout_symmetric_int8_on_inputs_with_per_channel_weights():
    model = conv_model()
    index, table, x = prepared(model, (1, 3, 12, 12))
    plan = detect(index)
    result = quantize(model, table, plan.int8_excluded(), "trt")
    q = result.model
    assert result.quantized == ["conv1", "conv2", "gate_conv", "pool", "fc"]
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    prod = producers(q)
    for node in q.graph.node:
        if node.op_type == "QuantizeLinear":
            assert inits[node.input[2]].dtype == np.int8 and inits[node.input[2]] == 0  # symmetric s8
            r = table.ranges[node.input[0]]
            assert inits[node.input[1]] == pytest.approx(r.amax / 127, rel=1e-6)
    # Q/DQ only in front of the quantized ops: nothing downstream of them is quantized
    for node in q.graph.node:
        if node.op_type == "DequantizeLinear":
            consumers = [n for n in q.graph.node if node.output[0] in n.input]
            assert all(c.op_type in ("Conv", "Gemm", "GlobalAveragePool") for c in consumers), consumers
    conv1 = next(n for n in q.graph.node if n.name == "conv1")
    wdq = prod[conv1.input[1]]
    assert wdq.op_type == "DequantizeLinear" and next(a.i for a in wdq.attribute if a.name == "axis") == 0
    assert inits[wdq.input[0]].dtype == np.int8 and inits[wdq.input[1]].shape == (8,)
    assert "w1" not in inits and inits["b1"].dtype == np.float32  # weight replaced, bias left float
    fc = next(n for n in q.graph.node if n.name == "fc")
    assert next(a.i for a in prod[fc.input[1]].attribute if a.name == "axis") == 0  # transB=1: rows are outputs
    for name in ("gate", "gate_mul"):
        node = next(n for n in q.graph.node if n.name == name)
        assert all(t not in prod or prod[t].op_type != "DequantizeLinear" for t in node.input)
    ref, out = session(model).run(None, {"x": x})[0], session(q).run(None, {"x": x})[0]
    assert cosine(ref, out) > 0.99 and not np.array_equal(ref, out)
    assert q.ir_version <= 10
    onnx.checker.check_model(q)


def test_ort_layout_u8_activations_s8_weights_and_float_islands():
    model = conv_model()
    index, table, x = prepared(model, (1, 3, 12, 12))
    plan = detect(index)
    result = quantize(model, table, plan.int8_excluded(), "ort")
    q = result.model
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    zps = [inits[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.dtype == np.uint8 for z in zps)  # asymmetric u8 activations
    w_dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None]
    assert w_dq and all(inits[n.input[0]].dtype in (np.int8, np.int32) for n in w_dq)  # s8 weights, s32 biases
    assert {"conv1", "conv2", "fc"} <= set(result.quantized)
    assert "gate" not in result.quantized and "gate_mul" not in result.quantized
    ref, out = session(model).run(None, {"x": x})[0], session(q).run(None, {"x": x})[0]
    assert cosine(ref, out) > 0.99 and q.ir_version <= 10


@pytest.mark.parametrize("style", ["ort", "trt"])
def test_softmax_probabilities_are_never_quantized(style):
    model = attention_model()
    index, table, x = prepared(model, (1, 16, 8))
    plan = detect(index)
    q = quantize(model, table, plan.int8_excluded(), style, sorted(float_input_nodes(plan))).model
    prod = producers(q)
    by_name = {n.name: n for n in q.graph.node}
    for name in ("softmax", "qk", "av"):  # logits, probabilities and both attention MatMuls stay float
        for t in by_name[name].input:
            assert t not in prod or prod[t].op_type != "DequantizeLinear", (style, name, t)
    probs = by_name["softmax"].output[0]
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == probs for n in q.graph.node)
    assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)  # the projections are quantized
    ref, out = session(model).run(None, {"x": x})[0], session(q).run(None, {"x": x})[0]
    assert cosine(ref, out) > 0.99


def test_quantizing_softmax_outputs_is_what_the_plan_prevents():
    """Control: with the plan's exclusions dropped, ORT quantizes the probabilities ([0, 1] in u8)."""
    model = attention_model()
    _, table, x = prepared(model, (1, 16, 8))
    q = quantize(model, table, [], "ort").model
    probs = next(n for n in model.graph.node if n.name == "softmax").output[0]
    assert any(n.op_type == "QuantizeLinear" and n.input[0] == probs for n in q.graph.node)


def test_old_opset_and_unknown_style_are_user_errors():
    model = conv_model()
    _, table, _ = prepared(model, (1, 3, 12, 12))
    with pytest.raises(UserError, match="unknown Q/DQ style 'tensorrt'"):
        quantize(model, table, [], "tensorrt")
    model.opset_import[0].version = 11
    with pytest.raises(UserError, match="INT8 needs opset ≥ 13"):
        quantize(model, table, [], "trt")


def test_spatial_means_become_pools_with_the_same_values():
    from attnx.calibration.qdq import spatial_means_as_pools

    nodes = [
        helper.make_node("ReduceMean", ["x"], ["gap"], axes=[2, 3], keepdims=1, name="gap"),
        helper.make_node("ReduceMean", ["x"], ["gap0"], axes=[-1, -2], keepdims=0, name="gap_flat"),
        helper.make_node("ReduceMean", ["x"], ["row"], axes=[3], keepdims=1, name="along_w"),
        helper.make_node("ReduceMean", ["x"], ["col"], axes=[2], keepdims=0, name="along_h"),
        helper.make_node("ReduceMean", ["x"], ["chan"], axes=[1], keepdims=1, name="over_c"),
    ]
    shapes = {"gap": [2, 4, 1, 1], "gap0": [2, 4], "row": [2, 4, 6, 1], "col": [2, 4, 10], "chan": [2, 1, 6, 10]}
    outs = [tensor(name, shape) for name, shape in shapes.items()]
    model = make_model(nodes, [tensor("x", [2, 4, 6, 10])], outs)
    pooled, aliases = spatial_means_as_pools(model)
    ops = {n.name: n.op_type for n in pooled.graph.node}
    assert ops["gap"] == ops["gap_flat"] == "GlobalAveragePool" and ops["over_c"] == "ReduceMean"
    assert ops["along_w"] == ops["along_h"] == "AveragePool" and ops["along_h__squeeze"] == "Squeeze"
    assert aliases["gap"] == "gap" and aliases["gap0__pooled"] == "gap0"
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 10)).astype(np.float32)
    for a, b in zip(session(model).run(None, {"x": x}), session(pooled).run(None, {"x": x})):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-6)
    dynamic = make_model(nodes[2:3], [tensor("x", ["n", 4, "h", "w"])], [tensor("row", ["n", 4, "h", 1])])
    assert spatial_means_as_pools(dynamic)[1] == {}  # a kernel cannot follow a dynamic width


def test_grouped_convs_stay_float_for_ort_depthwise_does_not():
    """The conservative rule (``kernel_timing=false``); the measured one is in test_kernel_timing.py."""
    from attnx.calibration.plan import ort_slow_kernels

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "wg"], ["g"], group=2, pads=[1, 1, 1, 1], name="grouped"),
        helper.make_node("Conv", ["g", "wd"], ["y"], group=8, pads=[1, 1, 1, 1], name="depthwise"),
    ]
    inits = [const("wg", rng.standard_normal((8, 4, 3, 3))), const("wd", rng.standard_normal((8, 1, 3, 3)))]
    model = make_model(nodes, [tensor("x", ["n", 8, 6, 6])], [tensor("y", ["n", 8, 6, 6])], inits)
    index, _, _ = prepared(model, (1, 8, 6, 6))
    plan = detect(index)
    assert ort_slow_kernels(index, plan, measure=False) == ["grouped"]
    assert plan.decisions["grouped"].categories == ["ort_kernel"] and "grouped" not in plan.keep_fp32()


def test_float_inputs_are_never_pre_activation_values():
    """ORT folds a Relu into its Q range and hands the Relu's output name to the pre-activation tensor:
    restoring "the float input" of a node after that Relu must not feed it negative values."""
    model = conv_model()
    _, table, x = prepared(model, (1, 3, 12, 12))
    ref = session(model).run(None, {"x": x})[0]
    plain = quantize(model, table, ["conv2"], "ort").model
    restored = quantize(model, table, ["conv2"], "ort", ["conv2"]).model
    a, b = session(plain).run(None, {"x": x})[0], session(restored).run(None, {"x": x})[0]
    assert cosine(ref, b) > 0.99 and cosine(ref, b) >= cosine(ref, a) - 1e-3


def _group_norm_conv(untyped_duplicate: bool) -> onnx.ModelProto:
    """GroupNormalization-21 (onnx infers no type for it) → Conv with a bias, as the dynamo exporter writes."""
    rng = np.random.default_rng(0)
    inits = [const("s", np.ones(4)), const("b", np.zeros(4)), const("w", rng.standard_normal((4, 4, 1, 1)) * 0.3),
             const("wb", rng.standard_normal(4) * 0.1)]  # fmt: skip
    nodes = [helper.make_node("Conv", ["x", "w", "wb"], ["c0"], name="conv0"),
             helper.make_node("GroupNormalization", ["c0", "s", "b"], ["gn"], num_groups=2, name="gn"),
             helper.make_node("Conv", ["gn", "w", "wb"], ["y"], name="conv1")]  # fmt: skip
    model = make_model(nodes, [tensor("x", ["n", 4, 6, 6])], [tensor("y", ["n", 4, 6, 6])], inits, opset=23)
    model = onnx.shape_inference.infer_shapes(model)
    if untyped_duplicate:  # what the fused mobilevitv2 export holds: a typed entry, then an untyped one
        model.graph.value_info.append(tensor("gn", ["n", 4, 6, 6]))
        model.graph.value_info.append(onnx.ValueInfoProto(name="gn"))
    return model


@pytest.mark.parametrize("untyped_duplicate", [False, True])
def test_ort_layout_quantizes_around_group_normalization(untyped_duplicate):
    model = _group_norm_conv(untyped_duplicate)
    index, table, x = prepared(model, (1, 4, 6, 6))
    assert "gn" in table.ranges
    plan = detect(index)
    assert plan.decisions["gn"].categories[0] == "normalization"
    result = quantize(model, table, plan.int8_excluded(), "ort", sorted(float_input_nodes(plan)))
    assert {"conv0", "conv1"} <= set(result.quantized) and "gn" not in result.quantized
    ref = session(model).run(None, {"x": x[:1]})[0]
    assert cosine(ref, session(result.model).run(None, {"x": x[:1]})[0]) > 0.99


def test_ort_layout_leaves_float_a_node_whose_tensor_has_no_range():
    model = _group_norm_conv(False)
    index, table, x = prepared(model, (1, 4, 6, 6))
    del table.ranges["gn"]  # e.g. empty on the calibration data
    plan = detect(index)
    result = quantize(model, table, plan.int8_excluded(), "ort", sorted(float_input_nodes(plan)))
    assert "conv1" not in result.quantized and "conv0" in result.quantized
    assert any("no calibrated range" in n for n in result.notes)
