"""The plugin framework: what an op spec is (:class:`OpSpec`, :class:`Attr`, :class:`TensorSpec`) and its ONNX schema.

Every consumer derives from an :class:`OpSpec`: the ONNX schema (:func:`onnx_schema`), the PyTorch export
hook, the ONNX Runtime CPU ops, the TensorRT plugin's shape function and the README tables. The op folders
(``plugins/<op>/spec.py``) each define one ``SPEC`` from the classes here; the list of all of them lives in
:mod:`attnx.plugins.registry`, which imports the op folders (this module imports none of them).

This module is light on purpose: ``onnx`` is imported only inside the functions that need it.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from attnx.core.errors import UserError

if TYPE_CHECKING:
    import onnx

DOMAIN = "attnx"
# Domain onnxruntime-extensions runs Python ops in (see plugins/ort.py).
ORT_CONTRIB_DOMAIN = "ai.onnx.contrib"

AttrType = Literal["int", "float", "string"]


class SpecError(UserError):
    """A custom node or a call that breaks its op's spec (bad attribute, wrong rank, wrong type).

    One line that names the op, the problem and what is allowed, like every ``UserError``.
    """


@dataclass(frozen=True)
class Attr:
    """A node attribute. ``default=None`` makes it required."""

    name: str
    type: AttrType
    doc: str
    default: int | float | str | None = None
    choices: tuple[int | str, ...] | None = None

    @property
    def required(self) -> bool:
        """True when the attribute has no default."""
        return self.default is None


@dataclass(frozen=True)
class TensorSpec:
    """An input or output: its dims by letter (so the rank is fixed) and its type constraint."""

    name: str
    dims: tuple[str, ...]
    type_constraint: str
    doc: str

    @property
    def rank(self) -> int:
        """Number of dims (fixed by the spec)."""
        return len(self.dims)


@dataclass(frozen=True)
class TypeConstraint:
    """An ONNX type constraint: its name (``T``), the allowed tensor types and what they mean."""

    name: str
    types: tuple[str, ...]
    doc: str


# A dimension is whatever the consumer has: an int, None (unknown), an ONNX dim_param string,
# or a TensorRT shape expression. Shape functions only select and pass them through.
Dim = Any
ShapeFn = Callable[[Sequence[tuple[Dim, ...]], Mapping[str, Any]], list[tuple[Dim, ...]]]


@dataclass(frozen=True)
class OpSpec:
    """One custom op: its ONNX signature, attributes, shape rule, NumPy reference and TensorRT support.

    Every consumer (ONNX schema, export hook, ONNX Runtime op, TensorRT plugin, README) is derived from it.
    """

    name: str
    version: int
    doc: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attrs: tuple[Attr, ...]
    type_constraints: tuple[TypeConstraint, ...]
    # (input shapes, resolved attrs) -> output shapes. Called after ranks and attrs were checked.
    shape_fn: ShapeFn
    # First TensorRT version that runs this op natively (ONNX parser or a layer); None: never.
    trt_native_since: tuple[int, int] | None
    trt_native_note: str
    domain: str = DOMAIN
    # Extra validation on resolved attributes (e.g. ranges), raising SpecError.
    check_attrs: Callable[[Mapping[str, Any]], None] | None = field(default=None, compare=False)
    # The op's folder under plugins/ (its spec, reference, kernel, TensorRT plugin and README live there).
    folder: str = ""
    # The NumPy reference: (inputs as arrays, **attrs) -> output array. Every consumer takes it from here.
    reference: Callable[..., Any] | None = field(default=None, compare=False)

    @property
    def qualified_name(self) -> str:
        """``domain::name``, e.g. ``attnx::GridSample`` (how errors name the op)."""
        return f"{self.domain}::{self.name}"

    @property
    def trt_plugin_name(self) -> str:
        # Not the op name: the TensorRT ONNX parser dispatches on op_type alone and has a built-in
        # GridSample importer, which would shadow a plugin of the same name.
        """The TensorRT plugin's name: ``<Op>Plugin``."""
        return f"{self.name}Plugin"

    @property
    def trt_plugin_id(self) -> str:
        """``domain::<Op>Plugin``, the id the plugin is registered under."""
        return f"{self.domain}::{self.trt_plugin_name}"

    def attr(self, name: str) -> Attr:
        """The attribute named ``name``. Raises KeyError if the op has none."""
        for a in self.attrs:
            if a.name == name:
                return a
        raise KeyError(name)

    def error(self, message: str, where: str = "") -> SpecError:
        """A SpecError naming the op, the node (``where``, if given) and ``message``."""
        place = f" (node {where!r})" if where else ""
        return SpecError(f"{self.qualified_name}{place}: {message}")

    def resolve_attrs(self, given: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Check attribute names, types and values against the spec; fill defaults.

        Returns the attributes in spec order (the order TensorRT plugin fields are declared in).
        """
        known = {a.name for a in self.attrs}
        unknown = sorted(set(given) - known)
        if unknown:
            raise self.error(f"unknown attribute {unknown[0]!r}; allowed: {', '.join(sorted(known))}", where)
        out: dict[str, Any] = {}
        for a in self.attrs:
            if a.name not in given or given[a.name] is None:
                if a.required:
                    raise self.error(f"missing required attribute {a.name!r} ({a.type}: {a.doc})", where)
                out[a.name] = a.default
                continue
            out[a.name] = _coerce(self, a, given[a.name], where)
        if self.check_attrs is not None:
            try:
                self.check_attrs(out)
            except ValueError as e:
                raise self.error(str(e), where) from None
        return out

    def check_ranks(self, ranks: Sequence[int | None], where: str = "") -> None:
        """Check the number of inputs and each known rank (None: unknown, accepted). Raises SpecError."""
        if len(ranks) != len(self.inputs):
            raise self.error(f"expects {len(self.inputs)} inputs ({self._input_list()}), got {len(ranks)}", where)
        for t, r in zip(self.inputs, ranks):
            if r is not None and r != t.rank:
                raise self.error(f"input {t.name!r} must be {t.rank}-D ({', '.join(t.dims)}), got rank {r}", where)

    def infer_shapes(
        self, shapes: Sequence[tuple[Dim, ...]], attrs: Mapping[str, Any], where: str = ""
    ) -> list[tuple[Dim, ...]]:
        """Validate ranks and attributes, then compute the output shapes."""
        self.check_ranks([len(s) for s in shapes], where)
        resolved = self.resolve_attrs(attrs, where)
        try:
            return self.shape_fn(shapes, resolved)
        except ValueError as e:
            raise self.error(str(e), where) from None

    def _input_list(self) -> str:
        return ", ".join(f"{t.name}[{','.join(t.dims)}]" for t in self.inputs)


def _coerce(spec: OpSpec, a: Attr, value: Any, where: str) -> int | float | str:
    if a.type == "int":
        if isinstance(value, numbers.Integral):
            v: int | float | str = int(value)
        else:
            raise spec.error(f"attribute {a.name!r} must be an int, got {type(value).__name__} {value!r}", where)
    elif a.type == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise spec.error(f"attribute {a.name!r} must be a float, got {type(value).__name__} {value!r}", where)
        v = float(value)
        if not math.isfinite(v):
            raise spec.error(f"attribute {a.name!r} must be finite, got {v}", where)
    else:
        if isinstance(value, bytes):
            value = value.decode()
        if not isinstance(value, str):
            raise spec.error(f"attribute {a.name!r} must be a string, got {type(value).__name__} {value!r}", where)
        v = value
    if a.choices is not None and v not in a.choices:
        allowed = ", ".join(repr(c) for c in a.choices)
        raise spec.error(f"unsupported {a.name} {v!r}; allowed: {allowed}", where)
    return v


# --- ONNX schema ------------------------------------------------------------------------------------

_ONNX_ATTR_KINDS = {"int": "INT", "float": "FLOAT", "string": "STRING"}


def onnx_schema(spec: OpSpec) -> onnx.defs.OpSchema:
    """The ``onnx.defs.OpSchema`` of ``spec``, with type and shape inference from its shape rule."""
    import onnx
    import onnx.defs
    from onnx import helper

    S = onnx.defs.OpSchema
    attributes = []
    for a in spec.attrs:
        if a.required:
            attributes.append(S.Attribute(a.name, getattr(S.AttrType, _ONNX_ATTR_KINDS[a.type]), a.doc, required=True))
        else:
            attributes.append(S.Attribute(a.name, helper.make_attribute(a.name, a.default), a.doc))
    schema = S(
        spec.name,
        spec.domain,
        spec.version,
        spec.doc,
        inputs=[S.FormalParameter(t.name, t.type_constraint, t.doc) for t in spec.inputs],
        outputs=[S.FormalParameter(t.name, t.type_constraint, t.doc) for t in spec.outputs],
        type_constraints=[(c.name, list(c.types), c.doc) for c in spec.type_constraints],
        attributes=attributes,
    )
    schema.set_type_and_shape_inference_function(lambda ctx: _onnx_infer(spec, ctx))
    return schema


def _onnx_infer(spec: OpSpec, ctx: Any) -> None:
    """ONNX type and shape inference from the spec's shape function."""
    import onnx
    from onnx import helper

    where = _node_name(ctx.get_display_name()) if hasattr(ctx, "get_display_name") else ""
    attrs: dict[str, Any] = {}
    for a in spec.attrs:
        proto = ctx.get_attribute(a.name)
        if proto is not None:
            attrs[a.name] = helper.get_attribute_value(proto)
    resolved = spec.resolve_attrs(attrs, where)

    in_types = [ctx.get_input_type(i) if ctx.has_input(i) else None for i in range(ctx.get_num_inputs())]
    shapes: list[tuple[Dim, ...]] = []
    ranks: list[int | None] = []
    elem_type = 0
    for t in in_types:
        tt = t.tensor_type if t is not None else None
        if tt is not None and tt.elem_type and not elem_type:
            elem_type = tt.elem_type
        if tt is None or not tt.HasField("shape"):
            shapes.append(())
            ranks.append(None)
            continue
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param if d.HasField("dim_param") else None)
            for d in tt.shape.dim
        )
        shapes.append(dims)
        ranks.append(len(dims))
    spec.check_ranks(ranks, where)
    if elem_type:
        allowed = {_ONNX_ELEM_TYPES[s] for s in spec.type_constraints[0].types}
        for t in in_types:
            et = t.tensor_type.elem_type if t is not None else 0
            if et and et not in allowed:
                raise spec.error(
                    f"input type {onnx.TensorProto.DataType.Name(et)} not allowed; "
                    f"allowed: {', '.join(spec.type_constraints[0].types)}",
                    where,
                )
            if et and et != elem_type:
                raise spec.error("all inputs must have the same element type", where)
    out_shapes: list[tuple[Dim, ...]] | None = None
    if all(r is not None for r in ranks):
        try:
            out_shapes = spec.shape_fn(shapes, resolved)
        except ValueError as e:
            raise spec.error(str(e), where) from None
    for i in range(len(spec.outputs)):
        tp = onnx.TypeProto()
        tp.tensor_type.elem_type = elem_type
        if out_shapes is not None:
            dims = tp.tensor_type.shape.dim
            for d in out_shapes[i]:
                nd = dims.add()
                if isinstance(d, int):
                    nd.dim_value = d
                elif isinstance(d, str):
                    nd.dim_param = d
        ctx.set_output_type(i, tp)


def _node_name(display: str) -> str:
    # onnx shows nodes as "node GridSample[attnx] (name)"; keep the name, as other consumers do.
    m = re.search(r"\(([^()]*)\)\s*$", display)
    return m.group(1) if m and m.group(1) else display


# onnx.TensorProto.FLOAT / FLOAT16, without importing onnx at module load.
_ONNX_ELEM_TYPES = {"tensor(float)": 1, "tensor(float16)": 10}


FLOAT_TYPES = TypeConstraint("T", ("tensor(float)", "tensor(float16)"), "FP32 or FP16; computed in FP32.")
