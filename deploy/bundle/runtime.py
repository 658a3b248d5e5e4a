"""Backend runtimes behind :class:`attnx.deploy.bundle.engine.Engine`: each loads a bundle's engine file and runs it.

A runtime is thread-safe: ``run(feed)`` may be called from many threads at once (each runtime keeps a
pool of sessions or execution contexts). Imported lazily by backend name, so the CPU path never
imports tensorrt.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from attnx.core.cpu import Int8Path
    from attnx.deploy.bundle.manifest import Manifest

log = logging.getLogger("attnx.cpu")


class Runtime(Protocol):
    kernels: str  # the kernels the engine runs on here, in words (INT8: which integer path; see attnx.core.cpu)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


_RUNTIMES = {"ort": "attnx.deploy.backends.onnxrt.runtime:OrtRuntime",
             "trt": "attnx.deploy.backends.tensorrt.runner:TrtRuntime"}
_RUNTIMES["openvino"] = "attnx.deploy.backends.openvino.runner:OpenVinoRuntime"


def open_runtime(bundle: Path, manifest: Manifest, pool_size: int, threads: int | None,
                 u8u8: str | None = None, trusted: bool = False) -> Runtime:  # fmt: skip
    """The runtime for ``manifest.backend``. CPU INT8 bundles first get the guard of :func:`int8_path`.

    ``u8u8``: ``auto`` (default), ``on`` or ``off`` (ONNX Runtime's U8U8 kernels; see :mod:`attnx.core.cpu`).
    ``trusted``: the caller just built this bundle (TensorRT native code it names may load; see
    ``attnx.deploy.backends.tensorrt.runner.trusted_native_code`` for everyone else).
    """
    from attnx.core.errors import UserError

    target = _RUNTIMES.get(manifest.backend)
    if target is None:
        raise UserError(f"bundle {bundle} has backend '{manifest.backend}', which this attnx cannot run")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if manifest.backend == "trt":
        return cls(bundle, manifest, pool_size=pool_size, threads=threads, trusted=trusted)  # type: ignore[no-any-return]
    path = int8_path(bundle, manifest, u8u8)
    return cls(bundle, manifest, pool_size=pool_size, threads=threads, int8_path=path)  # type: ignore[no-any-return]


def int8_path(bundle: Path, manifest: Manifest, u8u8: str | None = None) -> Int8Path | None:
    """The integer kernels a CPU INT8 bundle runs on here; warns (one line) when the bundle's weights could
    saturate this CPU's u8×s8 kernels. None for float bundles.

    The bundle records its saturation proof and the CPU it was verified on (``manifest.cpu``); bundles from
    before that record are treated as full 8-bit weights verified on an unknown CPU.
    """
    from attnx.core.cpu import CpuFeatures, int8_runtime_path

    if manifest.precision != "int8":
        return None
    record = manifest.cpu or {}
    safe = bool((record.get("saturation") or {}).get("safe"))
    verified_on = CpuFeatures.from_dict(record.get("verified_on"))
    path = int8_runtime_path(safe, verified_on, manifest.backend, u8u8=u8u8, name=f"bundle {bundle}")
    if path.warning:
        log.warning("attnx: warning: %s", path.warning)
    return path
