"""Ahead-of-time compilation of every attnx Triton kernel for sm_80 and sm_90 (no GPU needed).

    python -m attnx.deploy.tools.plugin_aot                   # a representative variant per op, FP32 + FP16
    python -m attnx.deploy.tools.plugin_aot --all             # every mode x padding x align_corners variant
    python -m attnx.deploy.tools.plugin_aot --json --out DIR  # machine-readable sizes; PTX and cubin files in DIR

The table reports each variant's PTX size (what the plugin hands TensorRT) and cubin size (what ptxas makes
of it for that architecture); see :mod:`attnx.plugins.aot`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict

from attnx.plugins.aot import ARCHS, DTYPES, compile_all, format_table


def main(argv: Sequence[str] | None = None) -> int:
    """Compile and print the table (or JSON). Returns the exit code: 0, or 2 when TRITON_INTERPRET is set
    (the interpreter cannot compile kernels)."""
    p = argparse.ArgumentParser(prog="python -m attnx.deploy.tools.plugin_aot", description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="compute capabilities (80 90)")
    p.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=DTYPES)
    p.add_argument("--all", action="store_true", help="every attribute variant, not one per op")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", help="write each kernel's .ptx and .cubin here")
    args = p.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("attnx.deploy.tools.plugin_aot: unset TRITON_INTERPRET (the interpreter cannot compile kernels)",
              file=sys.stderr)  # fmt: skip
        return 2
    builds = compile_all(args.arch, args.dtype, args.all, args.out)
    if args.json:
        print(json.dumps([asdict(b) for b in builds], indent=1))
    else:
        print(format_table(builds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
