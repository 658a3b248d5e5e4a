"""The tests' TensorRT and cuda-python fakes, and how a test puts them in place.

The fakes themselves are :mod:`attnx.deploy.backends.tensorrt._fake` (one fake ``tensorrt`` module: builder,
ONNX parser, runtime and ``tensorrt.plugin``; one fake ``cuda.bindings.runtime``): they live in the package
because the GPU check (``python -m attnx.deploy.tools.gpu_check``) runs them too, on GPU machines without
TensorRT, where ``tests/`` is not importable. Its docstring says what they model and what they cannot tell.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from typing import Any

from attnx.deploy.backends.tensorrt._fake import (
    CACHE_MAGIC,
    FAKE_STATE,
    PLAN_MAGIC,
    DataType,
    FakeBuilder,
    FakeContext,
    FakeCudart,
    FakeEngine,
    FakeOnnxParser,
    FakeRuntime,
    ShapeExpr,
    TensorDesc,
    cudaError_t,
    fake_tensorrt,
    plan_bytes,
)

__all__ = [
    "CACHE_MAGIC",
    "FAKE_STATE",
    "PLAN_MAGIC",
    "DataType",
    "FakeBuilder",
    "FakeContext",
    "FakeCudart",
    "FakeEngine",
    "FakeOnnxParser",
    "FakeRuntime",
    "ShapeExpr",
    "TensorDesc",
    "cudaError_t",
    "fake_tensorrt",
    "install",
    "installed",
    "plan_bytes",
]


@contextlib.contextmanager
def installed(monkeypatch: Any, version: str = "11.4.0.106", cc: tuple[int, int] = (8, 6)) -> Iterator[FakeCudart]:
    """Fake cuda-python and ``tensorrt`` (with ``tensorrt.plugin``) in place of the real ones, and a fresh
    TensorRT logger, while in use; yields the fake CUDA runtime."""
    from attnx.deploy.backends.tensorrt import cuda_mem
    from attnx.deploy.backends.tensorrt import util as trt_util

    cudart = FakeCudart(cc=cc)
    old = cuda_mem.use_cudart(cudart)
    trt = fake_tensorrt(version, cudart=cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trt.plugin)
    monkeypatch.setattr(trt_util, "_LOGGER", None)
    try:
        yield cudart
    finally:
        cuda_mem.use_cudart(old)


def install(version: str = "11.4.0.106") -> types.ModuleType:
    """Make ``import tensorrt`` and ``import tensorrt.plugin`` resolve to a fresh fake for the rest of this
    process (scripts that tests run as subprocesses); returns the fake ``tensorrt``."""
    trt = fake_tensorrt(version)
    sys.modules["tensorrt"] = trt
    sys.modules["tensorrt.plugin"] = trt.plugin
    return trt
