"""Plan detection: which nodes stay float, and why, on every zoo model and on hand-built patterns."""

from collections import Counter, defaultdict

import numpy as np
import onnx
import pytest
from onnx import helper

from attnx.calibration.graph import GraphIndex, name_nodes
from attnx.calibration.plan import CATEGORIES, detect, pin_fp16_range, reduced_extent
from attnx.core.errors import UserError
from tests.calibration.conftest import attention_model, const, make_model, tensor

# What each tiny zoo model must pin: headline category → op type → count. Derived from the architectures:
# SE/ECA/CBAM/BAM/CA/SCConv gate feature maps with sigmoids (SiLU activations are not gates); PSA weights
# branches by a softmax; DANet and EA are softmax attention (EA with double normalisation); ViT and ResT
# are transformers (ResT adds a 1×1 head-mixing conv and an instance norm after its softmax, and a sigmoid
# pixel-attention gate); MobileViTv2 is separable attention; the STN samples on a computed affine grid.
# At 64×64 the first ResNet stage is 32×32 = 1024 elements: its global pooling is a large reduction.
EXPECTED = {
    "se_resnet": {"large_reduction": {"ReduceMean": 1}, "sigmoid_gate": {"Sigmoid": 4, "Unsqueeze": 4, "Mul": 4}},
    "eca_resnet": {"large_reduction": {"ReduceMean": 1},
                   "sigmoid_gate": {"Sigmoid": 4, "Squeeze": 4, "Unsqueeze": 4, "Mul": 4}},
    "cbam_resnet": {"large_reduction": {"ReduceMean": 1}, "sigmoid_gate": {"Sigmoid": 8, "Unsqueeze": 4, "Mul": 8}},
    "bam_resnet": {"large_reduction": {"ReduceMean": 1}, "sigmoid_gate": {"Sigmoid": 3, "Mul": 3}},
    "ca_resnet": {"sigmoid_gate": {"Sigmoid": 8, "Mul": 8}},
    "ca_c2f_neck": {"sigmoid_gate": {"Sigmoid": 8, "Mul": 8}},
    "scconv_resnet": {"sigmoid_gate": {"Sigmoid": 4, "Mul": 4}},
    "psa_resnet": {"attention_path": {"Mul": 16, "Gather": 16}, "large_reduction": {"ReduceMean": 4},
                   "softmax": {"Softmax": 4}},
    "danet_seg": {"attention_matmul": {"MatMul": 4}, "attention_path": {"Transpose": 1, "Sub": 1, "ReduceMax": 1},
                  "softmax": {"Softmax": 2}},
    "ea_seg": {"attention_matmul": {"MatMul": 2}, "double_norm": {"ReduceSum": 1, "Div": 1, "Add": 1},
               "softmax": {"Softmax": 1}},
    "vit_tiny": {"attention_matmul": {"MatMul": 8}, "attention_path": {"Mul": 4}, "norm_input": {"Add": 9},
                 "normalization": {"LayerNormalization": 9}, "softmax": {"Softmax": 4}},
    "mobilevitv2": {"attention_path": {"ReduceSum": 3, "Mul": 3}, "norm_input": {"Add": 6},
                    "normalization": {"InstanceNormalization": 8}, "softmax": {"Softmax": 3}},
    "rest": {"attention_matmul": {"MatMul": 8},
             "attention_path": {"Mul": 7, "Conv": 3, "ReduceMean": 6, "Sub": 3, "Add": 3, "Sqrt": 3, "Div": 3},
             "norm_input": {"Add": 5}, "normalization": {"LayerNormalization": 12},
             "sigmoid_gate": {"Sigmoid": 4, "Mul": 4}, "softmax": {"Softmax": 4}},
    "stn_classifier": {"sampling": {"GridSample": 1, "Reshape": 1, "MatMul": 1}},
}  # fmt: skip


def plan_of(model: onnx.ModelProto, shape=None, **kw):
    name_nodes(model)
    inp = model.graph.input[0]
    shape = shape or tuple(d.dim_value or 1 for d in inp.type.tensor_type.shape.dim)
    index = GraphIndex.build(model, {inp.name: shape})
    return detect(index, **kw), index


def summary(plan) -> dict:
    out: dict = defaultdict(Counter)
    for d in plan.decisions.values():
        out[d.categories[0]][d.op] += 1
    return {k: dict(v) for k, v in out.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_zoo_plan(zoo_onnx, name):
    plan, index = plan_of(onnx.load(str(zoo_onnx(name))))
    assert summary(plan) == EXPECTED[name]
    for d in plan.decisions.values():
        assert d.reasons and all(r.split(":", 1)[0] in CATEGORIES for r in d.reasons)
    # FP16 keeps every structural pin in FP32; INT8 leaves them unquantized except large reductions
    assert set(plan.keep_fp32()) == {n for n, d in plan.decisions.items() if d.categories != ["norm_input"]}
    assert not any(d.categories == ["large_reduction"] for d in map(plan.decisions.get, plan.int8_excluded()))
    # no SiLU (x * sigmoid(x)) is ever mistaken for a gate
    for n, d in plan.decisions.items():
        if d.op == "Mul" and "sigmoid_gate" in d.categories:
            mul = index.nodes[n]
            for t in mul.input:
                src = index.producer.get(t)
                assert src is None or src.op_type != "Sigmoid" or src.input[0] not in mul.input


def test_silu_is_an_activation_not_a_gate():
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"], name="silu_sig"),
        helper.make_node("Mul", ["x", "s"], ["a"], name="silu_mul"),
        helper.make_node("Relu", ["a"], ["g_in"], name="relu"),
        helper.make_node("Sigmoid", ["g_in"], ["g"], name="gate_sig"),
        helper.make_node("Mul", ["a", "g"], ["y"], name="gate_mul"),
    ]
    plan, _ = plan_of(make_model(nodes, [tensor("x", [1, 4])], [tensor("y", [1, 4])]))
    assert set(plan.decisions) == {"gate_sig", "gate_mul"}


