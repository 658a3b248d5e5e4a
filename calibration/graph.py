"""ONNX graph plumbing shared by the plan, the calibrator and the emitters."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.int8_numerics import cpu_form
from attnx.deploy.backends.onnxrt.session import make_session
from attnx.plugins.registry import ops, register_onnx_schemas
from attnx.plugins.spec import onnx_schema

if TYPE_CHECKING:
    import onnx

IR_VERSION_MAX = 10  # what attnx writes everywhere (ONNX Runtime ≥ 1.18 reads it); onnx 1.23 defaults higher
FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def name_nodes(model: onnx.ModelProto) -> int:
    """Give every node a unique name (plans, block lists and exclusions address nodes by name).

    Returns how many nodes were renamed. Names that are already unique are kept.
    """
    seen: set[str] = set()
    renamed = 0
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type}_{i}"
            name, k = base, 0
            while name in seen:
                k += 1
                name = f"{base}__{k}"
            node.name = name
            renamed += 1
        seen.add(node.name)
    return renamed


def graph_sha256(model: onnx.ModelProto) -> str:
    """Hash of what computes: nodes, initializers, inputs and outputs (not metadata, doc strings or value_info).

    Returns a hex SHA-256 of the graph's deterministic protobuf serialisation plus the sorted
    (domain, version) opset imports: part of the calibration cache key.
    """
    import onnx

    g = onnx.GraphProto()
    g.CopyFrom(model.graph)
    del g.value_info[:]
    g.doc_string = ""
    h = hashlib.sha256(g.SerializeToString(deterministic=True))
    for op in sorted((o.domain, o.version) for o in model.opset_import):
        h.update(f"{op[0]}:{op[1]};".encode())
    return h.hexdigest()


@dataclass
class InputInfo:
    """One graph input (initializers excluded): its name, ONNX ``TensorProto`` element type (1 = FLOAT,
    10 = FLOAT16, 7 = INT64, ...) and shape: an int per fixed axis, the ``dim_param`` or "?" per dynamic one."""

    name: str
    elem_type: int
    shape: list[int | str]  # str: symbolic or unknown

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of ``elem_type`` (``onnx.helper.tensor_dtype_to_np_dtype``); raises KeyError for
        an element type without one (e.g. UNDEFINED)."""
        from onnx import helper

        return np.dtype(helper.tensor_dtype_to_np_dtype(self.elem_type))


