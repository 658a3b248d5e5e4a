"""Triton kernel for attnx::AffineGridSample: the affine grid is computed per lane, never stored.

Same lane layout and argument convention as plugins/grid_sample/kernel.py, whose sampler it calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import triton
import triton.language as tl

# launch is looked up per call (not imported by name): deploy.tools.gpu_check wraps it.
from attnx.plugins import _triton
from attnx.plugins.grid_sample.kernel import MODE_IDS, PADDING_IDS, output_index, sample_at

if TYPE_CHECKING:
    import torch


@triton.jit
def _base(i, size, ALIGN: tl.constexpr):
    # F.affine_grid's normalised pixel centres (0 when the axis has one pixel).
    f = i.to(tl.float32)
    sizef = size.to(tl.float32)
    if ALIGN:
        v = -1.0 + 2.0 * f / tl.maximum(sizef - 1.0, 1.0)
        return tl.where(size > 1, v, 0.0)
    else:
        return (2.0 * f + 1.0) / sizef - 1.0


@triton.jit
def affine_grid_sample_kernel(
    x_ptr,
    theta_ptr,
    N,
    C,
    H,
    W,
    Ho,
    Wo,
    y_ptr,
    MODE: tl.constexpr,
    PAD: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """AffineGridSample: y (N, C, Ho, Wo) = x (N, C, H, W) sampled where theta (N, 2, 3) maps the output grid.

    One program per BLOCK outputs.

    The grid is computed in the kernel (never stored); FP32 compute for FP16 I/O.
    """
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    lane_mask = offs < N * C * Ho * Wo
    n, c, ho, wo = output_index(offs, C, Ho, Wo)
    th = theta_ptr + n * 6
    t00 = tl.load(th, mask=lane_mask, other=0.0).to(tl.float32)
    t01 = tl.load(th + 1, mask=lane_mask, other=0.0).to(tl.float32)
    t02 = tl.load(th + 2, mask=lane_mask, other=0.0).to(tl.float32)
    t10 = tl.load(th + 3, mask=lane_mask, other=0.0).to(tl.float32)
    t11 = tl.load(th + 4, mask=lane_mask, other=0.0).to(tl.float32)
    t12 = tl.load(th + 5, mask=lane_mask, other=0.0).to(tl.float32)
    bx = _base(wo, Wo, ALIGN)
    by = _base(ho, Ho, ALIGN)
    gx = bx * t00 + by * t01 + t02
    gy = bx * t10 + by * t11 + t12
    out = sample_at(x_ptr, (n * C + c) * H * W, gx, gy, H, W, lane_mask, MODE, PAD, ALIGN)
    tl.store(y_ptr + offs, out.to(y_ptr.dtype.element_ty), mask=lane_mask)


SCALARS = ("N", "C", "H", "W", "Ho", "Wo")


def constexprs(mode: str, padding_mode: str, align_corners: int, block: int) -> dict[str, int]:
    """The kernel's compile-time constants for these attributes and block size (elements per program)."""
    return {"MODE": MODE_IDS[mode], "PAD": PADDING_IDS[padding_mode], "ALIGN": int(align_corners), "BLOCK": block}


AOT_BLOCK = 256


def run(
    x: torch.Tensor,
    theta: torch.Tensor,
    out_h: int = 0,
    out_w: int = 0,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: int = 0,
    block: int | None = None,
) -> torch.Tensor:
    """Run the kernel: on CUDA tensors natively, on CPU tensors in Triton's interpreter."""
    import torch

    x = x.contiguous()
    theta = theta.to(x.dtype).contiguous()
    n, c, h, w = x.shape
    ho, wo = out_h or h, out_w or w
    y = torch.empty((n, c, ho, wo), dtype=x.dtype, device=x.device)
    total = y.numel()
    if total == 0:
        return y
    block = block or (min(8192, triton.next_power_of_2(total)) if x.device.type == "cpu" else AOT_BLOCK)
    cx = constexprs(mode, padding_mode, align_corners, block)
    _triton.launch(affine_grid_sample_kernel, (triton.cdiv(total, block),), x, theta, n, c, h, w, ho, wo, y, **cx)
    return y


def compile_aot(dtype: str, mode: str, padding_mode: str, align_corners: int, arch: int, block: int = AOT_BLOCK) -> Any:
    """Compile the kernel ahead of time for ``dtype`` ("float32"/"float16") and GPU ``arch`` (e.g. 80, 90).

    Returns Triton's CompiledKernel (PTX in ``asm["ptx"]``); no GPU needed.
    """
    cx = constexprs(mode, padding_mode, align_corners, block)
    return _triton.compile_kernel(affine_grid_sample_kernel, dtype, SCALARS, cx, arch)
