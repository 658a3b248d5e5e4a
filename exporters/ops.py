"""Ops that have a custom-op (plugin) form, called by zoo modules instead of torch directly.

In eager mode and in a plain export these are the standard torch computations. During an export
with ``--plugins trt`` (see :func:`plugin_ops`), the ops named in the active set are routed through
the ``plugins`` package, whose autograd Functions trace to ``attnx::<Op>`` custom nodes.
One switch here keeps every model's code free of export concerns.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.nn.functional as F

# Plugin-capable ops called while a recording is active (see record_ops).
_USED: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("attnx_ops_used", default=None)

# Names of ops (as in the plugins package: "GridSample", "AffineGridSample", "DoubleNorm")
# that export as custom nodes in the current context.
_PLUGIN_OPS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("attnx_plugin_ops", default=frozenset())


@contextlib.contextmanager
def plugin_ops(names: frozenset[str] | set[str]) -> Iterator[None]:
    """Within this block, the named ops trace to ``attnx`` custom nodes."""
    token = _PLUGIN_OPS.set(frozenset(names))
    try:
        yield
    finally:
        _PLUGIN_OPS.reset(token)


@contextlib.contextmanager
def record_ops() -> Iterator[set[str]]:
    """Collect the names of the plugin-capable ops that run inside this block."""
    used: set[str] = set()
    token = _USED.set(used)
    try:
        yield used
    finally:
        _USED.reset(token)


def _plugin(name: str):  # -> the op's torch-side autograd Function, or None
    used = _USED.get()
    if used is not None:
        used.add(name)
    if name not in _PLUGIN_OPS.get():
        return None
    from attnx.plugins.export_hooks import torch_function  # lazy: the plugins package is optional at runtime

    return torch_function(name)


def grid_sample(
    x: torch.Tensor,
    grid: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> torch.Tensor:
    """``F.grid_sample`` semantics (N,C,H,W input; N,Ho,Wo,2 grid in [-1, 1])."""
    fn = _plugin("GridSample")
    if fn is not None:
        return fn(x, grid, mode, padding_mode, align_corners)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


def affine_grid_sample(
    x: torch.Tensor,
    theta: torch.Tensor,
    out_hw: tuple[int, int] | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> torch.Tensor:
    """The STN sampling step: build the affine grid from θ (N,2,3) and sample ``x`` with it.

    ``out_hw`` defaults to the input's spatial size.
    """
    fn = _plugin("AffineGridSample")
    if fn is not None:
        return fn(x, theta, out_hw, mode, padding_mode, align_corners)
    h, w = out_hw if out_hw is not None else (x.shape[2], x.shape[3])
    grid = affine_grid(theta, h, w, align_corners=align_corners)
    return grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


def _base_coords(n: int, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """The n normalised sampling coordinates along one axis, as ``F.affine_grid`` makes them.

    align_corners=True:  -1 … 1 through the centres of the end pixels, i.e. (2i − (n−1)) / (n−1);
    align_corners=False: pixel centres with -1 … 1 at the outer pixel edges, i.e. (2i + 1 − n) / n.
    For n = 1 both give 0 (as ATen does). The divisor for align_corners=True is max(n − 1, 1), taken
    as a tensor op (``clamp`` of the last index) so a traced export keeps n symbolic.
    """
    idx = torch.arange(n, dtype=like.dtype, device=like.device)
    num = 2.0 * idx + 1.0 - (idx[-1:] + 1.0)  # idx[-1] + 1 == n, kept as a tensor: no baked size
    den = torch.clamp(idx[-1:], min=1.0) if align_corners else idx[-1:] + 1.0
    return num / den


def affine_grid(theta: torch.Tensor, h: int, w: int, align_corners: bool = False) -> torch.Tensor:
    """``F.affine_grid(theta, [N, C, h, w], align_corners)`` as explicit tensor maths: θ (N,2,3) → grid (N,h,w,2).

    ``aten::affine_grid_generator`` has no ONNX symbolic below opset 20 in the TorchScript exporter;
    arange + matmul export at every opset, with h, w (and the batch) kept dynamic.
    Each output pixel gets the homogeneous base point (x_t, y_t, 1) and grid = θ · (x_t, y_t, 1)ᵀ.
    """
    xs = _base_coords(w, align_corners, theta)  # (w,)
    ys = _base_coords(h, align_corners, theta)  # (h,)
    gx = xs.unsqueeze(0).expand(ys.shape[0], xs.shape[0])  # (h, w): x varies along the width
    gy = ys.unsqueeze(1).expand(ys.shape[0], xs.shape[0])
    base = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # (h, w, 3)
    # (1, h·w, 3) @ (N, 3, 2) → (N, h·w, 2): one matmul applies each sample's θ to every base point.
    grid = torch.matmul(base.reshape(1, -1, 3), theta.transpose(1, 2))
    return grid.reshape(theta.shape[0], ys.shape[0], xs.shape[0], 2)


def double_norm(attn: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """External Attention's double normalization of logits ``attn`` shaped (N, P, S).

    P is the pixel axis, S the memory (slot) axis:
        α̃ = softmax over P of attn;    α = α̃ / (eps + Σ_S α̃)
    """
    fn = _plugin("DoubleNorm")
    if fn is not None:
        return fn(attn, eps)
    attn = torch.softmax(attn, dim=1)
    return attn / (eps + attn.sum(dim=2, keepdim=True))
