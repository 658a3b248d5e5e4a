"""Attention as one ONNX node (opset 23): export forms, the precision plan on fused graphs, the op report."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from attnx.core.errors import UserError
from attnx.exporters import attention_form as af
from attnx.exporters.export import ExportOptions, export_onnx
from attnx.exporters.registry import zoo

TRANSFORMERS = ("vit_tiny", "rest", "mobilevitv2")
# Attention nodes a fused export holds: ResT's EMSA with head interaction (Conv1x1 on the logits, IN on the
# probabilities) is not softmax attention; only its single-head stage fuses.
ATTENTION_NODES = {"vit_tiny": 4, "rest": 1, "mobilevitv2": 3}


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_fused_zoo_export_matches_torch_on_ort_and_openvino(name, tmp_path):
    import onnxruntime as ort
    import openvino as ov

    entry = zoo()[name]
    model = entry.build().eval()
    x = torch.randn(2, *entry.sample_shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x).numpy()
    options = ExportOptions(input_shape=(2, *entry.sample_shape), dynamic_batch=False, opset=23, attention="fused")
    result = export_onnx(model, tmp_path / "m.onnx", options, model_label=name)  # parity-checked on ORT
    proto = onnx.load(str(result.path))
    assert af.count_fused(proto)["Attention"] == ATTENTION_NODES[name]
    assert any(n.startswith("attention form fused") for n in result.notes)
    assert {p.key: p.value for p in proto.metadata_props}["attnx.attention"] == "fused"
    with torch.no_grad():  # eager numerics unchanged: the SDPA path is taken only while exporting
        assert torch.equal(model(x), torch.from_numpy(ref))
    y_ort = ort.InferenceSession(str(result.path)).run(None, {"input": x.numpy()})[0]
    y_ov = ov.Core().compile_model(str(result.path), "CPU")({"input": x.numpy()})[0]
    assert np.abs(y_ort - ref).max() < 1e-4 and np.abs(y_ov - ref).max() < 1e-4


class _Blocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
        self.qkv = nn.Linear(16, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).reshape(x.shape[0], -1, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)
        return self.mha(y, y, y)[0]  # the weights (need_weights=True by default) are discarded


@pytest.mark.parametrize("form, exporter, n_attention", [("fused", "auto", 2), ("decomposed", "dynamo", 0)])
def test_sdpa_and_multihead_attention_follow_the_form(form, exporter, n_attention, tmp_path):
    model = _Blocks().eval()
    options = ExportOptions(input_shape=(2, 5, 16), dynamic_batch=False, opset=23, attention=form, exporter=exporter)
    result = export_onnx(model, tmp_path / "m.onnx", options)
    counts = af.count_fused(onnx.load(str(result.path)))
    assert counts["Attention"] == n_attention and result.exporter == "dynamo"


def test_form_choice_by_target_and_opset():
    assert af.choose_form("auto", 23, "trt10")[0] == "fused"
    assert af.choose_form("auto", 23, "trt11")[0] == "fused"
    assert af.choose_form("auto", 23, "ort")[0] == "fused"
    assert af.choose_form("auto", 23, "openvino")[0] == "fused"
    form, why = af.choose_form("auto", 23, "trt10.12")
    assert form == "decomposed" and "10.14" in why
    assert af.choose_form("auto", 23, "trt8.6")[0] == "decomposed"
    assert af.choose_form("auto", 17, "trt10")[0] == "decomposed"
    assert af.choose_form("auto", 23, "ort", frozenset({"GridSample"}))[0] == "decomposed"
    with pytest.raises(UserError, match="--opset 23"):
        af.choose_form("fused", 17, "ort")
    with pytest.raises(UserError, match="TorchScript"):
        af.choose_form("fused", 23, "ort", exporter="torchscript")
    with pytest.raises(UserError, match="unknown --attention"):
        af.choose_form("flash", 23, "ort")
    with pytest.raises(UserError, match="opset 24 is not supported"):
        ExportOptions(input_shape=(1, 3, 8, 8), opset=24).validate()


def _fused_graph(softcap: float = 0.0) -> onnx.ModelProto:
    """x → MatMul(W) → Reshape (B, 2, 4, 8) → Attention(q, q, q) → LayerNormalization → RMSNormalization."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32) * 0.3, "w"),
        numpy_helper.from_array(np.array([1, 4, 2, 8], np.int64), "shape4"),
        numpy_helper.from_array(np.array([1, 4, 16], np.int64), "shape3"),
        numpy_helper.from_array(np.ones(16, np.float32), "g"),
        numpy_helper.from_array(np.zeros(16, np.float32), "b"),
    ]
    attrs = {"softcap": softcap} if softcap else {}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["p"], name="proj"),
             helper.make_node("Reshape", ["p", "shape4"], ["p4"], name="split_heads"),
             helper.make_node("Transpose", ["p4"], ["q"], perm=[0, 2, 1, 3], name="heads_first"),
             helper.make_node("Attention", ["q", "q", "q"], ["a"], name="attn", **attrs),
             helper.make_node("Transpose", ["a"], ["at"], perm=[0, 2, 1, 3], name="merge"),
             helper.make_node("Reshape", ["at", "shape3"], ["a3"], name="merge_heads"),
             helper.make_node("LayerNormalization", ["a3", "g", "b"], ["ln"], name="ln", axis=-1),
             helper.make_node("RMSNormalization", ["ln", "g"], ["y"], name="rms", axis=-1)]  # fmt: skip
    graph = helper.make_graph(nodes, "fused", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16])], inits)  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)


