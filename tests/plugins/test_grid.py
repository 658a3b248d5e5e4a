"""The parameter grid: reference vs torch, ORT plugin form, ORT native form and the Triton kernels.

Every backend is compared with the NumPy reference; the largest differences are printed at the end
of the run (conftest.py). FP16 cases feed FP16 data everywhere; torch computes them in FP32 (the
contract of these ops) and rounds to FP16.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnx.plugins.affine_grid_sample.reference import affine_grid_sample
from attnx.plugins.double_norm.reference import double_norm
from attnx.plugins.grid_sample.reference import grid_sample
from attnx.plugins.grid_sample.spec import MODES, PADDING_MODES
from tests.plugins.conftest import record
from tests.plugins.models import native_model, plugin_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_extensions")

DTYPES = [np.float32, np.float16]
# max |x - reference| allowed, per dtype. FP16 outputs differ by output rounding (values are O(1)).
TOL = {np.float32: 2e-5, np.float16: 4e-3}
SAMPLING = list(itertools.product(MODES, PADDING_MODES, (0, 1), DTYPES))


def _seed(*parts: object) -> int:
    # Stable across processes (hash() of a str is salted per process).
    return zlib.crc32(repr(parts).encode())


def _ids(case: tuple[Any, ...]) -> str:
    return "-".join(c.__name__ if isinstance(c, type) else str(c) for c in case)


def _grid_points(rng: np.random.Generator, n: int, ho: int, wo: int) -> np.ndarray:
    g = rng.uniform(-1.6, 1.6, size=(n, ho, wo, 2)).astype(np.float32)
    # Corners, the centre and far outside, where padding and clamping matter most.
    special = np.array([[-1, -1], [1, 1], [0, 0], [5.3, -7.1], [-1.02, 1.01], [1e4, 2.5]], np.float32)
    g.reshape(-1, 2)[: len(special)] = special
    return g


def _check(op: str, backend: str, dtype: type, out: np.ndarray, ref: np.ndarray, tol: float | None = None) -> None:
    assert out.shape == ref.shape, f"{backend}: shape {out.shape} != {ref.shape}"
    assert out.dtype == ref.dtype, f"{backend}: dtype {out.dtype} != {ref.dtype}"
    err = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    record(op, backend, np.dtype(dtype).name, err)
    assert err <= (tol if tol is not None else TOL[dtype]), f"{op} {backend}: max error {err}"


def _ort_run(model: Any, feeds: dict[str, np.ndarray], plugin: bool) -> np.ndarray:
    if plugin:
        from attnx.deploy.backends.onnxrt.session import make_session

        sess = make_session(model)
    else:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(None, feeds)[0]
    return out


def _triton() -> Any:
    return pytest.importorskip("triton")


@pytest.mark.parametrize("mode,padding_mode,align_corners,dtype", SAMPLING, ids=[_ids(c) for c in SAMPLING])
def test_grid_sample(mode: str, padding_mode: str, align_corners: int, dtype: type) -> None:
    rng = np.random.default_rng(_seed(mode, padding_mode, align_corners))
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    grid = _grid_points(rng, 2, 4, 6).astype(dtype)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    ref = grid_sample(x, grid, **attrs)

    t = F.grid_sample(
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(grid.astype(np.float32)),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=bool(align_corners),
    )
    _check("GridSample", "torch", dtype, t.numpy().astype(dtype), ref)
    feeds = {"X": x, "grid": grid}
    _check("GridSample", "ort-plugin", dtype, _ort_run(plugin_model("GridSample", attrs, [x, grid]), feeds, True), ref)
    _check("GridSample", "ort-native", dtype, _ort_run(native_model("GridSample", attrs, [x, grid]), feeds, False), ref)

    _triton()
    from attnx.plugins.grid_sample import kernel

    y = kernel.run(torch.from_numpy(x), torch.from_numpy(grid), **attrs).numpy()
    _check("GridSample", "triton", dtype, y, ref)


@pytest.mark.parametrize("mode,padding_mode,align_corners,dtype", SAMPLING, ids=[_ids(c) for c in SAMPLING])
def test_affine_grid_sample(mode: str, padding_mode: str, align_corners: int, dtype: type) -> None:
    rng = np.random.default_rng(_seed(mode, padding_mode, align_corners, 1))
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    # Rotation/scale/shift large enough to leave the image on some pixels.
    theta = (np.eye(2, 3, dtype=np.float32)[None] * 1.2 + rng.uniform(-0.6, 0.6, (2, 2, 3))).astype(dtype)
    out_h, out_w = (3, 9) if align_corners else (0, 0)  # odd output sizes, and 0 = input size
    attrs = {
        "out_h": out_h,
        "out_w": out_w,
        "mode": mode,
        "padding_mode": padding_mode,
        "align_corners": align_corners,
    }
    ref = affine_grid_sample(x, theta, **attrs)

    xt, tt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(theta.astype(np.float32))
    g = F.affine_grid(tt, [2, 3, out_h or 5, out_w or 7], align_corners=bool(align_corners))
    t = F.grid_sample(xt, g, mode=mode, padding_mode=padding_mode, align_corners=bool(align_corners))
    _check("AffineGridSample", "torch", dtype, t.numpy().astype(dtype), ref)
    feeds = {"X": x, "theta": theta}
    _check(
        "AffineGridSample",
        "ort-plugin",
        dtype,
        _ort_run(plugin_model("AffineGridSample", attrs, [x, theta]), feeds, True),
        ref,
    )
    native = _ort_run(native_model("AffineGridSample", attrs, [x, theta]), feeds, False)
    if dtype == np.float32:
        _check("AffineGridSample", "ort-native", dtype, native, ref)
    else:
        # The unfused form stores the grid in FP16: coordinates carry ~1e-3 relative error, which
        # moves bilinear values by a few 1e-3 and can flip a nearest pixel. The fused op keeps them in FP32.
        diff = np.abs(native.astype(np.float32) - ref.astype(np.float32))
        record("AffineGridSample", "ort-native", "float16", float(diff.max()))
        if mode == "nearest":
            assert np.mean(diff > TOL[dtype]) <= 0.05
        else:
            assert diff.max() <= 0.05

    _triton()
    from attnx.plugins.affine_grid_sample import kernel

    y = kernel.run(torch.from_numpy(x), torch.from_numpy(theta), **attrs).numpy()
    _check("AffineGridSample", "triton", dtype, y, ref)


DOUBLE_NORM = [
    ((2, 11, 5), 1e-9, 3.0),  # odd P and S
    ((1, 97, 64), 1e-9, 8.0),  # EA-like S, P not a multiple of any tile; large logits
    ((3, 1, 7), 1e-3, 1.0),  # one pixel: softmax over P is all ones
    ((2, 33, 130), 0.5, 2.0),  # S above one 128 tile, a large eps
]
DN_CASES = [(*c, d) for c in DOUBLE_NORM for d in DTYPES]


@pytest.mark.parametrize("shape,eps,scale,dtype", DN_CASES, ids=[f"{c[0]}-{c[1]}-{c[3].__name__}" for c in DN_CASES])
def test_double_norm(shape: tuple[int, int, int], eps: float, scale: float, dtype: type) -> None:
    rng = np.random.default_rng(shape[1] * 7 + shape[2])
    a = (rng.standard_normal(shape) * scale).astype(dtype)
    ref = double_norm(a, eps)
    # Outputs are at most 1 and mostly O(1/S): scale the FP16 tolerance to the values.
    tol = TOL[dtype] * float(np.max(np.abs(ref.astype(np.float32))) or 1.0)

    import attnx.exporters.ops as ops

    t = ops.double_norm(torch.from_numpy(a.astype(np.float32)), eps)
    _check("DoubleNorm", "torch", dtype, t.numpy().astype(dtype), ref, tol)
    feeds = {"attn": a}
    _check(
        "DoubleNorm",
        "ort-plugin",
        dtype,
        _ort_run(plugin_model("DoubleNorm", {"eps": eps}, [a]), feeds, True),
        ref,
        tol,
    )
    # ONNX Runtime's native FP16 path accumulates in FP16: it is what the plugin exists to avoid.
    native_tol = tol if dtype == np.float32 else 4 * tol
    _check(
        "DoubleNorm",
        "ort-native",
        dtype,
        _ort_run(native_model("DoubleNorm", {"eps": eps}, [a]), feeds, False),
        ref,
        native_tol,
    )

    _triton()
    from attnx.plugins.double_norm import kernel

    _check("DoubleNorm", "triton", dtype, kernel.run(torch.from_numpy(a), eps).numpy(), ref, tol)
    # Several row-block programs per batch item (the GPU layout) give the same result.
    _check("DoubleNorm", "triton-rows", dtype, kernel.run(torch.from_numpy(a), eps, rows=8).numpy(), ref, tol)
