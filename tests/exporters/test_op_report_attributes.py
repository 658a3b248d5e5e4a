"""The op report reads attributes (issue 14, kind 6): each node judged per target, the attribute named."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from attnx.exporters.report import op_report
from attnx.exporters.trt_support import einsum_features


def _model(nodes, inputs, opset=17, inits=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)], list(inits),
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def _row(model, target, op):
    return next(r for r in op_report(model, target).ops if r.op_type == op)


def _einsum(eq):
    return _model([helper.make_node("Einsum", ["a", "b"], ["y"], equation=eq, name="attn_scores")],
                  [("a", [2, 4, 8, 16]), ("b", [2, 4, 8, 16])])  # fmt: skip


def test_einsum_equation_features():
    assert einsum_features("bhid,bhjd->bhij") == []
    assert einsum_features("...id,...jd->...ij") == ["an ellipsis ('...')"]
    assert "repeated index 'i'" in einsum_features("bii,bj->bij")[0]


@pytest.mark.parametrize(
    "eq, target, status",
    [
        ("bhid,bhjd->bhij", "trt8.6", "restricted"),  # broadcasting is not checked
        ("...id,...jd->...ij", "trt8.6", "unsupported"),
        ("...id,...jd->...ij", "trt10", "restricted"),
        ("...id,...jd->...ij", "trt11", "ok"),
        ("...id,...jd->...ij", "ort", "ok"),
    ],
)
def test_einsum_judged_by_equation(eq, target, status):
    row = _row(_einsum(eq), target, "Einsum")
    assert row.status == status, row.note
    if status != "ok" and "..." in eq:
        assert "attn_scores" in row.note and f"equation '{eq}'" in row.note and "ellipsis" in row.note


def test_diagonal_einsum_refused_on_trt86():
    model = _model([helper.make_node("Einsum", ["a"], ["y"], equation="bii->bi", name="diag")], [("a", [2, 4, 4])])
    row = _row(model, "trt8.6", "Einsum")
    assert row.status == "unsupported" and "repeated index 'i'" in row.note


def _resize(**attrs):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", **attrs)
    return _model([node], [("x", [1, 3, 8, 8])], inits=[scales])


@pytest.mark.parametrize(
    "attrs, target, status, named",
    [
        ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, "trt10", "restricted", None),
        ({"mode": "cubic"}, "trt10", "unsupported", "mode 'cubic'"),
        ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "trt8.6", "unsupported",
         "coordinate_transformation_mode 'tf_crop_and_resize'"),
        ({"mode": "cubic"}, "ort", "ok", None),
    ],
)  # fmt: skip
def test_resize_judged_by_mode_and_coordinates(attrs, target, status, named):
    row = _row(_resize(**attrs), target, "Resize")
    assert row.status == status, row.note
    if named:
        assert named in row.note and "'up'" in row.note


def test_resize_antialias_refused_on_trt():
    scales = numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", antialias=1, name="down")
    row = _row(_model([node], [("x", [1, 3, 8, 8])], opset=18, inits=[scales]), "trt10", "Resize")
    assert row.status == "unsupported" and "antialias" in row.note


def _grid(rank, mode, opset=20):
    x = [1, 3] + [4] * (rank - 2)
    g = [1] + [4] * (rank - 2) + [rank - 2]
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, name="warp")
    return _model([node], [("x", x), ("g", g)], opset=opset)


@pytest.mark.parametrize(
    "rank, mode, opset, target, status",
    [
        (4, "linear", 20, "trt10", "restricted"),  # the table's 4-D-only note stands
        (5, "linear", 20, "trt10", "unsupported"),
        (5, "linear", 20, "trt11", "restricted"),
        (5, "linear", 20, "ort", "ok"),
        (5, "cubic", 20, "ort", "unsupported"),
        (4, "bilinear", 16, "trt8.6", "restricted"),
    ],
)
def test_gridsample_judged_by_rank_and_mode(rank, mode, opset, target, status):
    row = _row(_grid(rank, mode, opset), target, "GridSample")
    assert row.status == status, row.note
    if rank == 5 and status != "ok":
        assert "5-D" in row.note and "'warp'" in row.note


def test_pad_mode():
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap", name="pad")
    model = _model([node], [("x", [1, 3, 8, 8])], opset=19, inits=[pads])
    assert _row(model, "trt10", "Pad").status == "ok"
    node.attribute[0].s = b"reflect"
    assert _row(model, "trt10", "Pad").status == "ok"
    model17 = _model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap", name="pad")], [("x", [1, 3, 8, 8])],
                     opset=17, inits=[pads])  # fmt: skip
    row = _row(model17, "trt8.6", "Pad")
    assert row.status == "unsupported" and "mode 'wrap'" in row.note


def test_runtime_axes_must_be_constants_on_trt():
    """ReduceSum axes computed from the input's shape: TensorRT needs them as an initializer; ORT runs it."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Size", ["s"], ["r"], name="rank"),
        helper.make_node("Sub", ["r", "one"], ["last"], name="last_axis"),
        helper.make_node("Unsqueeze", ["last", "zero"], ["axes"], name="axes_of"),
        helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="sum_last"),
    ]
    inits = [
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
    ]
    model = _model(nodes, [("x", [1, 3, 8, 8])], inits=inits)
    row = _row(model, "trt10", "ReduceSum")
    assert row.status == "unsupported" and "input 'axes' is computed at run time" in row.note
    assert "'sum_last'" in row.note and "axes_of" in row.note
    assert _row(model, "ort", "ReduceSum").status == "ok"
    const = _model([helper.make_node("ReduceSum", ["x", "ax"], ["y"], name="s")], [("x", [1, 3, 8, 8])],
                   inits=[numpy_helper.from_array(np.array([2, 3], np.int64), "ax")])  # fmt: skip
    row = _row(const, "trt10", "ReduceSum")
    assert row.status == "restricted" and "none found outside these limits" in row.note


def test_unsupported_opset_verdict_stands():
    row = _row(_einsum("bhid,bhjd->bhij"), "trt8.6", "Einsum")
    assert row.status == "restricted" and "none found outside" in row.note
    model = _einsum("...id,...jd->...ij")
    model.opset_import[0].version = 21
    assert "opset" in _row(model, "trt8.6", "Einsum").note  # the model's opset is what refuses it