def test_plan_keeps_softmax_inside_attention_fp32_and_never_quantizes_it():
    import onnxruntime as ort

    from attnx.calibration.fp16 import mark_softmax_precision, to_fp16
    from attnx.calibration.graph import GraphIndex
    from attnx.calibration.plan import detect

    model = _fused_graph()
    plan = detect(GraphIndex.build(model, {"x": (1, 4, 16)}))
    attn = plan.decisions["attn"]
    assert attn.categories == ["fused_attention"] and not attn.keep_fp32 and attn.exclude_int8
    assert "softmax_precision=FLOAT" in attn.reasons[0] and "never quantized" in attn.reasons[0]
    assert "attn" in plan.entries(int8=True) and "attn" not in plan.entries(int8=False)
    for norm in ("ln", "rms"):
        assert plan.decisions[norm].keep_fp32 and "statistics" in plan.decisions[norm].reasons[0]
    assert "proj" not in plan.decisions  # the projection around the node is quantized / converted
    fp16, _ = to_fp16(model, plan.keep_fp32())
    marked = mark_softmax_precision(fp16, {"attn": attn.reasons[0]})
    assert marked["attn"]["softmax_precision"] == "FLOAT"
    node = next(n for n in fp16.graph.node if n.op_type == "Attention")
    assert helper.get_attribute_value(next(a for a in node.attribute if a.name == "softmax_precision")) == 1
    x = np.random.default_rng(1).standard_normal((1, 4, 16)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    got = ort.InferenceSession(fp16.SerializeToString()).run(None, {"x": x})[0]
    assert np.abs(got - ref).max() < 2e-2


def test_op_report_knows_attention_per_target_version_and_attribute():
    from attnx.exporters.report import op_report

    model = _fused_graph()
    rows = {t: {r.op_type: r for r in op_report(model, t).ops} for t in ("ort", "trt8.6", "trt10", "trt11")}
    assert rows["ort"]["Attention"].status == "ok" and rows["ort"]["RMSNormalization"].status == "ok"
    assert rows["trt10"]["Attention"].status == "restricted" and "10.14" in rows["trt10"]["Attention"].note
    assert rows["trt11"]["Attention"].status == "restricted"
    assert rows["trt10"]["RMSNormalization"].status == "ok"
    assert rows["trt8.6"]["Attention"].status == "unsupported"  # opset 23 is beyond 8.6's parser anyway
    capped = {r.op_type: r for r in op_report(_fused_graph(softcap=30.0), "trt10").ops}
    assert capped["Attention"].status == "unsupported" and "softcap" in capped["Attention"].note
    assert af.op_imports("Attention", "trt10.13")[0] is False and af.op_imports("Attention", "trt10.14")[0]
    assert af.op_imports("RMSNormalization", "trt10.14")[0] is False
    assert af.op_imports("Attention", "ort1.22")[0] is False and af.op_imports("Attention", "ort1.23")[0]
    assert af.op_imports("Attention", "openvino")[0]
