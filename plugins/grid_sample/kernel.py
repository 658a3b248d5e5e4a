"""Triton kernel for attnx::GridSample, and the sampling helpers AffineGridSample reuses.

One lane per output element of the flattened (N, C, Ho, Wo) output; coordinates and weights are
computed in FP32 whatever the I/O dtype. Mode, padding and align_corners are compile-time
constants, so each attribute combination is its own specialised kernel (as TensorRT's AOT plugin
needs: attributes are not available at run time).

Argument order follows the TensorRT AOT plugin convention: input pointers, int32 scalars, output
pointers, then constexprs (Triton appends its scratch pointers after these; the kernels use none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import triton
import triton.language as tl

# launch is looked up per call (not imported by name): deploy.tools.gpu_check wraps it.
from attnx.plugins import _triton

if TYPE_CHECKING:
    import torch

MODE_IDS = {"bilinear": 0, "nearest": 1, "bicubic": 2}
PADDING_IDS = {"zeros": 0, "border": 1, "reflection": 2}


@triton.jit
def unnormalize(coord, size, ALIGN: tl.constexpr):
    """Normalised coordinate in [-1, 1] -> pixel coordinate on an axis of ``size`` (FP32), per ALIGN (align_corners)."""
    sizef = size.to(tl.float32)
    if ALIGN:
        return (coord + 1.0) / 2.0 * (sizef - 1.0)
    else:
        return ((coord + 1.0) * sizef - 1.0) / 2.0


@triton.jit
def _reflect(coord, twice_low, twice_high):
    # Same steps as PyTorch's reflect_coordinates; coord >= 0 after abs, so fmod = c - floor(c/s)*s.
    low = twice_low * 0.5
    span = (twice_high - twice_low) * 0.5
    safe_span = tl.where(span > 0, span, 1.0)
    c = tl.abs(coord - low)
    flips = tl.floor(c / safe_span)
    extra = c - flips * safe_span
    odd = (flips - 2.0 * tl.floor(flips * 0.5)) != 0.0
    out = tl.where(odd, span - extra + low, extra + low)
    return tl.where(span > 0, out, 0.0)


@triton.jit
def pad_coordinates(coord, size, PAD: tl.constexpr, ALIGN: tl.constexpr):
    """Border clamps, reflection mirrors then clamps; zeros leaves the coordinate (masked at load)."""
    sizef = size.to(tl.float32)
    if PAD == 1:
        coord = tl.minimum(tl.maximum(coord, 0.0), sizef - 1.0)
    elif PAD == 2:
        if ALIGN:
            coord = _reflect(coord, 0.0, 2.0 * (sizef - 1.0))
        else:
            coord = _reflect(coord, -1.0, 2.0 * sizef - 1.0)
        coord = tl.minimum(tl.maximum(coord, 0.0), sizef - 1.0)
    return coord


@triton.jit
def _to_index(c):
    # Keep far-away coordinates far away but inside int32 (the float->int cast is undefined past it).
    return tl.minimum(tl.maximum(c, -8.0), 1073741824.0).to(tl.int32)


@triton.jit
def _tap(x_ptr, base, yy, xx, H, W, lane_mask):
    """x[base + yy*W + xx] for integer yy, xx; zero outside the image."""
    valid = lane_mask & (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
    return tl.load(x_ptr + base + yy * W + xx, mask=valid, other=0.0).to(tl.float32)


@triton.jit
def _rint(c):
    # Round half to even, as nearbyint in PyTorch and np.rint in the reference.
    r = tl.floor(c + 0.5)
    tie = (r - c) == 0.5
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    return tl.where(tie & odd, r - 1.0, r)


@triton.jit
def _cubic_near(d):
    a = -0.75
    return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0


@triton.jit
def _cubic_far(d):
    a = -0.75
    return ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a


@triton.jit
def _bicubic_row(x_ptr, base, ty, x0, wx0, wx1, wx2, wx3, H, W, lane_mask, PAD: tl.constexpr, ALIGN: tl.constexpr):
    yy = _to_index(pad_coordinates(ty, H, PAD, ALIGN))
    v0 = _tap(x_ptr, base, yy, _to_index(pad_coordinates(x0 - 1.0, W, PAD, ALIGN)), H, W, lane_mask)
    v1 = _tap(x_ptr, base, yy, _to_index(pad_coordinates(x0, W, PAD, ALIGN)), H, W, lane_mask)
    v2 = _tap(x_ptr, base, yy, _to_index(pad_coordinates(x0 + 1.0, W, PAD, ALIGN)), H, W, lane_mask)
    v3 = _tap(x_ptr, base, yy, _to_index(pad_coordinates(x0 + 2.0, W, PAD, ALIGN)), H, W, lane_mask)
    return v0 * wx0 + v1 * wx1 + v2 * wx2 + v3 * wx3


@triton.jit
def output_index(offs, C, Ho, Wo):
    """(n, c, ho, wo) of flat NCHW output offsets: one lane per output element in both sampling kernels."""
    wo = offs % Wo
    t = offs // Wo
    ho = t % Ho
    t = t // Ho
    return t // C, t % C, ho, wo


@triton.jit
def sample_at(x_ptr, base, gx, gy, H, W, lane_mask, MODE: tl.constexpr, PAD: tl.constexpr, ALIGN: tl.constexpr):
    """Sample image ``base`` of x at normalised (gx, gy); returns FP32."""
    ix = unnormalize(gx, W, ALIGN)
    iy = unnormalize(gy, H, ALIGN)
    if PAD == 0:
        # Zeros padding: beyond a few pixels every tap is outside; clamping keeps casts defined.
        ix = tl.minimum(tl.maximum(ix, -8.0), W.to(tl.float32) + 8.0)
        iy = tl.minimum(tl.maximum(iy, -8.0), H.to(tl.float32) + 8.0)
    if MODE == 2:
        x0 = tl.floor(ix)
        y0 = tl.floor(iy)
        tx = ix - x0
        ty = iy - y0
        wx0 = _cubic_far(tx + 1.0)
        wx1 = _cubic_near(tx)
        wx2 = _cubic_near(1.0 - tx)
        wx3 = _cubic_far(2.0 - tx)
        r0 = _bicubic_row(x_ptr, base, y0 - 1.0, x0, wx0, wx1, wx2, wx3, H, W, lane_mask, PAD, ALIGN)
        r1 = _bicubic_row(x_ptr, base, y0, x0, wx0, wx1, wx2, wx3, H, W, lane_mask, PAD, ALIGN)
        r2 = _bicubic_row(x_ptr, base, y0 + 1.0, x0, wx0, wx1, wx2, wx3, H, W, lane_mask, PAD, ALIGN)
        r3 = _bicubic_row(x_ptr, base, y0 + 2.0, x0, wx0, wx1, wx2, wx3, H, W, lane_mask, PAD, ALIGN)
        out = r0 * _cubic_far(ty + 1.0) + r1 * _cubic_near(ty) + r2 * _cubic_near(1.0 - ty) + r3 * _cubic_far(2.0 - ty)
    else:
        ix = pad_coordinates(ix, W, PAD, ALIGN)
        iy = pad_coordinates(iy, H, PAD, ALIGN)
        if MODE == 1:
            out = _tap(x_ptr, base, _to_index(_rint(iy)), _to_index(_rint(ix)), H, W, lane_mask)
        else:
            x0 = tl.floor(ix)
            y0 = tl.floor(iy)
            x1 = x0 + 1.0
            y1 = y0 + 1.0
            xi0 = _to_index(x0)
            yi0 = _to_index(y0)
            out = (
                _tap(x_ptr, base, yi0, xi0, H, W, lane_mask) * ((x1 - ix) * (y1 - iy))
                + _tap(x_ptr, base, yi0, xi0 + 1, H, W, lane_mask) * ((ix - x0) * (y1 - iy))
                + _tap(x_ptr, base, yi0 + 1, xi0, H, W, lane_mask) * ((x1 - ix) * (iy - y0))
                + _tap(x_ptr, base, yi0 + 1, xi0 + 1, H, W, lane_mask) * ((ix - x0) * (iy - y0))
            )
    return out


@triton.jit
def grid_sample_kernel(
    x_ptr,
    grid_ptr,
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
    """GridSample: y (N, C, Ho, Wo) = x (N, C, H, W) sampled at grid (N, Ho, Wo, 2); one program per BLOCK outputs.

    Computes in FP32 for FP16 I/O; ``MODE``, ``PAD`` and ``ALIGN`` are the attributes as compile-time ids.
    """
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    lane_mask = offs < N * C * Ho * Wo
    n, c, ho, wo = output_index(offs, C, Ho, Wo)
    g = ((n * Ho + ho) * Wo + wo) * 2
    gx = tl.load(grid_ptr + g, mask=lane_mask, other=0.0).to(tl.float32)
    gy = tl.load(grid_ptr + g + 1, mask=lane_mask, other=0.0).to(tl.float32)
    out = sample_at(x_ptr, (n * C + c) * H * W, gx, gy, H, W, lane_mask, MODE, PAD, ALIGN)
    tl.store(y_ptr + offs, out.to(y_ptr.dtype.element_ty), mask=lane_mask)


# Names of the scalar (int32) kernel arguments, in order: the AOT plugin passes these.
SCALARS = ("N", "C", "H", "W", "Ho", "Wo")


def constexprs(mode: str, padding_mode: str, align_corners: int, block: int) -> dict[str, int]:
    """The kernel's compile-time constants for these attributes and block size (elements per program)."""
    return {"MODE": MODE_IDS[mode], "PAD": PADDING_IDS[padding_mode], "ALIGN": int(align_corners), "BLOCK": block}


