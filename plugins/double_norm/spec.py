"""attnx::DoubleNorm — the spec (see plugins/spec.py for what is derived from it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attnx.plugins.double_norm.reference import double_norm
from attnx.plugins.spec import FLOAT_TYPES, Attr, Dim, OpSpec, TensorSpec


def _check(attrs: Mapping[str, Any]) -> None:
    if attrs["eps"] < 0:
        raise ValueError(f"eps must be >= 0, got {attrs['eps']}")


def _shapes(shapes: Sequence[tuple[Dim, ...]], attrs: Mapping[str, Any]) -> list[tuple[Dim, ...]]:
    return [tuple(shapes[0])]


SPEC = OpSpec(
    name="DoubleNorm",
    version=1,
    doc=(
        "External Attention's double normalisation of logits (N, P, S): softmax over the pixel axis P, "
        "then division by eps + the sum over the memory axis S. Accumulates in FP32 for FP16 I/O."
    ),
    inputs=(TensorSpec("attn", ("N", "P", "S"), "T", "Attention logits: P pixels by S memory slots."),),
    outputs=(TensorSpec("Y", ("N", "P", "S"), "T", "softmax_P(attn) / (eps + sum_S softmax_P(attn))."),),
    attrs=(Attr("eps", "float", "Added to the sum over S before dividing.", 1e-9),),
    type_constraints=(FLOAT_TYPES,),
    shape_fn=_shapes,
    trt_native_since=None,
    trt_native_note=(
        "Expressible as Softmax + ReduceSum + Div, but with FP16 I/O TensorRT may accumulate in FP16; "
        "the plugin guarantees FP32 accumulation."
    ),
    check_attrs=_check,
    folder="double_norm",
    reference=double_norm,
)
