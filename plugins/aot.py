"""Ahead-of-time compilation of every attnx Triton kernel for sm_80 and sm_90 (no GPU needed).

    python -m attnx.deploy.tools.plugin_aot                   # a representative variant per op, FP32 + FP16
    python -m attnx.deploy.tools.plugin_aot --all             # every mode x padding x align_corners variant
    python -m attnx.deploy.tools.plugin_aot --json --out DIR  # machine-readable sizes; PTX and cubin in DIR

Kernels are specialised on their attributes (TensorRT compiles the variant a node needs at engine
build); the table reports the size of each variant's PTX (what the plugin hands TensorRT) and
cubin (what ptxas makes of it for that architecture).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attnx.plugins.grid_sample.spec import MODES, PADDING_MODES
from attnx.plugins.registry import ops

ARCHS = (80, 90)
DTYPES = ("float32", "float16")


@dataclass
class KernelBuild:
    """One AOT-compiled kernel variant: op, attributes, dtype, architecture, PTX/cubin sizes (bytes), time (s)."""

    op: str
    variant: str
    dtype: str
    arch: str
    kernel: str
    ptx_bytes: int
    cubin_bytes: int
    num_warps: int
    shared_bytes: int
    seconds: float


def _sampling_variants(everything: bool) -> list[dict[str, Any]]:
    if not everything:
        return [{"mode": "bicubic", "padding_mode": "reflection", "align_corners": 1}]
    return [
        {"mode": m, "padding_mode": p, "align_corners": a}
        for m, p, a in itertools.product(MODES, PADDING_MODES, (0, 1))
    ]


def variants(op: str, everything: bool = False) -> list[dict[str, Any]]:
    """Attribute sets compiled for ``op`` (DoubleNorm: memory-axis sizes, which fix its tile)."""
    if op in ("GridSample", "AffineGridSample"):
        return _sampling_variants(everything)
    if op == "DoubleNorm":
        return [{"eps": 1e-9, "s": s} for s in ((16, 64, 256) if everything else (64,))]
    raise KeyError(op)


def _compile(op: str, v: dict[str, Any], dtype: str, arch: int) -> Any:
    # The kernel modules import triton: loaded only when compiling.
    if op == "GridSample":
        from attnx.plugins.grid_sample import kernel as gk

        return gk.compile_aot(dtype, v["mode"], v["padding_mode"], v["align_corners"], arch)
    if op == "AffineGridSample":
        from attnx.plugins.affine_grid_sample import kernel as ak

        return ak.compile_aot(dtype, v["mode"], v["padding_mode"], v["align_corners"], arch)
    from attnx.plugins.double_norm import kernel as dk

    return dk.compile_aot(dtype, v["eps"], v["s"], arch)


def _label(v: dict[str, Any]) -> str:
    if "s" in v:
        return f"S<={v['s']}"
    return f"{v['mode']}/{v['padding_mode']}/ac{v['align_corners']}"


def compile_all(
    archs: Sequence[int] = ARCHS,
    dtypes: Sequence[str] = DTYPES,
    everything: bool = False,
    out_dir: str | None = None,
) -> list[KernelBuild]:
    """Compile each op's variants for each dtype and architecture; optionally write .ptx/.cubin."""
    builds = []
    for op in ops():
        for v, dtype, arch in itertools.product(variants(op, everything), dtypes, archs):
            t0 = time.perf_counter()
            ck = _compile(op, v, dtype, arch)
            seconds = time.perf_counter() - t0
            target = ck.metadata.target.arch
            b = KernelBuild(
                op=op,
                variant=_label(v),
                dtype=dtype,
                arch=f"sm_{target}{'a' if target >= 90 else ''}",
                kernel=ck.metadata.name,
                ptx_bytes=len(ck.asm["ptx"].encode()),
                cubin_bytes=len(ck.asm["cubin"]),
                num_warps=ck.metadata.num_warps,
                shared_bytes=ck.metadata.shared,
                seconds=round(seconds, 3),
            )
            builds.append(b)
            if out_dir:
                stem = os.path.join(out_dir, f"{op}_{b.variant.replace('/', '_').replace('<=', 'le')}_{dtype}_{b.arch}")
                os.makedirs(out_dir, exist_ok=True)
                with open(stem + ".ptx", "w") as f:
                    f.write(ck.asm["ptx"])
                with open(stem + ".cubin", "wb") as f:
                    f.write(ck.asm["cubin"])
    return builds


def format_table(builds: Sequence[KernelBuild]) -> str:
    """Markdown table of the builds."""
    head = "| op | variant | dtype | arch | PTX bytes | cubin bytes | warps | shared | s |"
    rows = [head, "|" + "---|" * 9]
    for b in builds:
        rows.append(
            f"| {b.op} | {b.variant} | {b.dtype} | {b.arch} | {b.ptx_bytes} | {b.cubin_bytes} | "
            f"{b.num_warps} | {b.shared_bytes} | {b.seconds} |"
        )
    return "\n".join(rows)
