"""Exercise plugins/<op>/trt.py against the fake ``tensorrt.plugin`` of tests/fakes/tensorrt.py (run as a
subprocess by test_trt_plugins.py).

Needs compiled-mode Triton (no TRITON_INTERPRET). Prints one JSON object with what it observed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.fakes import tensorrt as ft  # noqa: E402

trt = ft.install()

from attnx.plugins.spec import SpecError  # noqa: E402
from attnx.plugins.trt import register_plugins  # noqa: E402

out: dict[str, object] = {"ids": register_plugins(), "ids_again": register_plugins(), "plugins": {}}
F, H = ft.DataType.FLOAT, ft.DataType.HALF


def desc(dims: tuple, dtype: ft.DataType = F, max_dims: tuple | None = None) -> ft.TensorDesc:
    return ft.TensorDesc(dims, dtype, max_dims)


def error(fn: Any, *args: Any, **kwargs: Any) -> str:
    """The SpecError message ``fn(*args, **kwargs)`` raises ("" if none)."""
    try:
        fn(*args, **kwargs)
    except SpecError as e:
        return str(e)
    return ""


CASES = {
    "attnx::GridSamplePlugin": (
        [desc((2, 3, 5, 7)), desc((2, 4, 6, 2))],
        {"mode": "bicubic", "padding_mode": "reflection", "align_corners": 1},
        [desc((2, 3, 5)), desc((2, 4, 6, 2))],
        {"mode": "area", "padding_mode": "zeros", "align_corners": 0},
    ),
    "attnx::AffineGridSamplePlugin": (
        [desc((2, 3, 5, 7)), desc((2, 2, 3))],
        {"out_h": 9, "out_w": 0, "mode": "bilinear", "padding_mode": "border", "align_corners": 0},
        [desc((2, 3, 5, 7)), desc((2, 3))],
        {"out_h": 0, "out_w": 0, "mode": "bilinear", "padding_mode": "mirror", "align_corners": 0},
    ),
    "attnx::DoubleNormPlugin": (
        [desc((2, 97, None), max_dims=(2, 97, 40))],
        {"eps": 1e-9},
        [desc((2, 97))],
        {"eps": -1.0},
    ),
}

for pid, (inputs, attrs, bad_inputs, bad_attrs) in CASES.items():
    d = trt.plugin.REGISTRY[pid]
    res = d["desc"](*inputs, **attrs)
    fake = d["desc"](*[desc((None,) * len(i.shape_expr)) for i in inputs], **attrs)  # dtype phase: fake dims
    half = d["desc"](*[desc(tuple(e.value for e in i.shape_expr), H) for i in inputs], **attrs)
    r: dict[str, object] = {
        "out_shape": [e.value for e in res.shape_expr],
        "fake_rank": len(fake.shape_expr),
        "half_dtype": half.dtype.name,
        "rank_error": error(d["desc"], *bad_inputs, **attrs),
        "attr_error": error(d["desc"], *inputs, **bad_attrs),
        "autotune": d["autotune"](*inputs, outputs=(res,))[0].io_types,
        "aot": {},
    }
    for arch in (80, 90):
        os.environ["ATTNX_CUDA_ARCH"] = str(arch)
        outputs = (desc(tuple(e.value if e.value is not None else 40 for e in res.shape_expr)),)
        ins = [
            desc(tuple(e.value if e.value is not None else 40 for e in i.shape_expr), i.dtype, i.shape.max)
            for i in inputs
        ]
        if pid == "attnx::DoubleNormPlugin":
            ins = inputs  # keep the dynamic S: the tile must come from the profile's max
            outputs = (desc((2, 97, None)),)
        name, ptx, params, extra = d["aot"](*ins, *attrs.values(), outputs, 0)
        entry = re.search(r"\.entry\s+(\w+)\(", ptx)
        r["aot"][arch] = {
            "name": name,
            "entry": entry.group(1) if entry else None,
            "target": re.search(r"\.target\s+(\w+)", ptx).group(1),
            "version": re.search(r"\.version\s+([\d.]+)", ptx).group(1),
            "ptx_params": len(re.findall(r"\.param\s", ptx.split(".entry", 1)[1].split(")", 1)[0])),
            "grid": [
                getattr(params, k).value if isinstance(getattr(params, k), ft.ShapeExpr) else getattr(params, k)
                for k in ("grid_x", "grid_y")
            ],
            "block_x": params.block_x,
            "shared": params.shared_mem,
            "extra": [s.value for s in extra.items],
        }
    out["plugins"][pid] = r  # type: ignore[index]

print(json.dumps(out))