def test_attention_block_pins_softmax_and_its_matmuls_not_the_projections():
    plan, _ = plan_of(attention_model())
    cats = {n: d.categories[0] for n, d in plan.decisions.items()}
    assert cats == {"softmax": "softmax", "qk": "attention_matmul", "av": "attention_matmul",
                    "scale_mul": "attention_path"}  # fmt: skip
    assert "scale" not in plan.decisions["scale_mul"].reasons[0] or "qk" in plan.decisions["scale_mul"].reasons[0]


def test_decomposed_layernorm_and_its_residual_input():
    nodes = [
        helper.make_node("Add", ["x", "r"], ["s"], name="residual"),
        helper.make_node("ReduceMean", ["s"], ["mu"], axes=[-1], name="mean"),
        helper.make_node("Sub", ["s", "mu"], ["d"], name="sub"),
        helper.make_node("Pow", ["d", "two"], ["d2"], name="pow"),
        helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1], name="var"),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="eps_add"),
        helper.make_node("Sqrt", ["ve"], ["sd"], name="sqrt"),
        helper.make_node("Div", ["d", "sd"], ["y"], name="div"),
    ]
    model = make_model(nodes, [tensor("x", [1, 4, 8]), tensor("r", [1, 4, 8])], [tensor("y", [1, 4, 8])],
                       [const("two", 2.0), const("eps", 1e-5)], opset=17)  # fmt: skip
    plan, _ = plan_of(model)
    norm = {n for n, d in plan.decisions.items() if "normalization" in d.categories}
    assert norm == {"mean", "sub", "pow", "var", "eps_add", "sqrt", "div"}
    assert plan.decisions["residual"].categories == ["norm_input"]
    assert "residual" not in plan.keep_fp32() and "residual" in plan.int8_excluded()


def test_large_reductions_by_extent_and_unknown_extent():
    nodes = [
        helper.make_node("ReduceSum", ["x", "ax_hw"], ["big"], keepdims=1, name="sum_hw"),
        helper.make_node("ReduceSum", ["x", "ax_c"], ["small"], keepdims=1, name="sum_c"),
        helper.make_node("GlobalAveragePool", ["x"], ["gap"], name="gap"),
    ]
    inits = [onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "ax_hw"),
             onnx.numpy_helper.from_array(np.array([1], np.int64), "ax_c")]  # fmt: skip
    outs = [tensor("big", ["n", 4, 1, 1]), tensor("small", ["n", 1, "h", "w"]), tensor("gap", ["n", 4, 1, 1])]
    model = make_model(nodes, [tensor("x", ["n", 4, "h", "w"])], outs, inits)
    plan, index = plan_of(model, shape=(1, 4, 32, 32), reduce_extent=1024)
    assert reduced_extent(index, index.nodes["sum_hw"]) == 1024 and reduced_extent(index, index.nodes["sum_c"]) == 4
    assert set(plan.decisions) == {"sum_hw", "gap"}
    plan_small, _ = plan_of(model, shape=(1, 4, 8, 8), reduce_extent=1024)
    assert not plan_small.decisions
    unknown = detect(GraphIndex.build(model, {}))  # H and W unknown at plan time: assume large
    assert set(unknown.decisions) == {"sum_hw", "gap"}
    assert "unknown" in unknown.decisions["sum_hw"].reasons[0]


def test_custom_double_norm_node_is_kept_float():
    nodes = [helper.make_node("DoubleNorm", ["x"], ["y"], domain="attnx", name="dn")]
    model = make_model(nodes, [tensor("x", [1, 8, 16])], [tensor("y", [1, 8, 16])], domains=("attnx",))
    plan, _ = plan_of(model)
    assert plan.decisions["dn"].categories == ["double_norm"] and "attnx::DoubleNorm" in plan.decisions["dn"].reasons[0]


def test_user_exclusions_are_checked():
    model = attention_model()
    plan, _ = plan_of(model, user_exclude=["q_proj"])
    assert plan.decisions["q_proj"].categories == ["user"]
    with pytest.raises(UserError, match="does not have; did you mean q_proj"):
        plan_of(attention_model(), user_exclude=["q_prj"])


def test_fp16_range_pins_producer_and_consumers():
    plan, index = plan_of(attention_model())
    big = pin_fp16_range(index, plan, {"logits": 1e6, "q": 3.0}, limit=16384)
    assert big == ["logits"]
    assert "fp16_range" in plan.decisions["qk"].categories and "fp16_range" in plan.decisions["scale_mul"].categories
    assert "q_proj" not in plan.decisions
