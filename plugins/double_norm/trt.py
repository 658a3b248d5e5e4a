"""TensorRT plugin ``attnx::DoubleNormPlugin``: spec-driven shapes, Triton kernel ahead of time.

No ``from __future__ import annotations`` here: tensorrt.plugin inspects the annotations as
classes at decoration time.
"""

import tensorrt.plugin as trtp

from attnx.plugins.double_norm import kernel
from attnx.plugins.double_norm.spec import SPEC
from attnx.plugins.trt_base import FLOAT_IO, aot_result, dims, dtype_name, max_extent, target_arch

PLUGIN_ID = SPEC.trt_plugin_id


@trtp.register(PLUGIN_ID)
def double_norm_desc(attn: trtp.TensorDesc, eps: float) -> trtp.TensorDesc:
    """Output descriptor (same shape and dtype as ``attn``) from the spec; SpecError for a bad node."""
    (out,) = SPEC.infer_shapes([dims(attn)], {"eps": eps}, PLUGIN_ID)
    return trtp.from_shape_expr(out, dtype=attn.dtype)


@trtp.autotune(PLUGIN_ID)
def double_norm_autotune(attn: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc]) -> list[trtp.AutoTuneCombination]:
    """The supported type/format combinations: FP32 or FP16, linear layout."""
    return [trtp.AutoTuneCombination(f"{FLOAT_IO}, {FLOAT_IO}", "LINEAR")]


@trtp.aot_impl(PLUGIN_ID)
def double_norm_aot(
    attn: trtp.TensorDesc, eps: float, outputs: tuple[trtp.TensorDesc], tactic: int
) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymIntExprs]:
    """The AOT implementation, with the S tile sized for the profile's largest S; scalars (N, P, S)."""
    attrs = SPEC.resolve_attrs({"eps": eps}, PLUGIN_ID)
    dtype = dtype_name(attn.dtype, PLUGIN_ID)
    # The S tile must cover the largest S the engine accepts.
    s_max = max_extent(attn, 2)
    compiled = kernel.compile_aot(dtype, attrs["eps"], s_max, target_arch())
    rows = kernel.blocks(s_max)["ROWS"]
    a = attn.shape_expr
    return aot_result(compiled, [a[0], trtp.cdiv(a[1], rows)], [a[0], a[1], a[2]])
