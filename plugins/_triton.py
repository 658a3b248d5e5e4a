"""Running the Triton kernels without a GPU, and compiling them ahead of time.

Triton picks interpreter or compiler when a kernel is decorated, for the whole process: with
``TRITON_INTERPRET=1`` set before ``import triton``, ``@triton.jit`` kernels run on CPU tensors
(numpy underneath) and cannot be compiled; without it they compile (for any architecture, no GPU
needed) but cannot run on the CPU. Tests therefore interpret in-process and compile in a
subprocess (``python -m attnx.deploy.tools.plugin_aot``).
"""

from __future__ import annotations

import os
from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

# PTX ISA version the kernels are emitted as. The CUDA driver JIT-compiles an engine's PTX, so the
# version must not exceed what the deployment driver supports: 8.8 loads on CUDA 12.9+ drivers,
# whereas Triton's default follows its bundled ptxas (9.4 for sm_90 in Triton 3.9).
PTX_VERSION = 88
# FMA contraction off: keeps coordinate rounding identical to the reference and to PyTorch, which
# decides taps (nearest mode, floor) on exact float values.
COMPILE_OPTIONS: dict[str, Any] = {"ptx_version": PTX_VERSION, "enable_fp_fusion": False, "num_warps": 4}

TRITON_DTYPES = {"float32": "fp32", "float16": "fp16"}


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET`` is set (kernels run on CPU tensors in Triton's interpreter)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def launch(kernel: Any, grid: tuple[int, ...], *args: Any, **constexprs: Any) -> None:
    """Launch ``kernel``: on CUDA tensors compiled, on CPU tensors in the interpreter."""
    first = args[0]
    if first.device.type == "cpu" and not hasattr(kernel, "rewrite"):
        raise RuntimeError(
            "Triton kernels run on CPU tensors only in the interpreter: set TRITON_INTERPRET=1 before importing triton"
        )
    kernel[grid](*args, **constexprs)


def signature(kernel: Any, pointer_dtype: str, scalars: tuple[str, ...], constexprs: dict[str, Any]) -> dict[str, str]:
    """ASTSource signature: every non-scalar, non-constexpr argument is a pointer of ``pointer_dtype``."""
    ty = TRITON_DTYPES[pointer_dtype]
    sig = {}
    for name in kernel.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in scalars:
            sig[name] = "i32"
        else:
            sig[name] = f"*{ty}"
    return sig


def compile_kernel(
    kernel: Any,
    pointer_dtype: str,
    scalars: tuple[str, ...],
    constexprs: dict[str, Any],
    arch: int,
) -> Any:
    """Compile for ``sm_<arch>`` without a GPU; returns Triton's CompiledKernel (asm: ptx, cubin)."""
    if hasattr(kernel, "rewrite"):
        raise RuntimeError("cannot compile Triton kernels with TRITON_INTERPRET=1: run "
                           "`python -m attnx.deploy.tools.plugin_aot`")
    src = ASTSource(fn=kernel, signature=signature(kernel, pointer_dtype, scalars, constexprs), constexprs=constexprs)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=dict(COMPILE_OPTIONS))
    # TensorRT launches with the plugin's arguments only; Triton's trailing scratch pointers must
    # therefore be unused, which holds while both scratch sizes are zero.
    md = compiled.metadata
    if getattr(md, "global_scratch_size", 0) or getattr(md, "profile_scratch_size", 0):
        raise RuntimeError(f"{md.name}: needs Triton scratch memory, which a TensorRT AOT plugin does not provide")
    return compiled
