"""Plugin-form ONNX -> the form TensorRT's ONNX parser maps onto the attnx plugins (no tensorrt import).

The parser looks a node up as a plugin when its op_type is a plugin name and it carries a string
attribute ``plugin_namespace``; ``aot=1`` asks for the ahead-of-time implementation (kernels
embedded in the engine, no Python at run time). A plugin creator receives only the attributes the
node has, and Python plugins have no attribute defaults, so every attribute is written out.
"""

from __future__ import annotations

import os

import onnx

from attnx.plugins._onnx_graph import check_nodes, load, set_attrs


def to_trt_plugin_form(model: onnx.ModelProto | str | os.PathLike[str], aot: bool = True) -> onnx.ModelProto:
    """A copy of ``model`` whose attnx nodes name the TensorRT plugins (``<Op>Plugin``, namespace attnx).

    Raises ``SpecError`` for a malformed attnx node. The result is for TensorRT only: ONNX tools do
    not know the ``<Op>Plugin`` op types.
    """
    m = load(model)
    for c in check_nodes(m):
        c.node.op_type = c.spec.trt_plugin_name
        set_attrs(c.node, {**c.attrs, "plugin_namespace": c.spec.domain, "aot": int(aot)})
    return m
