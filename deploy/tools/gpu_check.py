"""One-shot GPU check of the attnx plugin kernels and cuda-python code: ``make gpu-check``.

GPU machines come rarely and for minutes, so this is one script that runs in one go (well under 5
minutes on an H200) and writes everything it learns to ``--out``: ``gpu_check.json`` and
``gpu_check.md``, each written atomically.

Sections:
  numerics  every plugin kernel (GridSample: every mode x padding x align_corners; AffineGridSample;
            DoubleNorm), fp32 and fp16, on odd shapes and out-of-range grid points, against the NumPy
            reference (the oracle) and against torch's own op on the same device (F.grid_sample,
            F.affine_grid + F.grid_sample, softmax over P then division by eps + the sum over S).
  timing    CUDA-event medians (triton.testing.do_bench) at deployment sizes; achieved bytes/s against
            the bandwidth bound (bytes that must move / peak, the peak measured in the same run by a
            device-to-device copy); the ratio to torch's op.
  cuda_mem  deploy/backends/tensorrt/cuda_mem.py on the device: device and pinned buffers, streams, events,
            H2D/D2H round trips, a CUDA graph, no leak over many loops (cudaMemGetInfo before/after, balanced
            calls).
  runtime   deploy/backends/tensorrt/runner.py's host/device copy path (pinned and pageable, CUDA graphs,
            infer_timed, infer_device, deactivate) with the fake TensorRT the tests use
            (deploy/backends/tensorrt/_fake.py) and a plan whose "engine" is a device-to-device copy:
            TensorRT itself is not installed on the GPU machines, its wheels cannot be fetched there.

``--dry`` (CI, CPU): kernels in Triton's interpreter at tiny sizes, numerics only (against the NumPy
reference and torch on the CPU); the CUDA sections report "skipped: no CUDA". The exit status is
non-zero when any numeric or memory check fails (timing targets are reported, never fail the run).

Kernels are launched through each op's own ``kernel.run`` (as the tests do) with the AOT plugin's
launch options (4 warps, no FMA contraction, the plugin's block sizes), so what is measured is what a
TensorRT engine would run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

OPS = ("GridSample", "AffineGridSample", "DoubleNorm")
SECTIONS = ("numerics", "timing", "cuda_mem", "runtime")
MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")
DTYPES = ("float32", "float16")
# max |kernel - reference|, as the CPU grid (tests/plugins/test_grid.py). FP16: output rounding.
TOL = {"float32": 2e-5, "float16": 4e-3}
# max |kernel - torch op on the same device|: torch's CUDA code may contract to FMA (nvcc's default).
TORCH_TOL = {"float32": 1e-4, "float16": 4e-3}
# Nearest mode against torch CUDA: an FMA-contracted coordinate can round a tie the other way; allow
# this fraction of pixels (at least one) to pick the neighbour, and report how many did.
NEAREST_FLIP_FRACTION = 1e-3
LEAK_TOLERANCE_BYTES = 2 << 20
TARGET_BOUND_RATIO = 1.5
# The AOT plugin's options that change results or speed (plugins/_triton.COMPILE_OPTIONS less ptx_version).
LAUNCH_OPTIONS: dict[str, Any] = {"num_warps": 4, "enable_fp_fusion": False}


def _references() -> dict[str, Callable[..., np.ndarray]]:
    from attnx.plugins.registry import ops

    return {name: spec.reference for name, spec in ops().items() if spec.reference is not None}


# The NumPy oracles; tests replace one to prove a wrong reference fails the run.
REFERENCES: dict[str, Callable[..., np.ndarray]] = {}


# -------------------------------------------------------------------------------------------------
# Results


class Report:
    """The check's results as JSON-ready data (``data``): the mode (gpu | dry), the overall ``ok``, the environment,
    and per section its status (ok | fail | skipped: why) and checks.
    """

    def __init__(self, mode: str) -> None:
        self.data: dict[str, Any] = {"mode": mode, "ok": True, "env": {}, "sections": {}}

    def section(self, name: str) -> dict[str, Any]:
        """Section ``name``'s entry, created with status ok and no checks on first use."""
        return self.data["sections"].setdefault(name, {"status": "ok", "checks": []})

    def skip(self, name: str, reason: str) -> None:
        """Mark section ``name`` skipped for ``reason`` (replacing its entry)."""
        self.data["sections"][name] = {"status": f"skipped: {reason}", "checks": []}

    def check(self, name: str, ok: bool, **fields: Any) -> dict[str, Any]:
        """Append a check (``ok`` and ``fields``) to section ``name`` and return it; a failing one fails the section and
        the run.
        """
        sec = self.section(name)
        entry = {"ok": bool(ok), **fields}
        sec["checks"].append(entry)
        if not ok:
            sec["status"] = "fail"
            self.data["ok"] = False
        return entry

    def error(self, name: str, exc: BaseException) -> None:
        """Record that section ``name`` raised ``exc`` (the traceback's last 3000 characters); fails the section and the
        run.
        """
        sec = self.section(name)
        sec["status"] = "fail"
        sec.setdefault("errors", []).append("".join(traceback.format_exception(exc)).strip()[-3000:])
        self.data["ok"] = False


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def _grid_points(rng: np.random.Generator, n: int, ho: int, wo: int) -> np.ndarray:
    """As tests/plugins/test_grid.py: uniform in [-1.6, 1.6] plus corners, centre and far outside."""
    g = rng.uniform(-1.6, 1.6, size=(n, ho, wo, 2)).astype(np.float32)
    special = np.array([[-1, -1], [1, 1], [0, 0], [5.3, -7.1], [-1.02, 1.01], [1e4, 2.5]], np.float32)
    g.reshape(-1, 2)[: len(special)] = special
    return g


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


