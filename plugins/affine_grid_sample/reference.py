"""NumPy reference for attnx::AffineGridSample (affine_grid + grid_sample semantics)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from attnx.plugins.grid_sample.reference import F32, sample


def base_coords(size: int, align_corners: int) -> npt.NDArray[np.float32]:
    """torch.nn.functional.affine_grid's normalised pixel centres along one axis."""
    if size <= 1:
        return np.zeros(max(size, 0), F32)
    i = np.arange(size, dtype=F32)
    if align_corners:
        return (F32(-1) + F32(2) * i / F32(size - 1)).astype(F32)
    return ((F32(2) * i + F32(1)) / F32(size) - F32(1)).astype(F32)


def affine_grid(theta: npt.NDArray[np.float32], out_h: int, out_w: int, align_corners: int) -> npt.NDArray[np.float32]:
    """(N,2,3) -> grid (N,out_h,out_w,2), as F.affine_grid."""
    t = theta.astype(F32)
    bx = base_coords(out_w, align_corners)[None, None, :]
    by = base_coords(out_h, align_corners)[None, :, None]
    gx = bx * t[:, 0, 0, None, None] + by * t[:, 0, 1, None, None] + t[:, 0, 2, None, None]
    gy = bx * t[:, 1, 0, None, None] + by * t[:, 1, 1, None, None] + t[:, 1, 2, None, None]
    return np.stack([gx, gy], axis=-1).astype(F32)


def affine_grid_sample(
    x: npt.NDArray[np.floating],
    theta: npt.NDArray[np.floating],
    out_h: int = 0,
    out_w: int = 0,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: int = 0,
) -> npt.NDArray[np.floating]:
    """Reference attnx::AffineGridSample: x (N,C,H,W), theta (N,2,3) -> (N,C,out_h|H,out_w|W)."""
    h = out_h or x.shape[2]
    w = out_w or x.shape[3]
    g = affine_grid(np.asarray(theta, F32), h, w, int(align_corners))
    out = sample(np.asarray(x, F32), g[..., 0], g[..., 1], mode, padding_mode, int(align_corners))
    return out.astype(x.dtype)
