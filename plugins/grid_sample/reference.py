"""NumPy reference for attnx::GridSample: the oracle every other implementation is checked against.

Follows PyTorch's CPU grid sampler step by step (unnormalise, pad, interpolate), computing in
float32 like the kernels do, and rounds the result to the input's dtype.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = np.float32
CUBIC_A = F32(-0.75)


def unnormalize(coord: npt.NDArray[np.float32], size: int, align_corners: int) -> npt.NDArray[np.float32]:
    """[-1, 1] -> pixel index space."""
    if align_corners:
        return (coord + F32(1)) / F32(2) * F32(size - 1)
    return ((coord + F32(1)) * F32(size) - F32(1)) / F32(2)


def _reflect(coord: npt.NDArray[np.float32], twice_low: int, twice_high: int) -> npt.NDArray[np.float32]:
    if twice_low == twice_high:
        return np.zeros_like(coord)
    low = F32(twice_low / 2)
    span = F32((twice_high - twice_low) / 2)
    coord = np.abs(coord - low)
    extra = np.fmod(coord, span)
    flips = np.floor(coord / span)
    return np.where(np.fmod(flips, 2) == 0, extra + low, span - extra + low).astype(F32)


def pad_coordinates(
    coord: npt.NDArray[np.float32], size: int, padding_mode: str, align_corners: int
) -> npt.NDArray[np.float32]:
    """Apply border/reflection padding to pixel coordinates (zeros: unchanged, masked later)."""
    if padding_mode == "border":
        return np.clip(coord, F32(0), F32(size - 1))
    if padding_mode == "reflection":
        if align_corners:
            coord = _reflect(coord, 0, 2 * (size - 1))
        else:
            coord = _reflect(coord, -1, 2 * size - 1)
        return np.clip(coord, F32(0), F32(size - 1))
    return coord


def _gather(
    x: npt.NDArray[np.float32], iy: npt.NDArray[np.int64], ix: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """x (N,C,H,W) at integer (iy, ix) of shape (N,Ho,Wo) -> (N,C,Ho,Wo); zero outside."""
    n, _, h, w = x.shape
    valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    b = np.arange(n).reshape(n, 1, 1)
    v = x[b, :, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]  # (N,Ho,Wo,C)
    v = np.where(valid[..., None], v, F32(0))
    return np.moveaxis(v, -1, 1)


def _cubic_weights(t: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    a = CUBIC_A

    def near(d: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:  # |d| <= 1
        return ((a + F32(2)) * d - (a + F32(3))) * d * d + F32(1)

    def far(d: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:  # 1 < |d| < 2
        return ((a * d - F32(5) * a) * d + F32(8) * a) * d - F32(4) * a

    return [far(t + F32(1)), near(t), near(F32(1) - t), far(F32(2) - t)]


def sample(
    x: npt.NDArray[np.float32],
    gx: npt.NDArray[np.float32],
    gy: npt.NDArray[np.float32],
    mode: str,
    padding_mode: str,
    align_corners: int,
) -> npt.NDArray[np.float32]:
    """Sample float32 ``x`` (N,C,H,W) at normalised coordinates gx, gy (N,Ho,Wo)."""
    _, _, h, w = x.shape
    ix = unnormalize(gx, w, align_corners)
    iy = unnormalize(gy, h, align_corners)
    if mode == "bicubic":
        # Padding applies to each of the 16 taps, not to the centre (as in PyTorch).
        x0 = np.floor(ix)
        y0 = np.floor(iy)
        wx = _cubic_weights((ix - x0).astype(F32))
        wy = _cubic_weights((iy - y0).astype(F32))
        out = np.zeros(x.shape[:2] + gx.shape[1:], F32)
        for j in range(4):
            ty = pad_coordinates((y0 + F32(j - 1)).astype(F32), h, padding_mode, align_corners)
            row = np.zeros_like(out)
            for i in range(4):
                tx = pad_coordinates((x0 + F32(i - 1)).astype(F32), w, padding_mode, align_corners)
                v = _gather(x, _to_index(ty), _to_index(tx))
                row = row + v * wx[i][:, None]
            out = out + row * wy[j][:, None]
        return out
    ix = pad_coordinates(ix, w, padding_mode, align_corners)
    iy = pad_coordinates(iy, h, padding_mode, align_corners)
    if mode == "nearest":
        return _gather(x, _to_index(np.rint(iy)), _to_index(np.rint(ix)))  # rint: ties to even
    x0 = np.floor(ix)
    y0 = np.floor(iy)
    x1 = x0 + F32(1)
    y1 = y0 + F32(1)
    out = (
        _gather(x, _to_index(y0), _to_index(x0)) * ((x1 - ix) * (y1 - iy))[:, None]
        + _gather(x, _to_index(y0), _to_index(x1)) * ((ix - x0) * (y1 - iy))[:, None]
        + _gather(x, _to_index(y1), _to_index(x0)) * ((x1 - ix) * (iy - y0))[:, None]
        + _gather(x, _to_index(y1), _to_index(x1)) * ((ix - x0) * (iy - y0))[:, None]
    )
    return out.astype(F32)


def _to_index(c: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    # Far-away coordinates only need to stay out of range; clipping keeps the cast defined.
    return np.clip(np.nan_to_num(c, nan=-8.0), -8.0, 2.0**30).astype(np.int64)


def grid_sample(
    x: npt.NDArray[np.floating],
    grid: npt.NDArray[np.floating],
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: int = 0,
) -> npt.NDArray[np.floating]:
    """Reference attnx::GridSample: x (N,C,H,W), grid (N,Ho,Wo,2) -> (N,C,Ho,Wo) in x's dtype."""
    g = np.asarray(grid, dtype=F32)
    out = sample(np.asarray(x, dtype=F32), g[..., 0], g[..., 1], mode, padding_mode, int(align_corners))
    return out.astype(x.dtype)
