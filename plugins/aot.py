"""Ahead-of-time compilation of every attnx Triton kernel for sm_80 and sm_90 (no GPU needed).

    python -m attnx.plugins.aot                 # representative variant per op, FP32 + FP16, sm_80 + sm_90
    python -m attnx.plugins.aot --all           # every mode x padding x align_corners variant
    python -m attnx.plugins.aot --json --out DIR  # machine-readable sizes; PTX and cubin files in DIR

Kernels are specialised on their attributes (TensorRT compiles the variant a node needs at engine
build); the table reports the size of each variant's PTX (what the plugin hands TensorRT) and
cubin (what ptxas makes of it for that architecture).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ARCHS = (80, 90)
DTYPES = ("float32", "float16")


@dataclass
class KernelBuild:
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
    from attnx.plugins.grid_sample.spec import MODES, PADDING_MODES

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
    from attnx.plugins.spec import ops

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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attnx.plugins.aot", description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="compute capabilities (80 90)")
    p.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=DTYPES)
    p.add_argument("--all", action="store_true", help="every attribute variant, not one per op")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", help="write each kernel's .ptx and .cubin here")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("attnx.plugins.aot: unset TRITON_INTERPRET (the interpreter cannot compile kernels)", file=sys.stderr)
        return 2
    builds = compile_all(args.arch, args.dtype, args.all, args.out)
    if args.json:
        print(json.dumps([asdict(b) for b in builds], indent=1))
    else:
        print(format_table(builds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
