"""The one list of attnx ops: every consumer (ONNX schemas, export hooks, ONNX Runtime, TensorRT, AOT, README)
iterates :data:`OPS` here.

This module imports each op folder's spec (``plugins/<op>/spec.py``); the op folders import only the framework
(:mod:`attnx.plugins.spec`), never this module. Adding an op: a folder, and one line in ``_ALL`` below.
Importing it is light (numpy for the references; no onnx, torch, triton or tensorrt).
"""

from __future__ import annotations

from attnx.plugins.affine_grid_sample.spec import SPEC as AFFINE_GRID_SAMPLE
from attnx.plugins.double_norm.spec import SPEC as DOUBLE_NORM
from attnx.plugins.grid_sample.spec import SPEC as GRID_SAMPLE
from attnx.plugins.spec import OpSpec, SpecError, onnx_schema

_ALL = (GRID_SAMPLE, AFFINE_GRID_SAMPLE, DOUBLE_NORM)

OPS: dict[str, OpSpec] = {s.name: s for s in _ALL}
"""Every attnx op's spec by op name (``"GridSample"``, ...), in the order the README and TensorRT list them."""


def ops() -> dict[str, OpSpec]:
    """All op specs by op name: :data:`OPS`."""
    return OPS


def get(op_name: str) -> OpSpec:
    """The spec of op ``op_name`` (the ONNX op_type, e.g. ``"GridSample"``).

    Raises:
        SpecError: no attnx op has that name (the message lists the known ones).
    """
    try:
        return OPS[op_name]
    except KeyError:
        raise SpecError(f"unknown attnx op {op_name!r}; known: {', '.join(sorted(OPS))}") from None


def plugin_needed(op_name: str, trt_version: tuple[int, int]) -> bool:
    """Whether TensorRT ``trt_version`` (major, minor) needs the attnx plugin for this op.

    False when TensorRT runs the standard ONNX form of the op natively from that version on.

    Raises:
        SpecError: ``op_name`` is not an attnx op.
    """
    since = get(op_name).trt_native_since
    return since is None or tuple(trt_version[:2]) < since


_registered: set[tuple[str, str, int]] = set()


def register_onnx_schemas() -> None:
    """Register every op's schema (:func:`~attnx.plugins.spec.onnx_schema`) with ``onnx.defs`` (idempotent).

    After this, ``onnx.checker.check_model`` and ``onnx.shape_inference.infer_shapes`` accept
    plugin-form models and check their attributes, ranks and types against the specs.
    """
    import onnx.defs
    import onnx.reference  # noqa: F401  (it registers its own op names once; after ours that would clash)

    for spec in OPS.values():
        key = (spec.domain, spec.name, spec.version)
        if key in _registered or _schema_exists(spec):
            _registered.add(key)
            continue
        onnx.defs.register_schema(onnx_schema(spec))
        _registered.add(key)


def _schema_exists(spec: OpSpec) -> bool:
    import onnx.defs

    try:
        s = onnx.defs.get_schema(spec.name, spec.version, spec.domain)
    except onnx.defs.SchemaError:
        return False
    return s.since_version == spec.version
