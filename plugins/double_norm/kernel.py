"""Triton kernel for attnx::DoubleNorm, FP32 accumulation for FP32 and FP16 I/O.

Program (n, r) first streams all P rows of batch item n to get each column's softmax max and
denominator (online softmax), then normalises rows [r*ROWS, (r+1)*ROWS). The column statistics are
recomputed by every row-block program of the same n: a TensorRT AOT plugin runs one kernel with no
workspace, so they cannot be handed over through memory. ROWS trades that redundancy against
parallelism. The whole S axis is one tile (BLOCK_S >= S): External Attention's S is a few dozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import triton
import triton.language as tl

# launch is looked up per call (not imported by name): deploy.tools.gpu_check wraps it.
from attnx.plugins import _triton

if TYPE_CHECKING:
    import torch


@triton.jit
def double_norm_kernel(
    x_ptr,
    N,
    P,
    S,
    y_ptr,
    EPS: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_S: tl.constexpr,
    ROWS: tl.constexpr,
):
    """DoubleNorm: y (N, P, S) = softmax over P of x, divided by EPS + its sum over S; program (n, block of ROWS rows).

    Accumulates in FP32 for FP16 I/O; BLOCK_S must cover S.
    """
    n = tl.program_id(0)
    r0 = tl.program_id(1) * ROWS
    cols = tl.arange(0, BLOCK_S)
    cmask = cols < S
    base = n * P * S
    col_max = tl.full([BLOCK_S], float("-inf"), tl.float32)
    col_sum = tl.zeros([BLOCK_S], tl.float32)
    for p0 in range(0, P, BLOCK_P):
        rows = p0 + tl.arange(0, BLOCK_P)
        m2 = (rows < P)[:, None] & cmask[None, :]
        tile = tl.load(x_ptr + base + rows[:, None] * S + cols[None, :], mask=m2, other=0.0).to(tl.float32)
        # Padded rows must not count; padded columns hold 0 and are dropped at the end.
        tile = tl.where((rows < P)[:, None], tile, float("-inf"))
        new_max = tl.maximum(col_max, tl.max(tile, axis=0))
        col_sum = col_sum * tl.exp(col_max - new_max) + tl.sum(tl.exp(tile - new_max[None, :]), axis=0)
        col_max = new_max
    r_end = tl.minimum(r0 + ROWS, P)
    for p0 in range(r0, r_end, BLOCK_P):
        rows = p0 + tl.arange(0, BLOCK_P)
        m2 = (rows < r_end)[:, None] & cmask[None, :]
        offs = base + rows[:, None] * S + cols[None, :]
        tile = tl.load(x_ptr + offs, mask=m2, other=0.0).to(tl.float32)
        soft = tl.exp(tile - col_max[None, :]) / col_sum[None, :]
        soft = tl.where(cmask[None, :], soft, 0.0)
        row_sum = tl.sum(soft, axis=1)
        out = soft / (EPS + row_sum[:, None])
        tl.store(y_ptr + offs, out.to(y_ptr.dtype.element_ty), mask=m2)


SCALARS = ("N", "P", "S")


def blocks(s: int, rows: int = 1024) -> dict[str, int]:
    """Tile sizes for memory axis ``s``: one S tile, about 4K elements per P tile."""
    block_s = triton.next_power_of_2(max(s, 1))
    block_p = max(1, min(64, 4096 // block_s))
    return {"BLOCK_P": block_p, "BLOCK_S": block_s, "ROWS": max(rows, block_p)}


def run(attn: torch.Tensor, eps: float = 1e-9, rows: int | None = None) -> torch.Tensor:
    """Run the kernel: on CUDA tensors natively, on CPU tensors in Triton's interpreter."""
    import torch

    attn = attn.contiguous()
    n, p, s = attn.shape
    y = torch.empty_like(attn)
    if y.numel() == 0:
        return y
    # Interpreter: one row block per batch item (programs cost more than lanes there).
    b = blocks(s, rows or (p if attn.device.type == "cpu" else 1024))
    if attn.device.type == "cpu":
        b["BLOCK_P"] = min(triton.next_power_of_2(p), max(1, 8192 // b["BLOCK_S"]))
        b["ROWS"] = triton.cdiv(p, b["BLOCK_P"]) * b["BLOCK_P"]
    _triton.launch(double_norm_kernel, (n, triton.cdiv(p, b["ROWS"])), attn, n, p, s, y, EPS=float(eps), **b)
    return y


def compile_aot(dtype: str, eps: float, s: int, arch: int) -> Any:
    """Compile for memory-axis size ``s`` (it fixes BLOCK_S)."""
    return _triton.compile_kernel(double_norm_kernel, dtype, SCALARS, {"EPS": float(eps), **blocks(s)}, arch)