AOT_BLOCK = 256  # elements per program on the GPU (4 warps, 2 per thread)


def run(
    x: torch.Tensor,
    grid: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: int = 0,
    block: int | None = None,
) -> torch.Tensor:
    """Run the kernel: on CUDA tensors natively, on CPU tensors in Triton's interpreter."""
    import torch

    x = x.contiguous()
    grid = grid.to(x.dtype).contiguous()
    n, c, h, w = x.shape
    ho, wo = grid.shape[1], grid.shape[2]
    y = torch.empty((n, c, ho, wo), dtype=x.dtype, device=x.device)
    total = y.numel()
    if total == 0:
        return y
    # The interpreter pays per program, not per lane: one big block.
    block = block or (min(8192, triton.next_power_of_2(total)) if x.device.type == "cpu" else AOT_BLOCK)
    cx = constexprs(mode, padding_mode, align_corners, block)
    _triton.launch(grid_sample_kernel, (triton.cdiv(total, block),), x, grid, n, c, h, w, ho, wo, y, **cx)
    return y


def compile_aot(dtype: str, mode: str, padding_mode: str, align_corners: int, arch: int, block: int = AOT_BLOCK) -> Any:
    """Compile the kernel ahead of time for ``dtype`` ("float32"/"float16") and GPU ``arch`` (e.g. 80, 90).

    Returns Triton's CompiledKernel (PTX in ``asm["ptx"]``); no GPU needed.
    """
    return _triton.compile_kernel(
        grid_sample_kernel, dtype, SCALARS, constexprs(mode, padding_mode, align_corners, block), arch
    )