def graph_inputs(model: onnx.ModelProto) -> list[InputInfo]:
    """The model's run-time inputs in graph order: ``graph.input`` minus those that are also initializers
    (older exporters list weights as inputs too)."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        out.append(InputInfo(vi.name, t.elem_type, dims))
    return out


@dataclass
class GraphIndex:
    """Who produces and who consumes each tensor, plus inferred types and shapes (at a concrete input shape)."""

    model: onnx.ModelProto
    nodes: dict[str, Any] = field(default_factory=dict)  # name → NodeProto
    producer: dict[str, Any] = field(default_factory=dict)  # tensor → NodeProto
    consumers: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    constants: dict[str, np.ndarray] = field(default_factory=dict)  # initializers and Constant outputs
    elem_types: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, list[int | None]] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> GraphIndex:
        """Index ``model`` (not modified) and infer element types and shapes.

        Args:
            model: the graph; its nodes must have unique names (:func:`name_nodes`) for ``nodes``.
            input_shapes: input name → full shape with batch, e.g. {"x": (1, 3, 224, 224)}, pinning dynamic
                axes for shape inference (ONNX shape inference with data propagation); inputs left out
                keep their declared shape.

        Shape inference is best effort: a failure leaves shapes unknown (absent, or None per axis), never
        raises. Constants are read as NumPy arrays (``onnx.numpy_helper.to_array``).
        """
        from onnx import numpy_helper

        index = cls(model)
        for node in model.graph.node:
            index.nodes[node.name] = node
            for t in node.output:
                if t:
                    index.producer[t] = node
            for t in node.input:
                if t:
                    index.consumers[t].append(node)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value":
                        index.constants[node.output[0]] = numpy_helper.to_array(attr.t)
        for init in model.graph.initializer:
            index.constants[init.name] = numpy_helper.to_array(init)
        index.outputs = {o.name for o in model.graph.output}
        index._infer(input_shapes or {})
        return index

    def _infer(self, input_shapes: dict[str, tuple[int, ...]]) -> None:
        import onnx

        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        del m.graph.value_info[:]
        for vi in m.graph.input:
            if vi.name in input_shapes:
                dims = vi.type.tensor_type.shape.dim
                for d, v in zip(dims, input_shapes[vi.name]):
                    d.Clear()
                    d.dim_value = int(v)
        ensure_onnx_reference()
        try:
            register_onnx_schemas()  # attnx custom nodes get types and shapes too
        except Exception:  # the plugins package is part of attnx; a failure here only costs shape detail
            pass
        try:
            m = infer_filled(m, data_prop=True)
        except Exception:  # inference is best effort: unknown shapes are handled as "unknown" by the callers
            pass
        for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
            t = vi.type.tensor_type
            if t.elem_type:
                self.elem_types.setdefault(vi.name, t.elem_type)
            if t.HasField("shape"):
                self.shapes.setdefault(vi.name, [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim])
        for name, arr in self.constants.items():
            from onnx import helper

            self.elem_types.setdefault(name, helper.np_dtype_to_tensor_dtype(arr.dtype))
            self.shapes.setdefault(name, list(arr.shape))

    def is_float(self, tensor: str) -> bool:
        """True when ``tensor``'s inferred type is FLOAT, FLOAT16, DOUBLE or BFLOAT16 (``FLOAT_TYPES``)."""
        return self.elem_types.get(tensor) in FLOAT_TYPES

    def is_const(self, tensor: str) -> bool:
        """True for an initializer or the output of a default-domain Constant node."""
        return tensor in self.constants

    def parents(self, node: Any) -> list[Any]:
        """The nodes producing ``node``'s inputs, in input order (graph inputs and initializers have none)."""
        return [self.producer[t] for t in node.input if t in self.producer]

    def children(self, node: Any) -> list[Any]:
        """The nodes consuming ``node``'s outputs (a node reading two of them appears twice)."""
        return [c for t in node.output for c in self.consumers.get(t, [])]

    def activation_tensors(self) -> list[str]:
        """Float tensors computed at run time (graph inputs and node outputs), in graph order."""
        names = [i.name for i in graph_inputs(self.model) if i.elem_type in FLOAT_TYPES]
        for node in self.model.graph.node:
            if node.op_type == "Constant":
                continue
            names.extend(t for t in node.output if t and self.is_float(t) and t not in self.constants)
        return names


def ensure_onnx_reference() -> None:
    """Import ``onnx.reference`` (onnxruntime.quantization needs it) even after attnx schemas are registered.

    It indexes every registered schema by name once, at import, and refuses a name in two domains
    (``attnx::GridSample`` next to ``GridSample``). Exporting a plugin-form model registers the attnx
    schemas first, so the import can fail later in the same process: then the attnx schemas are
    deregistered for the import and registered again.
    """
    import sys

    if "onnx.reference" in sys.modules:
        return
    try:
        import onnx.reference  # noqa: F401

        return
    except NotImplementedError:
        pass
    import onnx.defs

    removed = []
    for spec in ops().values():
        try:
            onnx.defs.get_schema(spec.name, spec.version, spec.domain)
        except onnx.defs.SchemaError:
            continue
        onnx.defs.deregister_schema(spec.name, spec.version, spec.domain)
        removed.append(spec)
    for name in [m for m in sys.modules if m.startswith("onnx.reference")]:
        del sys.modules[name]  # a half-imported package from the failed attempt
    try:
        import onnx.reference  # noqa: F401, F811
    finally:
        for spec in removed:
            onnx.defs.register_schema(onnx_schema(spec))


