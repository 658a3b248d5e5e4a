"""What the TensorRT builder and runner share: importing TensorRT, its one logger, version numbers,
NumPy dtypes of engine tensors, and the user's permissions for native code.

tensorrt is imported inside :func:`import_tensorrt`, never at module import.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from attnx.core.errors import UserError

log = logging.getLogger("attnx.tensorrt")

# TensorRT I/O types NumPy can hold (BF16 and FP8 I/O cannot cross into NumPy: keep them inside the graph).
NP_DTYPES: dict[str, type] = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}


def import_tensorrt(need_builder: bool = False) -> Any:
    """``tensorrt``, or UserError saying what is missing (the wheel, its libraries, or the builder)."""
    try:
        import tensorrt
    except ImportError as exc:  # also: the bindings are there but libnvinfer is not
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"TensorRT does not import ({first}): install it with `pip install 'tensorrt>=10.9'` on a machine "
            "with an NVIDIA GPU, or use --backend ort"
        ) from None
    except OSError as exc:
        raise UserError(f"TensorRT's libraries do not load ({exc}): reinstall tensorrt, or use --backend ort") from None
    if not hasattr(tensorrt, "Runtime"):
        raise UserError(
            "the installed `tensorrt` has no runtime (only type stubs, or bindings without libnvinfer): "
            "install the full wheel with `pip install 'tensorrt>=10.9'`, or use --backend ort"
        )
    if need_builder and not hasattr(tensorrt, "Builder"):
        raise UserError(
            "this TensorRT has no builder (a lean or dispatch runtime): install the full `tensorrt` wheel to build"
        )
    return tensorrt


def version_tuple(version: str) -> tuple[int, ...]:
    """Version text as numbers: "10.13.0.35" → (10, 13, 0, 35); a non-numeric part ends the tuple."""
    out: list[int] = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits or digits != part:
            if digits and part.startswith(digits):
                out.append(int(digits))
            break
        out.append(int(digits))
    return tuple(out)


class LogCapture:
    """Messages TensorRT logged while a :meth:`TrtLogger.capture` block ran (errors first in :meth:`first`)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def first(self, default: str = "") -> str:
        """The first error (else warning) logged, whitespace collapsed, at most 300 characters; else ``default``."""
        for msg in (*self.errors, *self.warnings):
            return " ".join(msg.split())[:300]
        return default


_LOGGER: Any = None
_LOGGER_LOCK = threading.Lock()


def trt_logger() -> Any:
    """The process-wide TensorRT logger (TensorRT keeps the first logger it is given; share one).

    Forwards warnings and errors to Python logging (``attnx.tensorrt``) and lets callers capture the
    messages of one operation for their error text.
    """
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            _LOGGER = _make_logger(import_tensorrt())
        return _LOGGER


def _make_logger(trt_mod: Any) -> Any:
    severity = trt_mod.ILogger.Severity

    class TrtLogger(trt_mod.ILogger):  # type: ignore[misc]  # (a base of type Any under --strict)
        def __init__(self) -> None:
            trt_mod.ILogger.__init__(self)
            self._captures: list[LogCapture] = []
            self._lock = threading.Lock()

        def log(self, sev: Any, msg: str) -> None:
            level = int(sev)
            if level <= int(severity.ERROR):
                log.error("%s", msg)
            elif level == int(severity.WARNING):
                log.warning("%s", msg)
            else:
                log.debug("%s", msg)
            if level <= int(severity.WARNING):
                with self._lock:
                    for cap in self._captures:
                        (cap.errors if level <= int(severity.ERROR) else cap.warnings).append(msg)

        @contextmanager
        def capture(self) -> Iterator[LogCapture]:
            cap = LogCapture()
            with self._lock:
                self._captures.append(cap)
            try:
                yield cap
            finally:
                with self._lock:
                    self._captures.remove(cap)

    return TrtLogger()


def np_dtype(dtype: Any, name: str) -> np.dtype[Any]:
    """The NumPy dtype of engine tensor ``name`` of TensorRT type ``dtype`` (a ``tensorrt.DataType``).

    Raises UserError for types NumPy cannot hold (BF16, FP8, INT4)."""
    key = getattr(dtype, "name", str(dtype)).rsplit(".", 1)[-1]
    if key not in NP_DTYPES:
        raise UserError(
            f"engine tensor '{name}' has type {key}, which NumPy cannot hold: keep model I/O in FP32/FP16 "
            "(casts inside the graph) and rebuild"
        )
    return np.dtype(NP_DTYPES[key])


ENV_PLUGINS = "ATTNX_TRT_PLUGIN_LIBRARIES"  # os.pathsep-separated .so files the user trusts
ENV_HOST_CODE = "ATTNX_TRT_ALLOW_HOST_CODE"  # 1: run the host code a version-compatible plan carries


def trusted_native_code() -> tuple[set[Path], bool]:
    """The plugin libraries (resolved paths) and the host-code permission the user gave through the
    environment. Files are data: a bundle's manifest may say which libraries it needs, never load them."""
    libs = {Path(p).expanduser().resolve() for p in os.environ.get(ENV_PLUGINS, "").split(os.pathsep) if p.strip()}
    return libs, os.environ.get(ENV_HOST_CODE, "").strip().lower() in ("1", "true", "yes", "on")