@contextlib.contextmanager
def _launch_options(options: dict[str, Any]) -> Iterator[None]:
    """Make every ``kernel.run`` launch with ``options`` (each run imports attnx.plugins._triton.launch per call)."""
    import attnx.plugins._triton as pt

    original = pt.launch

    def launch(kernel: Any, grid: tuple[int, ...], *args: Any, **constexprs: Any) -> None:
        original(kernel, grid, *args, **constexprs, **options)

    pt.launch = launch
    try:
        yield
    finally:
        pt.launch = original


# -------------------------------------------------------------------------------------------------
# 1. numerics


def _cases(op: str, dry: bool) -> list[dict[str, Any]]:
    """Shapes per op: the CPU grid's odd shapes; on the GPU also several blocks' worth of lanes."""
    if op == "GridSample":
        shapes = [((2, 3, 5, 7), (4, 6))] + ([] if dry else [((3, 5, 37, 53), (29, 41))])
        return [
            {"x": x, "out": o, "mode": m, "padding_mode": p, "align_corners": a}
            for (x, o), m, p, a in itertools.product(shapes, MODES, PADDINGS, (0, 1))
        ]
    if op == "AffineGridSample":
        shapes = [((2, 3, 5, 7), (3, 9))] + ([] if dry else [((2, 4, 33, 47), (31, 45))])
        out = []
        for (x, o), m, p, a in itertools.product(shapes, MODES, PADDINGS, (0, 1)):
            # align_corners=1: odd output sizes; 0: the input's size (out_h = out_w = 0), as the CPU grid.
            out.append({"x": x, "out": o if a else (0, 0), "mode": m, "padding_mode": p, "align_corners": a})
        return out
    dn = [((2, 11, 5), 1e-9, 3.0), ((1, 97, 64), 1e-9, 8.0), ((3, 1, 7), 1e-3, 1.0), ((2, 33, 130), 0.5, 2.0)]
    if not dry:
        dn += [((2, 3136, 64), 1e-9, 4.0), ((1, 2049, 49), 1e-6, 8.0)]  # several 1024-row programs per item
    return [{"shape": s, "eps": e, "scale": k} for s, e, k in dn]


