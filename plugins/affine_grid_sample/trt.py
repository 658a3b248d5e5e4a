"""TensorRT plugin ``attnx::AffineGridSamplePlugin``: spec-driven shapes, Triton kernel ahead of time.

No ``from __future__ import annotations`` here: tensorrt.plugin inspects the annotations as
classes at decoration time.
"""

import tensorrt.plugin as trtp

from attnx.plugins.affine_grid_sample import kernel
from attnx.plugins.affine_grid_sample.spec import SPEC
from attnx.plugins.trt_base import FLOAT_IO, aot_result, dims, dtype_name, target_arch

PLUGIN_ID = SPEC.trt_plugin_id


@trtp.register(PLUGIN_ID)
def affine_grid_sample_desc(
    X: trtp.TensorDesc,
    theta: trtp.TensorDesc,
    out_h: int,
    out_w: int,
    mode: str,
    padding_mode: str,
    align_corners: int,
) -> trtp.TensorDesc:
    """Output descriptor (shape expressions, X's dtype) from the spec's shape rule; SpecError for a bad node."""
    attrs = {"out_h": out_h, "out_w": out_w, "mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    (out,) = SPEC.infer_shapes([dims(X), dims(theta)], attrs, PLUGIN_ID)
    return trtp.from_shape_expr(out, dtype=X.dtype)


@trtp.autotune(PLUGIN_ID)
def affine_grid_sample_autotune(
    X: trtp.TensorDesc, theta: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc]
) -> list[trtp.AutoTuneCombination]:
    """The supported type/format combinations: all FP32 or all FP16, linear layout."""
    return [trtp.AutoTuneCombination(f"{FLOAT_IO}, {FLOAT_IO}, {FLOAT_IO}", "LINEAR")]


@trtp.aot_impl(PLUGIN_ID)
def affine_grid_sample_aot(
    X: trtp.TensorDesc,
    theta: trtp.TensorDesc,
    out_h: int,
    out_w: int,
    mode: str,
    padding_mode: str,
    align_corners: int,
    outputs: tuple[trtp.TensorDesc],
    tactic: int,
) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymIntExprs]:
    """The AOT implementation: kernel name, PTX, launch parameters and int32 scalars (N, C, H, W, Ho, Wo)."""
    attrs = SPEC.resolve_attrs(
        {"out_h": out_h, "out_w": out_w, "mode": mode, "padding_mode": padding_mode, "align_corners": align_corners},
        PLUGIN_ID,
    )
    dtype = dtype_name(X.dtype, PLUGIN_ID)
    compiled = kernel.compile_aot(dtype, attrs["mode"], attrs["padding_mode"], attrs["align_corners"], target_arch())
    x, y = X.shape_expr, outputs[0].shape_expr
    n_programs = trtp.cdiv(y.numel(), kernel.AOT_BLOCK)
    return aot_result(compiled, [n_programs], [x[0], x[1], x[2], x[3], y[2], y[3]])
