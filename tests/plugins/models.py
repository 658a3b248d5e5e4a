"""Single-node ONNX models of each op: plugin form (attnx domain) and native form (standard ONNX)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

IR_VERSION = 9  # onnxruntime 1.31 reads IR <= 13; onnx's default is newer
ONNX_MODES = {"bilinear": "linear", "nearest": "nearest", "bicubic": "cubic"}  # opset 20 names


def _vi(name: str, shape: tuple[Any, ...], dtype: np.dtype) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return helper.make_tensor_value_info(name, elem, list(shape))


def _out_shape(op: str, attrs: dict[str, Any], inputs: list[np.ndarray]) -> tuple[Any, ...]:
    # Well-formed cases get the spec's output shape; malformed ones (tests of errors) get "?"s.
    from attnx.plugins.registry import get
    from attnx.plugins.spec import SpecError

    try:
        return get(op).infer_shapes([a.shape for a in inputs], attrs)[0]
    except SpecError:
        return ("?",) * inputs[0].ndim


def _model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, np.ndarray],
    opsets: dict[str, int],
    out_shape: tuple[Any, ...],
    inits: Any = (),
) -> onnx.ModelProto:
    dtype = next(iter(inputs.values())).dtype
    graph = helper.make_graph(
        nodes,
        "g",
        [_vi(k, v.shape, v.dtype) for k, v in inputs.items()],
        [_vi("Y", out_shape, dtype)],
        initializer=list(inits),
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], ir_version=IR_VERSION
    )


INPUT_NAMES = {"GridSample": ["X", "grid"], "AffineGridSample": ["X", "theta"], "DoubleNorm": ["attn"]}


def plugin_model(op: str, attrs: dict[str, Any], inputs: list[np.ndarray], opset: int = 17) -> onnx.ModelProto:
    names = INPUT_NAMES[op]
    node = helper.make_node(op, names, ["Y"], domain="attnx", name=f"{op}_0", **attrs)
    return _model([node], dict(zip(names, inputs)), {"": opset, "attnx": 1}, _out_shape(op, attrs, inputs))


def native_model(op: str, attrs: dict[str, Any], inputs: list[np.ndarray]) -> onnx.ModelProto:
    names = INPUT_NAMES[op]
    feeds = dict(zip(names, inputs))
    out = _out_shape(op, attrs, inputs)
    if op == "GridSample":
        node = helper.make_node("GridSample", names, ["Y"], **{**attrs, "mode": ONNX_MODES[attrs["mode"]]})
        return _model([node], feeds, {"": 20}, out)
    if op == "AffineGridSample":
        x = inputs[0]
        size = [x.shape[0], x.shape[1], attrs["out_h"] or x.shape[2], attrs["out_w"] or x.shape[3]]
        size_init = helper.make_tensor("size", TensorProto.INT64, [4], size)
        nodes = [
            helper.make_node("AffineGrid", ["theta", "size"], ["grid"], align_corners=attrs["align_corners"]),
            helper.make_node(
                "GridSample",
                ["X", "grid"],
                ["Y"],
                mode=ONNX_MODES[attrs["mode"]],
                padding_mode=attrs["padding_mode"],
                align_corners=attrs["align_corners"],
            ),
        ]
        return _model(nodes, feeds, {"": 20}, out, [size_init])
    eps = helper.make_tensor("eps", helper.np_dtype_to_tensor_dtype(inputs[0].dtype), [], [attrs.get("eps", 1e-9)])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    nodes = [
        helper.make_node("Softmax", ["attn"], ["soft"], axis=1),
        helper.make_node("ReduceSum", ["soft", "axes"], ["rsum"], keepdims=1),
        helper.make_node("Add", ["rsum", "eps"], ["den"]),
        helper.make_node("Div", ["soft", "den"], ["Y"]),
    ]
    return _model(nodes, feeds, {"": 17}, out, [eps, axes])
