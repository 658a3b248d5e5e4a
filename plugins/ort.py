"""ONNX Runtime (CPU) for plugin-form models: attnx nodes run as onnxruntime-extensions Python ops.

onnxruntime-extensions runs Python ops only in its own domain, ``ai.onnx.contrib``, and only for
float32 (an FP16 Python op aborts the process). :func:`to_ort_form` therefore rewrites a copy of
the model: each attnx node is checked against its spec, gets every attribute explicitly, moves to
``ai.onnx.contrib`` as ``attnx_<Op>``, and FP16 nodes are wrapped in Casts (the op computes in
FP32, as the TensorRT kernels do). The Python ops call the NumPy references.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from attnx.plugins._onnx_graph import check_nodes, graphs, load, set_attrs, set_opset
from attnx.plugins.registry import ops
from attnx.plugins.spec import DOMAIN, ORT_CONTRIB_DOMAIN, OpSpec

PREFIX = "attnx_"
_registered = False


def _implementations() -> dict[str, Callable[..., np.ndarray]]:
    return {name: spec.reference for name, spec in ops().items() if spec.reference is not None}


def register_python_ops() -> None:
    """Declare every op to onnxruntime-extensions (once per process), typed from its spec."""
    global _registered
    if _registered:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    kinds = {"int": PyCustomOpDef.dt_int64, "float": PyCustomOpDef.dt_float, "string": PyCustomOpDef.dt_string}
    impls = _implementations()
    for spec in ops().values():
        impl = impls[spec.name]

        def run(*inputs: np.ndarray, _impl: Callable[..., np.ndarray] = impl, **attrs: Any) -> np.ndarray:
            return np.ascontiguousarray(_impl(*inputs, **attrs), dtype=np.float32)

        onnx_op(
            op_type=PREFIX + spec.name,
            inputs=[PyCustomOpDef.dt_float] * len(spec.inputs),
            outputs=[PyCustomOpDef.dt_float] * len(spec.outputs),
            attrs={a.name: kinds[a.type] for a in spec.attrs},
        )(run)
    _registered = True


def to_ort_form(model: onnx.ModelProto | str | os.PathLike[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose attnx nodes are onnxruntime-extensions Python-op nodes.

    Raises ``SpecError`` (one line, naming the node) for a malformed attnx node.
    """
    m = load(model)
    checked = check_nodes(m)
    if not checked:
        return m
    by_node = {id(c.node): c for c in checked}
    for g in graphs(m.graph):
        new_nodes: list[onnx.NodeProto] = []
        for node in g.node:
            c = by_node.get(id(node))
            if c is None:
                new_nodes.append(node)
                continue
            new_nodes.extend(_rewrite(node, c.spec, c.attrs, c.elem_type))
        del g.node[:]
        g.node.extend(new_nodes)
    set_opset(m, DOMAIN, None)
    set_opset(m, ORT_CONTRIB_DOMAIN, 1)
    return m


def _rewrite(node: onnx.NodeProto, spec: OpSpec, attrs: dict[str, Any], elem_type: int) -> list[onnx.NodeProto]:
    new = onnx.NodeProto()
    new.CopyFrom(node)
    new.domain = ORT_CONTRIB_DOMAIN
    new.op_type = PREFIX + spec.name
    set_attrs(new, attrs)
    if elem_type != TensorProto.FLOAT16:
        return [new]
    # FP16: the Python op is FP32-only; cast in and out around it.
    tag = node.name or node.output[0]
    pre = []
    for k, name in enumerate(node.input):
        cast_name = f"{tag}/attnx_in{k}_fp32"
        pre.append(helper.make_node("Cast", [name], [cast_name], to=TensorProto.FLOAT, name=cast_name))
        new.input[k] = cast_name
    post = []
    for k, name in enumerate(node.output):
        fp32 = f"{tag}/attnx_out{k}_fp32"
        new.output[k] = fp32
        post.append(helper.make_node("Cast", [fp32], [name], to=TensorProto.FLOAT16, name=f"{fp32}_cast"))
    return [*pre, new, *post]


def session_form(model: onnx.ModelProto | str | os.PathLike[str] | bytes, sess_options: ort.SessionOptions) -> bytes:
    """A plugin-form model as ONNX Runtime must load it, with ``sess_options`` made ready for it.

    Checks every attnx node against its spec (raising :class:`~attnx.plugins.spec.SpecError`), rewrites the
    nodes as onnxruntime-extensions Python ops (:func:`to_ort_form`) and registers their library in
    ``sess_options``; returns the rewritten model, serialised. Sessions themselves are made by the one factory,
    ``attnx.deploy.backends.onnxrt.session.make_session``; the attnx ops always run on the CPU (Python).
    """
    from onnxruntime_extensions import get_library_path

    register_python_ops()
    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    rewritten = to_ort_form(model)
    sess_options.register_custom_ops_library(get_library_path())
    return rewritten.SerializeToString()
