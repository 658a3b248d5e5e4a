"""AOT compilation (sm_80, sm_90, no GPU) and the TensorRT plugin definitions, on the CPU.

Both run in a subprocess without TRITON_INTERPRET (this test process interprets kernels; Triton
cannot do both in one process). The plugin definitions run against the fake ``tensorrt.plugin`` of
tests/fakes/tensorrt.py, which checks what tensorrt.plugin checks at registration and hands the AOT
functions shape expressions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT as ROOT

pytest.importorskip("triton")


def _run(args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def aot(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    out = tmp_path_factory.mktemp("aot")
    return json.loads(_run(["-m", "attnx.deploy.tools.plugin_aot", "--json", "--out", str(out)])), out


def test_aot_every_op_arch_dtype(aot: tuple[list[dict[str, Any]], Path]) -> None:
    builds, out = aot
    got = {(b["op"], b["arch"], b["dtype"]) for b in builds}
    want = {
        (op, arch, dt)
        for op in ("GridSample", "AffineGridSample", "DoubleNorm")
        for arch in ("sm_80", "sm_90a")
        for dt in ("float32", "float16")
    }
    assert got == want
    for b in builds:
        assert b["ptx_bytes"] > 1000 and b["cubin_bytes"] > 1000, b
        stem = f"{b['op']}_{b['variant'].replace('/', '_').replace('<=', 'le')}_{b['dtype']}_{b['arch']}"
        ptx = (out / f"{stem}.ptx").read_text()
        cubin = (out / f"{stem}.cubin").read_bytes()
        assert f".target {b['arch']}" in ptx and ".version 8.8" in ptx
        assert re.search(rf"\.entry\s+{b['kernel']}\(", ptx)
        assert cubin[:4] == b"\x7fELF" and len(cubin) == b["cubin_bytes"]
        # FP16 kernels load and store halves; the arithmetic stays FP32.
        if b["dtype"] == "float16":
            assert "cvt.f32.f16" in ptx


@pytest.fixture(scope="module")
def fake_trt() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_run([str(ROOT / "tests/plugins/trt_fake_run.py")]).strip().splitlines()[-1])
    return result


def test_plugins_register_once(fake_trt: dict[str, Any]) -> None:
    ids = ["attnx::GridSamplePlugin", "attnx::AffineGridSamplePlugin", "attnx::DoubleNormPlugin"]
    assert fake_trt["ids"] == ids and fake_trt["ids_again"] == ids


def test_plugin_shape_functions(fake_trt: dict[str, Any]) -> None:
    p = fake_trt["plugins"]
    assert p["attnx::GridSamplePlugin"]["out_shape"] == [2, 3, 4, 6]
    assert p["attnx::AffineGridSamplePlugin"]["out_shape"] == [2, 3, 9, 7]  # out_h=9, out_w=0 -> W
    assert p["attnx::DoubleNormPlugin"]["out_shape"] == [2, 97, None]  # dynamic S passes through
    for r in p.values():
        assert r["half_dtype"] == "HALF"
        assert r["autotune"].startswith("FP32|FP16")


def test_plugin_shape_inference_errors(fake_trt: dict[str, Any]) -> None:
    p = fake_trt["plugins"]
    assert "input 'X' must be 4-D (N, C, H, W), got rank 3" in p["attnx::GridSamplePlugin"]["rank_error"]
    assert "unsupported mode 'area'" in p["attnx::GridSamplePlugin"]["attr_error"]
    assert "input 'theta' must be 3-D" in p["attnx::AffineGridSamplePlugin"]["rank_error"]
    assert "unsupported padding_mode 'mirror'" in p["attnx::AffineGridSamplePlugin"]["attr_error"]
    assert "input 'attn' must be 3-D" in p["attnx::DoubleNormPlugin"]["rank_error"]
    assert "eps must be >= 0" in p["attnx::DoubleNormPlugin"]["attr_error"]


@pytest.mark.parametrize("arch,target", [("80", "sm_80"), ("90", "sm_90a")])
def test_plugin_aot_launch(fake_trt: dict[str, Any], arch: str, target: str) -> None:
    p = fake_trt["plugins"]
    # (kernel, pointers, scalars as the kernel receives them, launch grid)
    expected = {
        "attnx::GridSamplePlugin": ("grid_sample_kernel", 3, [2, 3, 5, 7, 4, 6], [1, 1]),  # 144 outputs / 256
        "attnx::AffineGridSamplePlugin": ("affine_grid_sample_kernel", 3, [2, 3, 5, 7, 9, 7], [2, 1]),  # 378 / 256
        "attnx::DoubleNormPlugin": ("double_norm_kernel", 2, [2, 97, None], [2, 1]),  # one row block per item
    }
    for pid, (name, pointers, scalars, grid) in expected.items():
        a = p[pid]["aot"][arch]
        assert a["name"] == a["entry"] == name
        assert a["target"] == target and a["version"] == "8.8"
        # TensorRT passes pointers and scalars only; Triton's two trailing scratch pointers go unused.
        assert a["ptx_params"] == pointers + len(scalars) + 2
        assert a["extra"] == scalars
        assert a["grid"] == grid
        assert a["block_x"] == 128
