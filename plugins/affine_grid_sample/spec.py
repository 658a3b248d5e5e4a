"""attnx::AffineGridSample — the spec (see plugins/spec.py for what is derived from it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attnx.plugins.affine_grid_sample.reference import affine_grid_sample
from attnx.plugins.grid_sample.spec import ALIGN_CORNERS, MODE, PADDING_MODE
from attnx.plugins.spec import FLOAT_TYPES, Attr, Dim, OpSpec, TensorSpec


def _check(attrs: Mapping[str, Any]) -> None:
    for k in ("out_h", "out_w"):
        if attrs[k] < 0:
            raise ValueError(f"{k} must be >= 0 (0 = the input's size), got {attrs[k]}")


def _shapes(shapes: Sequence[tuple[Dim, ...]], attrs: Mapping[str, Any]) -> list[tuple[Dim, ...]]:
    x, theta = shapes
    if (isinstance(theta[1], int) and theta[1] != 2) or (isinstance(theta[2], int) and theta[2] != 3):
        raise ValueError(f"theta must be N x 2 x 3, got N x {theta[1]} x {theta[2]}")
    if isinstance(x[0], int) and isinstance(theta[0], int) and x[0] != theta[0]:
        raise ValueError(f"batch sizes differ: X has {x[0]}, theta has {theta[0]}")
    out_h = attrs["out_h"] or x[2]
    out_w = attrs["out_w"] or x[3]
    return [(x[0], x[1], out_h, out_w)]


SPEC = OpSpec(
    name="AffineGridSample",
    version=1,
    doc=(
        "The spatial-transformer sampling step fused: torch.nn.functional.affine_grid(theta, (N, C, out_h, out_w)) "
        "followed by grid_sample, without materialising the grid tensor."
    ),
    inputs=(
        TensorSpec("X", ("N", "C", "H", "W"), "T", "Input feature map."),
        TensorSpec("theta", ("N", "2", "3"), "T", "Affine matrices mapping output to input normalised coordinates."),
    ),
    outputs=(TensorSpec("Y", ("N", "C", "Ho", "Wo"), "T", "Sampled output; Ho = out_h or H, Wo = out_w or W."),),
    attrs=(
        Attr("out_h", "int", "Output height; 0 = the input's height.", 0),
        Attr("out_w", "int", "Output width; 0 = the input's width.", 0),
        MODE,
        PADDING_MODE,
        ALIGN_CORNERS,
    ),
    type_constraints=(FLOAT_TYPES,),
    shape_fn=_shapes,
    trt_native_since=None,
    trt_native_note="No fused native op; the unfused form (AffineGrid + GridSample) materialises the grid.",
    check_attrs=_check,
    folder="affine_grid_sample",
    reference=affine_grid_sample,
)
