"""A stand-in for ``tensorrt`` and ``tensorrt.plugin`` on machines without TensorRT's libraries.

It models the parts of tensorrt.plugin 11.4 the attnx plugins use, including the signature checks
that tensorrt.plugin applies at decoration time (annotations must be real classes; aot_impl takes
the inputs, every attribute in registration order, then ``outputs, tactic``). It cannot say whether
TensorRT accepts the PTX or launches it correctly: that needs a GPU (tests/plugins/test_trt_gpu.py).
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

ATTR_TYPES = (int, float, str, bool, bytes)


class DataType:
    FLOAT = "FLOAT"
    HALF = "HALF"
    INT8 = "INT8"


class ShapeExpr:
    def __init__(self, value: int | None = None) -> None:
        self.value = value

    @property
    def is_fake(self) -> bool:
        return self.value is None

    @property
    def is_constant(self) -> bool:
        if self.value is None:
            raise RuntimeError("fake ShapeExpr")
        return True

    def constant_value(self) -> int:
        assert self.value is not None
        return self.value

    def _op(self, other: Any, f: Any) -> ShapeExpr:
        o = other.value if isinstance(other, ShapeExpr) else other
        return ShapeExpr(None if self.value is None or o is None else f(self.value, o))

    def __mul__(self, o: Any) -> ShapeExpr:
        return self._op(o, lambda a, b: a * b)

    def __add__(self, o: Any) -> ShapeExpr:
        return self._op(o, lambda a, b: a + b)

    def __floordiv__(self, o: Any) -> ShapeExpr:
        return self._op(o, lambda a, b: a // b)


class SymInt32:
    def __init__(self, value: Any = None) -> None:
        self.value = value.value if isinstance(value, (ShapeExpr, SymInt32)) else value


class SymIntExprs:
    def __init__(self, length: int) -> None:
        self.items: list[Any] = [None] * length

    def __setitem__(self, i: int, v: Any) -> None:
        assert isinstance(v, SymInt32), type(v)
        self.items[i] = v

    def __len__(self) -> int:
        return len(self.items)


class KernelLaunchParams:
    def __init__(self) -> None:
        self.grid_x: Any = 1
        self.grid_y: Any = 1
        self.grid_z: Any = 1
        self.block_x: Any = 1
        self.shared_mem: Any = 0


class ShapeExprs(list):
    def numel(self) -> ShapeExpr:
        out = ShapeExpr(1)
        for e in self:
            out = out * e
        return out


class _Shape(tuple):
    @property
    def max(self) -> tuple[int, ...]:
        return self._max  # type: ignore[attr-defined,no-any-return]


class TensorDesc:
    def __init__(self, dims: tuple[Any, ...], dtype: str, max_dims: tuple[int, ...] | None = None) -> None:
        self.shape_expr = ShapeExprs(d if isinstance(d, ShapeExpr) else ShapeExpr(d) for d in dims)
        self.dtype = dtype
        shape = _Shape(-1 if e.value is None else e.value for e in self.shape_expr)
        shape._max = max_dims  # type: ignore[attr-defined]
        self.shape = shape


class AutoTuneCombination:
    def __init__(self, io_types: str, layouts: str = "LINEAR") -> None:
        self.io_types, self.layouts = io_types, layouts


def from_shape_expr(shape: tuple[Any, ...], dtype: str) -> TensorDesc:
    return TensorDesc(tuple(shape), dtype)


def cdiv(a: Any, b: Any) -> ShapeExpr:
    av = a.value if isinstance(a, ShapeExpr) else a
    bv = b.value if isinstance(b, ShapeExpr) else b
    return ShapeExpr(None if av is None or bv is None else -(-av // bv))


REGISTRY: dict[str, dict[str, Any]] = {}


def _params(fn: Any) -> list[inspect.Parameter]:
    return list(inspect.signature(fn).parameters.values())


def register(plugin_id: str) -> Any:
    def deco(fn: Any) -> Any:
        tensors, attrs = [], {}
        for p in _params(fn):
            assert p.default is inspect.Parameter.empty, f"{p.name}: tensorrt.plugin allows no defaults"
            ann = p.annotation
            assert not isinstance(ann, str), f"{p.name}: string annotation (from __future__ import annotations?)"
            if inspect.isclass(ann) and issubclass(ann, TensorDesc):
                assert not attrs, "tensors must precede attributes"
                tensors.append(p.name)
            else:
                assert ann in ATTR_TYPES, f"{p.name}: unsupported attribute type {ann}"
                attrs[p.name] = ann
        assert inspect.signature(fn).return_annotation is TensorDesc
        REGISTRY[plugin_id] = {"desc": fn, "tensors": tensors, "attrs": attrs}
        return fn

    return deco


def autotune(plugin_id: str) -> Any:
    def deco(fn: Any) -> Any:
        d = REGISTRY[plugin_id]
        names = [p.name for p in _params(fn)]
        assert names[: len(d["tensors"])] == d["tensors"] and names[-1] == "outputs", names
        d["autotune"] = fn
        return fn

    return deco


def aot_impl(plugin_id: str) -> Any:
    def deco(fn: Any) -> Any:
        d = REGISTRY[plugin_id]
        names = [p.name for p in _params(fn)]
        # tensorrt.plugin calls aot_impl(*inputs, *all_attribute_values, outputs, tactic).
        assert names == [*d["tensors"], *d["attrs"], "outputs", "tactic"], names
        for p in _params(fn):
            if p.name in d["attrs"]:
                assert p.annotation is d["attrs"][p.name], p.name
        ret = inspect.signature(fn).return_annotation
        assert not isinstance(ret, str)
        d["aot"] = fn
        return fn

    return deco


def install() -> None:
    """Make ``import tensorrt`` and ``import tensorrt.plugin`` resolve to this module's fakes."""
    trt = types.ModuleType("tensorrt")
    trt.DataType = DataType  # type: ignore[attr-defined]
    plugin = types.ModuleType("tensorrt.plugin")
    for name in (
        "ShapeExpr SymInt32 SymIntExprs KernelLaunchParams TensorDesc AutoTuneCombination "
        "from_shape_expr cdiv register autotune aot_impl REGISTRY"
    ).split():
        setattr(plugin, name, globals()[name])
    trt.plugin = plugin  # type: ignore[attr-defined]
    sys.modules["tensorrt"] = trt
    sys.modules["tensorrt.plugin"] = plugin