def topo_sort(model: onnx.ModelProto) -> None:
    """Order nodes so that every input is produced before use (inserted nodes are appended by some tools).

    In place; stable: repeated passes in the existing order, each taking the nodes whose inputs exist.
    Raises ``RuntimeError`` when the graph has a cycle or a node reads a tensor nothing defines (a bug in
    the pass that made it).
    """
    import onnx

    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    pending = list(model.graph.node)
    ordered = []
    while pending:
        progressed = []
        rest = []
        for node in pending:
            if all(t in available for t in node.input):
                progressed.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if not progressed:
            missing = sorted({t for n in rest for t in n.input if t not in available})[:3]
            raise RuntimeError(f"graph has a cycle or undefined inputs {missing}")
        ordered.extend(progressed)
        pending = rest
    copies = []
    for node in ordered:
        c = onnx.NodeProto()
        c.CopyFrom(node)
        copies.append(c)
    del model.graph.node[:]
    model.graph.node.extend(copies)


def drop_dead_nodes(model: onnx.ModelProto) -> None:
    """Remove nodes whose outputs nothing reads, until none is left (a rewrite can strand whole chains)."""
    graph = model.graph
    while True:
        used = {t for n in graph.node for t in n.input} | {o.name for o in graph.output}
        keep = [n for n in graph.node if any(t in used for t in n.output)]
        if len(keep) == len(graph.node):
            return
        del graph.node[:]
        graph.node.extend(keep)


def finish_model(model: onnx.ModelProto, source: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """Clamp the IR version, carry the source's metadata over, and check the result."""
    import onnx

    if model.ir_version > IR_VERSION_MAX:
        model.ir_version = IR_VERSION_MAX
    if source is not None:
        have = {p.key for p in model.metadata_props}
        for prop in source.metadata_props:
            if prop.key not in have:
                model.metadata_props.add(key=prop.key, value=prop.value)
    onnx.checker.check_model(model)
    return model


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    """Set ``metadata_props`` entries in place: existing keys are overwritten, new ones appended."""
    props = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        if key in props:
            props[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)


def uses_custom_ops(model: onnx.ModelProto) -> bool:
    """True when a top-level node is in the "attnx" custom-op domain (it needs the plugins to run)."""
    return any(n.domain == "attnx" for n in model.graph.node)


def session(model: onnx.ModelProto, threads: int | None = None, optimize: bool = True) -> Any:
    """An ONNX Runtime CPU session that computes what ``model`` computes on its target.

    INT8 graphs go through :func:`attnx.calibration.int8_numerics.cpu_form` (TensorRT layout as exact fake-quant;
    U8U8 kernels where this CPU would saturate full 8-bit weights); attnx custom nodes run through the
    plugins package. Made by the one session factory (:func:`attnx.deploy.backends.onnxrt.session.make_session`).
    """
    form = cpu_form(model)
    return make_session(form.model, threads=threads, optimize=optimize, session_config=form.session_config,
                        custom_ops=uses_custom_ops(form.model))  # fmt: skip


# Ops onnx has no type/shape inference for (GroupNormalization-21 is a function op without one: every tensor
# after it would stay untyped), whose output has the type and shape of input 0.
SHAPE_OF_INPUT_OPS = {"GroupNormalization"}


def infer_filled(model: onnx.ModelProto, data_prop: bool = False) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes`` (not strict), with the outputs of :data:`SHAPE_OF_INPUT_OPS` given
    their input's type and shape and the inference rerun from there."""
    import onnx

    m = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=data_prop)
    for _ in range(8):
        known = {vi.name: vi for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output)
                 if vi.type.tensor_type.elem_type}  # fmt: skip
        missing = [n for n in m.graph.node if n.op_type in SHAPE_OF_INPUT_OPS and n.output[0] not in known
                   and n.input[0] in known]  # fmt: skip
        if not missing:
            break
        for n in missing:
            vi = onnx.ValueInfoProto()
            vi.CopyFrom(known[n.input[0]])
            vi.name = n.output[0]
            m.graph.value_info.append(vi)
        m = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=data_prop)
    return m
