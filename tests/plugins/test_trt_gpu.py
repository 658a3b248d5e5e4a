"""TensorRT engines with the attnx plugins, per op and dtype, compared with the NumPy reference.

Needs an NVIDIA GPU, TensorRT 10.9+ with its libraries, triton and torch with CUDA. Elsewhere the
whole module skips with the reason. Each engine is built from the plugin-form ONNX model through
TensorRT's ONNX parser (attnx.plugins.trt_onnx), then re-loaded and run in a fresh process that never
imports the plugin definitions: AOT plugins embed their kernels, so no Python is needed to run.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attnx.plugins.affine_grid_sample.reference import affine_grid_sample
from attnx.plugins.double_norm.reference import double_norm
from attnx.plugins.grid_sample.reference import grid_sample
from tests.plugins.models import plugin_model


def _skip_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU (TensorRT engines need one)"
    try:
        import tensorrt as trt
    except (ImportError, OSError) as e:
        return f"TensorRT libraries not loadable: {e}"
    if not hasattr(trt, "Builder"):
        return "tensorrt has no Builder (bindings without libnvinfer, or lean runtime only)"
    try:
        import tensorrt.plugin  # noqa: F401
        import triton  # noqa: F401
    except ImportError as e:
        return f"needs tensorrt.plugin and triton: {e}"
    return None


REASON = _skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

DTYPES = [np.float32, np.float16]
TOL = {np.float32: 1e-4, np.float16: 5e-3}


def _cases() -> list[tuple[str, dict[str, Any], list[np.ndarray], Any]]:
    rng = np.random.default_rng(0)
    out = []
    for dtype in DTYPES:
        x = rng.standard_normal((2, 3, 13, 17)).astype(dtype)
        grid = rng.uniform(-1.3, 1.3, (2, 9, 11, 2)).astype(dtype)
        theta = (np.eye(2, 3)[None] + rng.uniform(-0.4, 0.4, (2, 2, 3))).astype(dtype)
        for mode, pad, ac in itertools.product(
            ("bilinear", "nearest", "bicubic"), ("zeros", "border", "reflection"), (0, 1)
        ):
            attrs = {"mode": mode, "padding_mode": pad, "align_corners": ac}
            out.append(("GridSample", attrs, [x, grid], grid_sample))
            out.append(("AffineGridSample", {"out_h": 7, "out_w": 0, **attrs}, [x, theta], affine_grid_sample))
        for shape in ((2, 1025, 64), (1, 37, 9)):
            a = (rng.standard_normal(shape) * 4).astype(dtype)
            out.append(("DoubleNorm", {"eps": 1e-9}, [a], double_norm))
    return out


CASES = _cases()


def _build(model: Any, path: Path) -> None:
    import tensorrt as trt

    from attnx.plugins.trt import register_plugins
    from attnx.plugins.trt_onnx import to_trt_plugin_form

    register_plugins()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(to_trt_plugin_form(model).SerializeToString()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise AssertionError("ONNX parse failed: " + "; ".join(errors))
    config = builder.create_builder_config()
    engine = builder.build_serialized_network(network, config)
    assert engine is not None, "engine build failed"
    path.write_bytes(bytes(engine))


# Runs in a fresh interpreter: no `plugins` import, so nothing Python-side is registered.
RUNNER = textwrap.dedent(
    """
    import sys, numpy as np, tensorrt as trt, torch
    engine_path, io_path = sys.argv[1], sys.argv[2]
    io = dict(np.load(io_path))
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(open(engine_path, "rb").read())
    ctx = engine.create_execution_context()
    keep = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            keep[name] = torch.from_numpy(io[name]).cuda()
        else:
            shape = tuple(engine.get_tensor_shape(name))
            keep[name] = torch.empty(shape, dtype=torch.from_numpy(io["dtype_probe"]).dtype, device="cuda")
        ctx.set_tensor_address(name, keep[name].data_ptr())
    stream = torch.cuda.current_stream()
    assert ctx.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    np.save(io_path + ".out.npy", keep["Y"].cpu().numpy())
    """
)


@pytest.mark.parametrize(
    "op,attrs,inputs,ref",
    CASES,
    ids=[f"{c[0]}-{'-'.join(str(v) for v in c[1].values())}-{c[2][0].dtype}-{c[2][0].shape}" for c in CASES],
)
def test_engine_matches_reference(
    op: str, attrs: dict[str, Any], inputs: list[np.ndarray], ref: Any, tmp_path: Path
) -> None:
    model = plugin_model(op, attrs, inputs)
    engine = tmp_path / "model.engine"
    _build(model, engine)
    names = [i.name for i in model.graph.input]
    io_path = tmp_path / "io.npz"
    np.savez(io_path, **dict(zip(names, inputs)), dtype_probe=np.zeros(1, inputs[0].dtype))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, str(engine), str(io_path)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(str(io_path) + ".out.npy")
    want = ref(*inputs, **attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    scale = float(np.max(np.abs(want.astype(np.float32)))) or 1.0
    if attrs.get("mode") == "nearest":
        # A coordinate within rounding of a pixel boundary may pick the neighbour on the GPU.
        assert (
            np.mean(np.abs(got.astype(np.float32) - want.astype(np.float32)) > TOL[inputs[0].dtype.type] * scale) < 0.01
        )
    else:
        assert err <= TOL[inputs[0].dtype.type] * scale, f"{op} {attrs}: max error {err}"
