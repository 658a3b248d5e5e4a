"""Walking and checking the attnx nodes of an ONNX model (shared by the ORT and TensorRT forms)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import helper

from attnx.plugins.registry import get, register_onnx_schemas
from attnx.plugins.spec import DOMAIN, OpSpec, SpecError


def load(model: onnx.ModelProto | str | os.PathLike[str]) -> onnx.ModelProto:
    """A copy of ``model`` (callers may rewrite it), or the model loaded from a path (raises as ``onnx.load``)."""
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    return onnx.load(os.fspath(model))


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from graphs(g)


@dataclass
class CheckedNode:
    """An attnx node checked against its spec: the resolved attributes (spec order) and the input element type."""

    node: onnx.NodeProto
    spec: OpSpec
    attrs: dict[str, Any]  # resolved, in spec order
    elem_type: int  # ONNX TensorProto element type of the inputs (0: unknown)


def _types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    # Non-strict: a malformed attnx node must not stop inference of the rest; it is checked below.
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    out: dict[str, onnx.TypeProto] = {}
    for g in graphs(inferred.graph):
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            out.setdefault(vi.name, vi.type)
        for init in g.initializer:
            tp = onnx.TypeProto()
            tp.tensor_type.elem_type = init.data_type
            for d in init.dims:
                tp.tensor_type.shape.dim.add().dim_value = d
            out.setdefault(init.name, tp)
    return out


def check_nodes(model: onnx.ModelProto) -> list[CheckedNode]:
    """Validate every attnx node against its spec (op, version, attributes, ranks, types)."""
    register_onnx_schemas()
    versions = {o.domain: o.version for o in model.opset_import}
    nodes = [(g, n) for g in graphs(model.graph) for n in g.node if n.domain == DOMAIN]
    if nodes and DOMAIN not in versions:
        raise SpecError(f"model has {DOMAIN} nodes but no opset import for domain {DOMAIN!r}")
    types = _types(model) if nodes else {}
    checked = []
    for _, node in nodes:
        spec = get(node.op_type)
        where = node.name or node.op_type
        if versions[DOMAIN] < spec.version:
            raise spec.error(f"needs {DOMAIN} opset >= {spec.version}, model imports {versions[DOMAIN]}", where)
        attrs = spec.resolve_attrs({a.name: helper.get_attribute_value(a) for a in node.attribute}, where)
        present = [i for i in node.input if i]
        spec.check_ranks([_rank(types.get(i)) for i in present], where)
        shapes = [_dims(types.get(i)) for i in present]
        if all(s is not None for s in shapes):
            spec.infer_shapes([s for s in shapes if s is not None], attrs, where)
        elem = 0
        for i in present:
            t = types.get(i)
            et = t.tensor_type.elem_type if t is not None else 0
            if et and et not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
                raise spec.error(f"input {i!r} is {onnx.TensorProto.DataType.Name(et)}; allowed: float, float16", where)
            if et and elem and et != elem:
                raise spec.error("all inputs must have the same element type", where)
            elem = elem or et
        checked.append(CheckedNode(node, spec, attrs, elem))
    return checked


def _rank(t: onnx.TypeProto | None) -> int | None:
    if t is None or not t.tensor_type.HasField("shape"):
        return None
    return len(t.tensor_type.shape.dim)


def _dims(t: onnx.TypeProto | None) -> tuple[Any, ...] | None:
    if t is None or not t.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.tensor_type.shape.dim)


def set_attrs(node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Replace the node's attributes with ``attrs`` (explicit values, in the given order)."""
    del node.attribute[:]
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())


def set_opset(model: onnx.ModelProto, domain: str, version: int | None) -> None:
    """Set (or with ``version=None`` remove) the model's opset import for ``domain``."""
    kept = [o for o in model.opset_import if o.domain != domain]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    if version is not None:
        model.opset_import.append(helper.make_opsetid(domain, version))
