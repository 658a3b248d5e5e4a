"""Backend runtimes behind :class:`deploy.engine.Engine`: each loads a bundle's engine file and runs it.

A runtime is thread-safe: ``run(feed)`` may be called from many threads at once (each runtime keeps a
pool of sessions or execution contexts). Imported lazily by backend name, so the CPU path never
imports tensorrt.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from deploy.bundle import Manifest


class Runtime(Protocol):
    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


_RUNTIMES = {"ort": "deploy.runtime.ort:OrtRuntime", "trt": "deploy.runtime.trt:TrtRuntime"}
_RUNTIMES["openvino"] = "deploy.runtime.openvino:OpenVinoRuntime"


def open_runtime(bundle: Path, manifest: Manifest, pool_size: int, threads: int | None) -> Runtime:
    from deploy.errors import UserError

    target = _RUNTIMES.get(manifest.backend)
    if target is None:
        raise UserError(f"bundle {bundle} has backend '{manifest.backend}', which this attnx cannot run")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(bundle, manifest, pool_size=pool_size, threads=threads)  # type: ignore[no-any-return]
