"""What every attnx TensorRT plugin shares (needs tensorrt): dtype names, shapes, the target GPU, the AOT result.

Each op folder's ``trt.py`` uses these to register one Python plugin (``attnx::<Op>Plugin``) with

* a shape/type function that calls the op's spec (the same checks and shape rules as ONNX), and
* an ahead-of-time implementation returning the op's Triton kernel compiled to PTX for the GPU the
  engine is built on, with its launch grid and int32 scalar arguments as shape expressions.

Engines built this way embed the kernels and run without Python (trtexec, C++). Attribute values
are compile-time constants of the kernel; TensorRT does not serialise AOT plugin attributes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorrt as trt
import tensorrt.plugin as trtp

from attnx.plugins.spec import SpecError

_DTYPES = {trt.DataType.FLOAT: "float32", trt.DataType.HALF: "float16"}
# Type/format combinations every attnx plugin supports: all I/O FP32, or all FP16; linear layout.
FLOAT_IO = "FP32|FP16"


def dtype_name(dtype: trt.DataType, where: str) -> str:
    """TensorRT FLOAT/HALF -> ``"float32"``/``"float16"``. Raises SpecError (naming ``where``) for another type."""
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise SpecError(f"{where}: unsupported I/O type {dtype}; allowed: FLOAT, HALF") from None


def dims(desc: trtp.TensorDesc) -> tuple[Any, ...]:
    """A descriptor's shape for the spec's shape function: build-time constants as ints."""
    out: list[Any] = []
    for e in desc.shape_expr:
        if not e.is_fake and e.is_constant:
            out.append(int(e.constant_value()))
        else:
            out.append(e)
    return tuple(out)


def max_extent(desc: trtp.TensorDesc, axis: int) -> int:
    """Largest extent ``axis`` can take in this build (the profile's max for a dynamic dim)."""
    shape = desc.shape
    v = int(shape[axis])
    return int(shape.max[axis]) if v < 0 else v


def target_arch() -> int:
    """Compute capability of the GPU the engine is built for (e.g. 80, 90).

    ``ATTNX_CUDA_ARCH`` overrides; otherwise the current CUDA device, as Triton sees it.
    """
    env = os.environ.get("ATTNX_CUDA_ARCH")
    if env:
        return int(env.removeprefix("sm_").rstrip("a"))
    from triton.runtime import driver

    return int(driver.active.get_current_target().arch)


def aot_result(
    compiled: Any,
    grid: Sequence[Any],
    scalars: Sequence[Any],
) -> tuple[str, str, trtp.KernelLaunchParams, trtp.SymIntExprs]:
    """The 4-tuple an ``aot_impl`` returns, from a Triton CompiledKernel.

    ``grid``: up to three launch-grid extents (ints or shape expressions); ``scalars``: the
    kernel's int32 arguments in order (they sit between the input and output pointers).
    """
    params = trtp.KernelLaunchParams()
    params.grid_x = grid[0]
    if len(grid) > 1:
        params.grid_y = grid[1]
    if len(grid) > 2:
        params.grid_z = grid[2]
    params.block_x = compiled.metadata.num_warps * 32
    params.shared_mem = compiled.metadata.shared
    extra = trtp.SymIntExprs(len(scalars))
    for i, s in enumerate(scalars):
        extra[i] = trtp.SymInt32(s)
    return compiled.metadata.name, compiled.asm["ptx"], params, extra
