"""attnx::GridSample — the spec (see plugins/spec.py for what is derived from it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attnx.plugins.grid_sample.reference import grid_sample
from attnx.plugins.spec import FLOAT_TYPES, Attr, Dim, OpSpec, TensorSpec

MODES = ("bilinear", "nearest", "bicubic")
PADDING_MODES = ("zeros", "border", "reflection")

# Shared with AffineGridSample, which samples the same way.
MODE = Attr(
    "mode", "string", "Interpolation: bilinear, nearest (ties to even) or bicubic (A = -0.75).", "bilinear", MODES
)
PADDING_MODE = Attr(
    "padding_mode", "string", "Values outside the input: zeros, border (clamp) or reflection.", "zeros", PADDING_MODES
)
# Required on purpose: PyTorch changed its default (True -> False, 1.3) and ONNX defaults to 0;
# a model must state which convention its grid uses.
ALIGN_CORNERS = Attr(
    "align_corners",
    "int",
    "1: -1 and 1 are the centres of the corner pixels; 0: their outer edges. Required.",
    None,
    (0, 1),
)


def _same(a: Dim, b: Dim) -> bool:
    return not (isinstance(a, int) and isinstance(b, int)) or a == b


def _shapes(shapes: Sequence[tuple[Dim, ...]], attrs: Mapping[str, Any]) -> list[tuple[Dim, ...]]:
    x, grid = shapes
    if isinstance(grid[3], int) and grid[3] != 2:
        raise ValueError(f"grid's last dimension must be 2 (x, y), got {grid[3]}")
    if not _same(x[0], grid[0]):
        raise ValueError(f"batch sizes differ: X has {x[0]}, grid has {grid[0]}")
    return [(x[0], x[1], grid[1], grid[2])]


SPEC = OpSpec(
    name="GridSample",
    version=1,
    doc=(
        "Samples X at the normalised (x, y) locations of grid, as torch.nn.functional.grid_sample "
        "and ONNX GridSample (4-D). Grid points outside [-1, 1] follow padding_mode."
    ),
    inputs=(
        TensorSpec("X", ("N", "C", "H", "W"), "T", "Input feature map."),
        TensorSpec("grid", ("N", "Ho", "Wo", "2"), "T", "Sampling locations, x then y, normalised to [-1, 1]."),
    ),
    outputs=(TensorSpec("Y", ("N", "C", "Ho", "Wo"), "T", "Sampled output."),),
    attrs=(MODE, PADDING_MODE, ALIGN_CORNERS),
    type_constraints=(FLOAT_TYPES,),
    shape_fn=_shapes,
    trt_native_since=(8, 5),
    trt_native_note="IGridSampleLayer and ONNX GridSample import since 8.5 (4-D); 5-D since 11.2.",
    folder="grid_sample",
    reference=grid_sample,
)