def _run_case(op: str, case: dict[str, Any], dtype: str, device: str) -> dict[str, Any]:
    """Kernel output, NumPy reference and torch's op (computed in FP32 from the same data, rounded to dtype)."""
    import torch
    import torch.nn.functional as F

    np_dt = np.dtype(dtype)
    tdt = torch.float16 if dtype == "float16" else torch.float32
    rng = np.random.default_rng(_seed(op, sorted(case.items()), dtype))
    native: np.ndarray | None = None
    if op == "DoubleNorm":
        from attnx.plugins.double_norm import kernel as dn_kernel

        a = (rng.standard_normal(case["shape"]) * case["scale"]).astype(np_dt)
        eps = case["eps"]
        ref = REFERENCES[op](a, eps)
        out = dn_kernel.run(torch.from_numpy(a).to(device), eps).cpu().numpy()

        def torch_op(t: torch.Tensor) -> torch.Tensor:
            s = torch.softmax(t, dim=1)
            return s / (eps + s.sum(dim=2, keepdim=True))

        ta = torch.from_numpy(a).to(device)
        theirs = torch_op(ta.float()).to(tdt).cpu().numpy()
        if dtype == "float16":
            native = torch_op(ta).cpu().numpy()
        scale = float(np.max(np.abs(ref.astype(np.float32))) or 1.0)  # outputs are mostly O(1/S)
        return {"out": out, "ref": ref, "torch": theirs, "native": native, "scale": scale}
    attrs = {k: case[k] for k in ("mode", "padding_mode", "align_corners")}
    x = rng.standard_normal(case["x"]).astype(np_dt)
    xt = torch.from_numpy(x).to(device)
    n, c = case["x"][:2]
    if op == "GridSample":
        from attnx.plugins.grid_sample import kernel as gs_kernel

        grid = _grid_points(rng, n, *case["out"]).astype(np_dt)
        ref = REFERENCES[op](x, grid, **attrs)
        gt = torch.from_numpy(grid).to(device)
        out = gs_kernel.run(xt, gt, **attrs).cpu().numpy()

        def sample(xx: torch.Tensor, gg: torch.Tensor) -> torch.Tensor:
            return F.grid_sample(xx, gg, mode=attrs["mode"], padding_mode=attrs["padding_mode"],
                                 align_corners=bool(attrs["align_corners"]))  # fmt: skip

        theirs = sample(xt.float(), gt.float()).to(tdt).cpu().numpy()
        if dtype == "float16":
            with contextlib.suppress(RuntimeError):  # not every device has every FP16 sampler
                native = sample(xt, gt).cpu().numpy()
    else:
        from attnx.plugins.affine_grid_sample import kernel as ags_kernel

        theta = (np.eye(2, 3, dtype=np.float32)[None] * 1.2 + rng.uniform(-0.6, 0.6, (n, 2, 3))).astype(np_dt)
        oh, ow = case["out"]
        ref = REFERENCES[op](x, theta, out_h=oh, out_w=ow, **attrs)
        tt = torch.from_numpy(theta).to(device)
        out = ags_kernel.run(xt, tt, oh, ow, **attrs).cpu().numpy()
        size = [n, c, oh or case["x"][2], ow or case["x"][3]]

        def stn(xx: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
            g = F.affine_grid(th, size, align_corners=bool(attrs["align_corners"]))
            return F.grid_sample(xx, g, mode=attrs["mode"], padding_mode=attrs["padding_mode"],
                                 align_corners=bool(attrs["align_corners"]))  # fmt: skip

        theirs = stn(xt.float(), tt.float()).to(tdt).cpu().numpy()
        if dtype == "float16":
            with contextlib.suppress(RuntimeError):
                native = stn(xt, tt).cpu().numpy()
    return {"out": out, "ref": ref, "torch": theirs, "native": native, "scale": 1.0}


def section_numerics(report: Report, ops: list[str], dry: bool, device: str) -> None:
    """Every case of ``ops`` (``dry``: the small shapes only), fp32 and fp16, on ``device`` (cuda | cpu): the kernel's
    max abs error against the NumPy reference (TOL) and torch's op (TORCH_TOL; nearest mode lets
    NEAREST_FLIP_FRACTION of the pixels pick the neighbour). A case that raises is a failed check.
    """
    for op in ops:
        for case, dtype in itertools.product(_cases(op, dry), DTYPES):
            label = {k: (list(v) if isinstance(v, tuple) else v) for k, v in case.items()}
            try:
                r = _run_case(op, case, dtype, device)
            except Exception as exc:  # one broken case must not hide the others
                report.check("numerics", False, op=op, dtype=dtype, case=label, error=repr(exc)[:500])
                continue
            tol, ttol = TOL[dtype] * r["scale"], TORCH_TOL[dtype] * r["scale"]
            err_ref = _max_err(r["out"], r["ref"])
            ok_ref = r["out"].dtype == r["ref"].dtype and err_ref <= tol
            err_torch = _max_err(r["out"], r["torch"])
            ok_torch = err_torch <= ttol
            flips = 0
            if not ok_torch and case.get("mode") == "nearest" and r["out"].shape == r["torch"].shape:
                flips = int(np.sum(np.abs(r["out"].astype(np.float64) - r["torch"].astype(np.float64)) > ttol))
                ok_torch = flips <= max(1, int(NEAREST_FLIP_FRACTION * r["out"].size))
            entry: dict[str, Any] = {
                "op": op,
                "dtype": dtype,
                "case": label,
                "device": device,
                "max_err_ref": err_ref,
                "tol_ref": tol,
                "max_err_torch": err_torch,
                "tol_torch": ttol,
                "ok_ref": ok_ref,
                "ok_torch": ok_torch,
            }
            if flips:
                entry["nearest_flips_vs_torch"] = flips
            if r["native"] is not None:  # torch's own FP16 path, information only
                entry["max_err_torch_native_fp16"] = _max_err(r["out"], r["native"])
            report.check("numerics", ok_ref and ok_torch, **entry)


# -------------------------------------------------------------------------------------------------
# 2. timing


def _median_us(fn: Callable[[], Any]) -> float:
    from triton.testing import do_bench

    try:
        ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
    except TypeError:  # older signature
        ms = do_bench(fn, warmup=25, rep=100, quantiles=[0.5])
    return float(ms[0] if isinstance(ms, (list, tuple)) else ms) * 1e3


def _peak_copy_bytes_per_s() -> dict[str, Any]:
    """Device-to-device copy (read + write) at two sizes; the larger rate is the peak used for bounds."""
    import torch

    best = {"bytes_per_s": 0.0}
    for mib in (256, 1024):
        a = torch.empty(mib << 18, dtype=torch.float32, device="cuda").uniform_()
        b = torch.empty_like(a)
        us = _median_us(functools.partial(torch.Tensor.copy_, b, a))
        rate = 2 * a.nbytes / (us * 1e-6)
        if rate > best["bytes_per_s"]:
            best = {"bytes_per_s": rate, "copy_mib": mib, "median_us": us}
        del a, b
    torch.cuda.empty_cache()
    return best


def _bench_cases(ops: list[str]) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    if "GridSample" in ops:
        for shape, mode, dtype in itertools.product(((1, 64, 56, 56), (8, 256, 64, 64)), MODES, DTYPES):
            cases.append({"op": "GridSample", "shape": shape, "mode": mode, "dtype": dtype,
                          "large": shape[0] == 8})  # fmt: skip
    if "AffineGridSample" in ops:
        for n, dtype in itertools.product((1, 8), DTYPES):
            cases.append({"op": "AffineGridSample", "shape": (n, 3, 224, 224), "mode": "bilinear", "dtype": dtype,
                          "large": n == 8})  # fmt: skip
    if "DoubleNorm" in ops:
        for n, dtype in itertools.product((1, 8), DTYPES):
            cases.append({"op": "DoubleNorm", "shape": (n, 56 * 56, 64), "dtype": dtype, "large": n == 8})
    return cases


def _bench_fns(case: dict[str, Any], dev: str = "cuda") -> tuple[Callable[[], Any], Callable[[], Any], int]:
    """(kernel call, torch call, bytes that must move: every input read once, the output written once)."""
    import torch
    import torch.nn.functional as F

    tdt = torch.float16 if case["dtype"] == "float16" else torch.float32
    gen = torch.Generator(device=dev).manual_seed(0)
    es = 2 if case["dtype"] == "float16" else 4
    if case["op"] == "DoubleNorm":
        from attnx.plugins.double_norm import kernel as dn_kernel

        a = (torch.randn(case["shape"], device=dev, generator=gen) * 4).to(tdt)

        def torch_dn() -> torch.Tensor:
            s = torch.softmax(a, dim=1)
            return s / (1e-9 + s.sum(dim=2, keepdim=True))

        return (lambda: dn_kernel.run(a, 1e-9)), torch_dn, 2 * a.numel() * es
    n, c, h, w = case["shape"]
    x = torch.randn(case["shape"], device=dev, generator=gen).to(tdt)
    out_bytes = x.numel() * es
    if case["op"] == "GridSample":
        from attnx.plugins.grid_sample import kernel as gs_kernel

        # A flow/deformable-style grid: identity plus a few pixels of offset (not a random gather).
        ident = torch.eye(2, 3, device=dev).expand(n, 2, 3)
        base = F.affine_grid(ident, [n, c, h, w], align_corners=False)
        offset = torch.randn(base.shape, device=dev, generator=gen) * 2.0 / torch.tensor([w, h], device=dev)
        grid = (base + offset).to(tdt).contiguous()
        mode = case["mode"]
        return (
            lambda: gs_kernel.run(x, grid, mode=mode),
            lambda: F.grid_sample(x, grid, mode=mode, align_corners=False),
            x.numel() * es + grid.numel() * es + out_bytes,
        )
    from attnx.plugins.affine_grid_sample import kernel as ags_kernel

    ang = torch.rand(n, device=dev, generator=gen) * 0.35 - 0.17  # STN: small rotation, zoom, shift
    cos, sin = torch.cos(ang) * 0.9, torch.sin(ang) * 0.9
    shift = torch.rand(n, 2, device=dev, generator=gen) * 0.2 - 0.1
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    theta = theta.to(tdt).contiguous()

    def torch_stn() -> torch.Tensor:
        g = F.affine_grid(theta, [n, c, h, w], align_corners=False)
        return F.grid_sample(x, g, mode="bilinear", align_corners=False)

    return (lambda: ags_kernel.run(x, theta)), torch_stn, x.numel() * es + theta.numel() * es + out_bytes


def section_timing(report: Report, ops: list[str]) -> None:
    """Time each op at deployment sizes on the GPU (median of CUDA events, µs) against the bandwidth bound (bytes that
    must move / the device-to-device copy rate measured first, bytes/s) and torch's op. The larger cases record
    whether they meet TARGET_BOUND_RATIO x the bound; only a case that raises fails.
    """
    peak = _peak_copy_bytes_per_s()
    sec = report.section("timing")
    sec["peak"] = peak
    sec["target"] = f"kernel median <= {TARGET_BOUND_RATIO}x the bandwidth bound at the larger sizes"
    for case in _bench_cases(ops):
        label = {k: (list(v) if isinstance(v, tuple) else v) for k, v in case.items()}
        try:
            kernel_fn, torch_fn, nbytes = _bench_fns(case)
            kernel_fn()  # compile outside the timed runs
            us = _median_us(kernel_fn)
            torch_us = _median_us(torch_fn)
        except Exception as exc:
            report.check("timing", False, **label, error=repr(exc)[:500])
            continue
        bound_us = nbytes / peak["bytes_per_s"] * 1e6
        entry = {
            **label,
            "median_us": us,
            "bytes": nbytes,
            "bytes_per_s": nbytes / (us * 1e-6),
            "bound_us": bound_us,
            "x_bound": us / bound_us,
            "torch_median_us": torch_us,
            "ratio_to_torch": us / torch_us,
        }
        if case["large"]:
            entry["meets_target"] = us <= TARGET_BOUND_RATIO * bound_us
        report.check("timing", True, **entry)  # a target, not a pass/fail check


# -------------------------------------------------------------------------------------------------
# 3. cuda-python buffers, streams and the runtime's copies


COUNTED = ("cudaMalloc", "cudaFree", "cudaMallocHost", "cudaFreeHost", "cudaStreamCreateWithFlags",
           "cudaStreamDestroy", "cudaEventCreate", "cudaEventDestroy", "cudaGraphInstantiate",
           "cudaGraphExecDestroy")  # fmt: skip
PAIRS = (("cudaMalloc", "cudaFree"), ("cudaMallocHost", "cudaFreeHost"),
         ("cudaStreamCreateWithFlags", "cudaStreamDestroy"), ("cudaEventCreate", "cudaEventDestroy"),
         ("cudaGraphInstantiate", "cudaGraphExecDestroy"))  # fmt: skip


class CountingCudart:
    """Wraps the bindings module; counts successful allocating and freeing calls."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.counts: dict[str, int] = dict.fromkeys(COUNTED, 0)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in COUNTED:
            return attr

        def counted(*args: Any) -> Any:
            res = attr(*args)
            if int(res[0] if isinstance(res, tuple) else res) == 0:
                self.counts[name] += 1
            return res

        return counted

    def unbalanced(self) -> dict[str, int]:
        """Allocating call → its surplus over the matching freeing call (PAIRS), for each pair that does not balance."""
        return {a: self.counts[a] - self.counts[b] for a, b in PAIRS if self.counts[a] != self.counts[b]}


def _mem_free(rt: Any) -> int:
    from attnx.deploy.backends.tensorrt import cuda_mem

    free, _total = cuda_mem.check(rt.cudaMemGetInfo(), "cudaMemGetInfo")
    return int(free)


def _copy_d2d(rt: Any, dst: int, src: int, nbytes: int, stream: Any) -> None:
    from attnx.deploy.backends.tensorrt import cuda_mem

    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
    cuda_mem.check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(device→device)")


def _round_trip(nbytes: int, seed: int, pinned: bool = True) -> tuple[bool, float, float]:
    """Host → device → device (a second buffer) → host on one stream; (data intact, H2D ms, D2H ms)."""
    from attnx.deploy.backends.tensorrt import cuda_mem

    rt = cuda_mem.cudart()
    count = nbytes // 4
    src_h, dst_h = cuda_mem.PinnedBuffer(nbytes), cuda_mem.PinnedBuffer(nbytes)
    a, b = cuda_mem.DeviceBuffer(nbytes), cuda_mem.DeviceBuffer(nbytes)
    stream = cuda_mem.Stream()
    events = [cuda_mem.Event() for _ in range(4)]
    try:
        data = np.random.default_rng(seed).standard_normal(count).astype(np.float32)
        if pinned:
            src = src_h.view(np.float32, (count,))
            np.copyto(src, data)
            out = dst_h.view(np.float32, (count,))
        else:  # pageable host memory: the runtime's pinned=False path
            src, out = data, np.empty(count, np.float32)
        out[:] = 0
        events[0].record(stream)
        cuda_mem.copy_htod_async(a.ptr, src.ctypes.data, nbytes, stream)
        events[1].record(stream)
        _copy_d2d(rt, b.ptr, a.ptr, nbytes, stream.obj)
        events[2].record(stream)
        cuda_mem.copy_dtoh_async(out.ctypes.data, b.ptr, nbytes, stream)
        events[3].record(stream)
        stream.synchronize()
        ok = bool(np.array_equal(out, data))
        return ok, events[0].elapsed_ms(events[1]), events[2].elapsed_ms(events[3])
    finally:
        for e in events:
            e.destroy()
        stream.destroy()
        for buf in (a, b, src_h, dst_h):
            buf.free()


def _graph_replay(nbytes: int) -> bool:
    """cuda_mem.CudaGraph: capture a device-to-device copy, replay it on new data."""
    from attnx.deploy.backends.tensorrt import cuda_mem

    rt = cuda_mem.cudart()
    count = nbytes // 4
    host = cuda_mem.PinnedBuffer(nbytes)
    a, b = cuda_mem.DeviceBuffer(nbytes), cuda_mem.DeviceBuffer(nbytes)
    stream = cuda_mem.Stream()
    graph = cuda_mem.CudaGraph()
    try:
        graph.begin(stream)
        try:
            _copy_d2d(rt, b.ptr, a.ptr, nbytes, stream.obj)
        finally:
            captured = graph.end(stream)
        if not captured:
            return False
        ok = True
        view = host.view(np.float32, (count,))
        for k in range(3):
            data = np.full(count, k + 0.5, np.float32)
            np.copyto(view, data)
            cuda_mem.copy_htod_async(a.ptr, host.ptr, nbytes, stream)
            graph.launch(stream)
            view[:] = 0
            cuda_mem.copy_dtoh_async(host.ptr, b.ptr, nbytes, stream)
            stream.synchronize()
            ok = ok and bool(np.array_equal(view, data))
        return ok
    finally:
        graph.destroy()
        stream.destroy()
        for buf in (a, b, host):
            buf.free()


@contextlib.contextmanager
def counting_cudart() -> Iterator[CountingCudart]:
    """Route :mod:`~attnx.deploy.backends.tensorrt.cuda_mem`'s CUDA calls through a :class:`CountingCudart` (yielded)
    for the ``with`` block; the previous bindings are restored after it.
    """
    from attnx.deploy.backends.tensorrt import cuda_mem

    counter = CountingCudart(cuda_mem.cudart())
    old = cuda_mem.use_cudart(counter)
    try:
        yield counter
    finally:
        cuda_mem.use_cudart(old)


def section_cuda_mem(report: Report, loops: int, nbytes: int) -> None:
    """:mod:`~attnx.deploy.backends.tensorrt.cuda_mem` on GPU 0: pinned and pageable H2D → D2D → D2H round trips of
    about ``nbytes`` bytes (H2D / D2H GB/s), a CUDA graph replay, DeviceBuffer growth, then ``loops`` round trips
    checked for a device memory leak (cudaMemGetInfo, LEAK_TOLERANCE_BYTES) and unbalanced allocate/free calls.
    """
    from attnx.deploy.backends.tensorrt import cuda_mem

    report.section("cuda_mem")["device"] = cuda_mem.device_info(0)
    cuda_mem.set_device(0)
    with counting_cudart() as rt:
        ok, h2d, d2h = _round_trip(nbytes, 0)  # warm-up: lazy driver allocations happen here
        report.check("cuda_mem", ok, check="pinned round trip H2D → D2D → D2H", bytes=nbytes,
                     h2d_gb_s=nbytes / (h2d * 1e6) if h2d else None,
                     d2h_gb_s=nbytes / (d2h * 1e6) if d2h else None)  # fmt: skip
        ok, _, _ = _round_trip(nbytes // 2 + 4, 1, pinned=False)
        report.check("cuda_mem", ok, check="pageable round trip", bytes=nbytes // 2 + 4)
        report.check("cuda_mem", _graph_replay(1 << 20), check="CUDA graph capture and replay of a copy")
        grow = cuda_mem.DeviceBuffer(1024)
        moved = grow.ensure(512) is False and grow.ensure(1 << 20) is True and grow.nbytes == 1 << 20
        grow.free()
        report.check("cuda_mem", moved, check="DeviceBuffer.ensure grows only when needed")
        before = _mem_free(rt)
        t0 = time.perf_counter()
        bad = 0
        for i in range(loops):
            ok, _, _ = _round_trip(nbytes // 8 + 4096 * (i % 7), i, pinned=bool(i % 2))
            bad += not ok
        after = _mem_free(rt)
        report.check("cuda_mem", bad == 0, check=f"{loops} round trips (alloc, copy, sync, free)", failures=bad,
                     seconds=time.perf_counter() - t0)  # fmt: skip
        report.check("cuda_mem", abs(before - after) <= LEAK_TOLERANCE_BYTES, check="no device memory leak",
                     free_before=before, free_after=after, leaked_bytes=before - after)  # fmt: skip
        unbalanced = rt.unbalanced()
        report.check("cuda_mem", not unbalanced, check="every allocation freed, every stream/event/graph destroyed",
                     counts=dict(rt.counts), unbalanced=unbalanced)  # fmt: skip


def _deploy(name: str) -> Any:
    # Imported by name: a static import would pull attnx.deploy.bundle.manifest's own imports (exporters, ...) into the
    # `mypy plugins` run of `make typecheck`; deploy/backends/tensorrt/ is type-checked there on its own.
    return importlib.import_module(name)


# TensorRT is not installed on the GPU machines (its wheels cannot be fetched there): the runtime section runs
# attnx's TensorRT runner against the one TensorRT fake (attnx.deploy.backends.tensorrt._fake, which the tests
# use too), with a plan whose output is a "copy" of its input: a device-to-device cudaMemcpyAsync enqueued on
# the runner's stream through the real CUDA runtime, so it runs on the device and is captured in CUDA graphs.
STAND_IN_VERSION = "10.9.0.0"


@contextlib.contextmanager
def stand_in_tensorrt() -> Iterator[None]:
    """``import tensorrt`` gives the fake (engines running on this process's CUDA runtime) while in use."""
    from attnx.deploy.backends.tensorrt import _fake, cuda_mem

    rt_mod = _deploy("attnx.deploy.backends.tensorrt.util")
    names = ("tensorrt", "tensorrt.plugin")
    saved = {name: sys.modules.get(name) for name in names}
    trt = _fake.fake_tensorrt(STAND_IN_VERSION, cudart=cuda_mem.cudart())
    sys.modules.update({"tensorrt": trt, "tensorrt.plugin": trt.plugin})
    rt_mod._LOGGER = None
    try:
        yield
    finally:
        rt_mod._LOGGER = None
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _stand_in_bundle(folder: Path, dtype: str, shape_max: tuple[int, ...], cc: str) -> Any:
    from attnx.deploy.backends.tensorrt._fake import plan_bytes

    bundle = _deploy("attnx.deploy.bundle.manifest")
    IOSpec, Manifest = bundle.IOSpec, bundle.Manifest  # noqa: N806
    trt_dtype = {"float32": "FLOAT", "float16": "HALF"}[dtype]
    x = {"name": "x", "dtype": trt_dtype, "shape": [-1, *shape_max[1:]], "min": [1, *shape_max[1:]],
         "max": list(shape_max)}  # fmt: skip
    plan = plan_bytes([x], [{"name": "y", "dtype": trt_dtype, "of": "x", "op": "copy"}])
    (folder / "engine.plan").write_bytes(plan)
    dims: list[Any] = ["batch", *shape_max[1:]]
    return Manifest(
        backend="trt",
        precision="fp32",
        source={"model": "gpu_check_stand_in"},
        opset=17,
        inputs=[IOSpec("x", dtype, dims)],
        outputs=[IOSpec("y", dtype, dims)],
        files={"engine": "engine.plan"},
        device={"kind": "cuda", "compute_capability": cc},
        build={"tensorrt_version": STAND_IN_VERSION, "plan_bytes": len(plan)},
    )


def section_runtime(report: Report, loops: int, torch_cuda: bool) -> None:
    """The TensorRT runner on GPU 0 with the fake TensorRT (its engine copies x to y): each dtype x pinned/pageable x
    CUDA graph on/off for ``loops`` calls (y must equal x), then a device memory leak and unbalanced CUDA calls;
    with ``torch_cuda``, ``infer_device`` on torch CUDA tensors ordered with torch's stream.
    """
    from attnx.deploy.backends.tensorrt import cuda_mem

    trt_runner = _deploy("attnx.deploy.backends.tensorrt.runner")

    def open_stand_in(folder: Path, manifest: Any, **options: Any) -> Any:  # the runner, as the bundle layer opens it
        info = trt_runner.TrtPlanInfo.from_record(manifest.to_dict(), folder)
        return trt_runner.TrtRunner.from_bundle_files(folder / "engine.plan", info, **options)

    cuda_mem.set_device(0)
    cc = cuda_mem.device_info(0)["compute_capability"]
    shape_max = (8, 3, 64, 64)
    with tempfile.TemporaryDirectory() as tmp, stand_in_tensorrt(), counting_cudart() as rt:
        configs = [(d, p, g) for d in DTYPES for p in (True, False) for g in (False, True)]
        before = None
        for warm in (True, False):  # the first pass pays the driver's lazy allocations
            if not warm:
                before = _mem_free(rt)
            for dtype, pinned, graph in configs:
                manifest = _stand_in_bundle(Path(tmp), dtype, shape_max, cc)
                bad = 0
                with open_stand_in(Path(tmp), manifest, pool_size=2, cuda_graph=graph, pinned=pinned) as runtime:
                    for i in range(loops if not warm else 2):
                        n = 1 + i % shape_max[0]
                        x = np.random.default_rng(i).standard_normal((n, *shape_max[1:])).astype(dtype)
                        y = runtime.infer({"x": x})["y"]
                        bad += not (y.shape == x.shape and np.array_equal(y, x))
                    _, times = runtime.infer_timed({"x": x})
                    info = runtime.info
                if not warm:
                    report.check("runtime", bad == 0, check="TrtRunner.infer copies (fake engine: y = x)",
                                 dtype=dtype, pinned=pinned, cuda_graph=graph, calls=loops, failures=bad,
                                 times_ms=times, graphs_captured=info["cuda_graphs_captured"])  # fmt: skip
        after = _mem_free(rt)
        assert before is not None
        report.check("runtime", abs(before - after) <= LEAK_TOLERANCE_BYTES,
                     check="no device memory leak over runtime create/run/close",
                     free_before=before, free_after=after, leaked_bytes=before - after)  # fmt: skip
        unbalanced = rt.unbalanced()
        report.check("runtime", not unbalanced, check="close() frees every buffer, stream, event and graph",
                     counts=dict(rt.counts), unbalanced=unbalanced)  # fmt: skip
        if torch_cuda:
            import torch

            manifest = _stand_in_bundle(Path(tmp), "float32", shape_max, cc)
            with open_stand_in(Path(tmp), manifest, pool_size=1) as runtime:
                ok = True
                for i in range(5):
                    t = torch.randn((1 + i, *shape_max[1:]), device="cuda") * (i + 1)
                    yt = runtime.infer_device({"x": t * 2})["y"]  # ordered after torch's multiply, before its compare
                    ok = ok and bool(torch.equal(yt, t * 2))
            report.check("runtime", ok, check="TrtRunner.infer_device orders with torch's stream")


# -------------------------------------------------------------------------------------------------
# Environment, output


def _env(cuda: bool) -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "triton_interpret": os.environ.get("TRITON_INTERPRET", "0")}  # fmt: skip
    from importlib import metadata

    for pkg in ("torch", "triton", "numpy", "cuda-bindings", "cuda-python", "onnx", "onnxruntime", "tensorrt"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            env[pkg] = metadata.version(pkg)
    if cuda:
        import torch

        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, compute_capability=f"{props.major}.{props.minor}",
                   sm_count=props.multi_processor_count, memory_gib=round(props.total_memory / 2**30, 1),
                   torch_cuda=torch.version.cuda)  # fmt: skip
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)  # fmt: skip
            env["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, IndexError):
            env["driver"] = None
        with contextlib.suppress(Exception):
            from attnx.deploy.backends.tensorrt import cuda_mem

            info = cuda_mem.device_info(0)
            env.update(cuda_driver_api=info["driver_version"], cuda_runtime=info["cuda_runtime_version"])
    return env


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the table is for everyone
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "–" if v is None else format(v, spec)


def markdown(data: dict[str, Any]) -> str:
    """``data`` (``Report.data``) as a Markdown page: verdict and environment, section statuses, numerics per op and
    dtype, the timing table, and each cuda_mem / runtime check.
    """
    env = data["env"]
    lines = [
        f"# attnx GPU check ({data['mode']}): {'PASS' if data['ok'] else 'FAIL'}",
        "",
        f"GPU {env.get('gpu', 'none')}, driver {env.get('driver', '–')}, torch {env.get('torch')} "
        f"(CUDA {env.get('torch_cuda', '–')}), triton {env.get('triton')}, cuda-bindings "
        f"{env.get('cuda-bindings', env.get('cuda-python', '–'))}, Python {env.get('python')}; "
        f"{data.get('seconds', 0):.0f} s.",
        "",
    ]
    secs = data["sections"]
    lines += ["| section | status |", "|---|---|"] + [f"| {k} | {v['status']} |" for k, v in secs.items()] + [""]
    num = secs.get("numerics", {}).get("checks", [])
    if num:
        lines += ["## Numerics: max |kernel − x| over each op's cases", "",
                  "| op | dtype | cases | vs NumPy reference (tol) | vs torch op (tol) | torch native fp16 | failed |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for c in num:
            groups.setdefault((c["op"], c["dtype"]), []).append(c)
        for (op, dt), cs in groups.items():

            def mx(key: str, cs: list[dict[str, Any]] = cs) -> float | None:
                vals = [c[key] for c in cs if key in c]
                return max(vals) if vals else None

            lines.append(f"| {op} | {dt} | {len(cs)} | {_fmt(mx('max_err_ref'))} ({_fmt(mx('tol_ref'))}) | "
                         f"{_fmt(mx('max_err_torch'))} ({_fmt(mx('tol_torch'))}) | "
                         f"{_fmt(mx('max_err_torch_native_fp16'))} | {sum(not c['ok'] for c in cs)} |")  # fmt: skip
        lines.append("")
    tim = secs.get("timing", {})
    if tim.get("checks"):
        peak = tim["peak"]
        lines += [f"## Timing (median of CUDA events; peak {peak['bytes_per_s'] / 1e12:.2f} TB/s measured by a "
                  f"{peak['copy_mib']} MiB device-to-device copy)", "",
                  "| op | shape | mode | dtype | µs | GB/s | bound µs | × bound | torch µs | × torch | target |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in tim["checks"]:
            if "error" in c:
                lines.append(f"| {c['op']} | {'×'.join(map(str, c['shape']))} | {c.get('mode', '')} | {c['dtype']} "
                             f"| error: {c['error'][:80]} |||||||")  # fmt: skip
                continue
            target = "" if "meets_target" not in c else ("met" if c["meets_target"] else "missed")
            lines.append(f"| {c['op']} | {'×'.join(map(str, c['shape']))} | {c.get('mode', '')} | {c['dtype']} | "
                         f"{c['median_us']:.1f} | {c['bytes_per_s'] / 1e9:.0f} | {c['bound_us']:.1f} | "
                         f"{c['x_bound']:.2f} | {c['torch_median_us']:.1f} | {c['ratio_to_torch']:.2f} | "
                         f"{target} |")  # fmt: skip
        lines.append("")
    for name in ("cuda_mem", "runtime"):
        checks = secs.get(name, {}).get("checks", [])
        if checks:
            lines += [f"## {name}", ""]
            for c in checks:
                extra = {k: v for k, v in c.items() if k not in ("ok", "check", "counts", "times_ms")}
                lines.append(f"- {'ok' if c['ok'] else 'FAIL'}: {c.get('check')} {json.dumps(extra, default=str)}")
            lines.append("")
    return "\n".join(lines)


def write(out: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``out``/gpu_check.json and its Markdown to ``out``/gpu_check.md, each atomically; if the
    Markdown cannot be rendered, that page says so and points to the JSON.
    """
    _atomic_write(out / "gpu_check.json", json.dumps(data, indent=1, default=str) + "\n")
    try:
        text = markdown(data)
    except Exception as exc:  # the JSON holds everything; never lose a GPU run to a formatting bug
        text = f"# attnx GPU check: the table could not be rendered ({exc!r}); see gpu_check.json"
    _atomic_write(out / "gpu_check.md", text + "\n")


# -------------------------------------------------------------------------------------------------


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def run(out: Path, dry: bool, ops: list[str], sections: list[str], loops: int | None = None) -> dict[str, Any]:
    """Run the selected sections, write the JSON and Markdown into ``out``; returns the report's data."""
    if dry:
        if "triton" not in sys.modules:
            os.environ["TRITON_INTERPRET"] = "1"
        from attnx.plugins._triton import interpreting

        if not interpreting():
            raise RuntimeError("--dry needs TRITON_INTERPRET=1 before triton is imported")
    elif os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
        raise RuntimeError("unset TRITON_INTERPRET: the GPU check compiles the kernels (use --dry on a CPU)")
    if not REFERENCES:
        REFERENCES.update(_references())
    t0 = time.perf_counter()
    cuda = not dry and _cuda_available()
    report = Report("dry" if dry else "gpu")
    report.data["env"] = _env(cuda)
    report.data["launch_options"] = dict(LAUNCH_OPTIONS)
    no_cuda = "no CUDA (--dry)" if dry else "no CUDA"
    steps: dict[str, Callable[[], None]] = {
        "numerics": lambda: section_numerics(report, ops, dry, "cuda" if cuda else "cpu"),
        "timing": lambda: section_timing(report, ops),
        "cuda_mem": lambda: section_cuda_mem(report, loops or 200, 64 << 20),
        "runtime": lambda: section_runtime(report, loops or 50, cuda),
    }
    for name in sections:
        if not cuda and (name != "numerics" or not dry):
            report.skip(name, no_cuda)
            continue
        s0 = time.perf_counter()
        try:
            with _launch_options(LAUNCH_OPTIONS):  # the interpreter accepts (and ignores) them too
                steps[name]()
        except Exception as exc:
            report.error(name, exc)
        report.section(name)["seconds"] = round(time.perf_counter() - s0, 2)
        report.data["seconds"] = round(time.perf_counter() - t0, 2)
        write(out, report.data)  # after each section: a timed-out run still leaves what it measured
    if not dry and not cuda:
        report.data["ok"] = False
        report.data["note"] = "no CUDA device: nothing was checked (use --dry on a CPU)"
    report.data["seconds"] = round(time.perf_counter() - t0, 2)
    write(out, report.data)
    return report.data


def _list(value: str, allowed: tuple[str, ...]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attnx.deploy.tools.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--dry", action="store_true", help="CPU: Triton interpreter, tiny sizes, numerics only")
    p.add_argument("--ops", type=lambda v: _list(v, OPS), default=list(OPS), help=f"comma list of {', '.join(OPS)}")
    p.add_argument("--sections", type=lambda v: _list(v, SECTIONS), default=list(SECTIONS),
                   help=f"comma list of {', '.join(SECTIONS)}")  # fmt: skip
    p.add_argument("--loops", type=int, default=None, help="memory/runtime loop count (default 200 / 50)")
    args = p.parse_args(argv)
    data = run(args.out, args.dry, args.ops, args.sections, args.loops)
    failed = [f"{k}: {v['status']}" for k, v in data["sections"].items() if not v["status"].startswith(("ok", "skip"))]
    print(f"gpu-check ({data['mode']}): {'PASS' if data['ok'] else 'FAIL'} in {data['seconds']:.1f} s; "
          + "; ".join(f"{k} {v['status']} ({len(v['checks'])} checks)" for k, v in data["sections"].items())
          + f"; wrote {args.out / 'gpu_check.json'} and gpu_check.md")  # fmt: skip
    for line in failed:
        print("  " + line, file=sys.stderr)
    if data.get("note"):
        print("  " + data["note"], file=sys.stderr)
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
