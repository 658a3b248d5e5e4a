"""Thin, typed helpers over cuda-python's CUDA runtime bindings (``cuda.bindings.runtime``).

pycuda does not build without a full CUDA toolkit; cuda-python installs from a wheel. Its calls return
``(error, *values)`` tuples: :func:`check` turns a non-success code into :class:`CudaError` naming the
call, and the small classes here own one resource each (device or pinned buffer, stream, event, CUDA
graph) with an explicit ``free()`` / ``destroy()``.

Nothing here imports cuda-python at module import: :func:`cudart` does, on first use, and raises
``UserError`` with the fix when it is missing. Tests swap in a fake module with :func:`use_cudart`.
"""

from __future__ import annotations

import ctypes
import importlib
import threading
from typing import Any

import numpy as np

from attnx.core.errors import UserError

_lock = threading.Lock()
_module: Any = None


class CudaError(RuntimeError):
    """A CUDA runtime call failed (out of memory, launch failure, no device, ...)."""

    def __init__(self, what: str, name: str, code: int):
        super().__init__(f"{what} failed: {name} ({code})")
        self.what, self.name, self.code = what, name, code


def cudart() -> Any:
    """``cuda.bindings.runtime`` (cuda-python ≥ 12.6), or ``cuda.cudart`` from older releases."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                try:
                    _module = importlib.import_module("cuda.bindings.runtime")
                except ImportError:
                    try:
                        _module = importlib.import_module("cuda.cudart")
                    except ImportError:
                        raise UserError(
                            "cuda-python is not installed: `pip install cuda-python` (or `pip install -e .[gpu]`)"
                        ) from None
    return _module


def use_cudart(module: Any) -> Any:
    """Replace the bindings module (tests pass a fake; None restores lazy import). Returns the old one."""
    global _module
    with _lock:
        old, _module = _module, module
    return old


def _error_name(rt: Any, err: Any) -> str:
    try:
        res = rt.cudaGetErrorName(err)
        name = res[1] if isinstance(res, tuple) else res
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # never let error formatting hide the error
        return getattr(err, "name", str(err))


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` result: None, the one value, or a tuple of values."""
    rt = cudart()
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        raise CudaError(what, _error_name(rt, err), int(err))
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def decode_version(v: int) -> str:
    """CUDA's integer versions (12040) as text ("12.4")."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def set_device(device: int) -> None:
    """Make GPU ``device`` (an index) current for this host thread (``cudaSetDevice``); raises :class:`CudaError`."""
    check(cudart().cudaSetDevice(device), f"cudaSetDevice({device})")


def device_count() -> int:
    """Number of CUDA devices; 0 when there is no usable driver or GPU."""
    res = cudart().cudaGetDeviceCount()
    return int(res[1]) if int(res[0]) == 0 and res[1] is not None else 0


def device_info(device: int = 0) -> dict[str, Any]:
    """JSON-able facts about a GPU: name, compute capability ("8.6"), memory, driver and runtime versions."""
    rt = cudart()
    if device_count() <= device:
        raise UserError(
            f"no CUDA GPU {device} here: TensorRT needs an NVIDIA GPU with a working driver (on the CPU: --backend ort)"
        )
    props = check(rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    driver = check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
    runtime = check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
    return {
        "kind": "cuda",
        "index": device,
        "name": name.rstrip("\x00").strip(),
        "compute_capability": f"{props.major}.{props.minor}",
        "sm": f"sm_{props.major}{props.minor}",
        "memory_mib": int(props.totalGlobalMem) // (1 << 20),
        "driver_version": decode_version(int(driver)),
        "cuda_runtime_version": decode_version(int(runtime)),
    }


class _GrowableBuffer:
    """``nbytes`` of CUDA-allocated memory that grows with :meth:`ensure`; subclasses name the allocator."""

    _malloc = ""  # cudart function names: cudaMalloc / cudaMallocHost
    _release = ""  # cudaFree / cudaFreeHost

    def __init__(self, nbytes: int):
        self.nbytes = 0
        self.ptr = 0
        self.ensure(nbytes)

    def ensure(self, nbytes: int) -> bool:
        """Make room for ``nbytes`` (contents are lost when it grows). True when the address changed."""
        nbytes = max(int(nbytes), 1)
        if nbytes <= self.nbytes and self.ptr:
            return False
        self.free()
        self.ptr = int(check(getattr(cudart(), self._malloc)(nbytes), f"{self._malloc}({nbytes})"))
        self.nbytes = nbytes
        return True

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr, self.nbytes = self.ptr, 0, 0
            check(getattr(cudart(), self._release)(ptr), self._release)


class DeviceBuffer(_GrowableBuffer):
    """Device memory (cudaMalloc)."""

    _malloc, _release = "cudaMalloc", "cudaFree"


class PinnedBuffer(_GrowableBuffer):
    """Page-locked host memory (cudaMallocHost): asynchronous copies to and from the GPU."""

    _malloc, _release = "cudaMallocHost", "cudaFreeHost"

    def view(self, dtype: np.dtype[Any] | type, shape: tuple[int, ...]) -> np.ndarray:
        """A NumPy array over the first bytes of the buffer (valid until ``ensure`` grows it or ``free``)."""
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if count * dt.itemsize > self.nbytes:
            raise ValueError(f"pinned buffer of {self.nbytes} bytes cannot hold {shape} {dt}")
        raw = (ctypes.c_uint8 * (count * dt.itemsize)).from_address(self.ptr)
        return np.ctypeslib.as_array(raw).view(dt).reshape(shape)


class Stream:
    """A non-blocking CUDA stream (does not synchronise with the legacy default stream)."""

    def __init__(self) -> None:
        rt = cudart()
        self.obj: Any = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def handle(self) -> int:
        """The stream's ``cudaStream_t`` as an integer, as TensorRT's ``execute_async_v3`` takes it."""
        return int(self.obj)

    def synchronize(self) -> None:
        """Block the host until all work queued on the stream has finished (``cudaStreamSynchronize``); raises
        :class:`CudaError`, also for an earlier asynchronous failure on the stream.
        """
        check(cudart().cudaStreamSynchronize(self.obj), "cudaStreamSynchronize")

    def wait(self, event: Event) -> None:
        """Make work queued on this stream from now on wait until ``event`` (its latest record) completes, without
        blocking the host (``cudaStreamWaitEvent``, flags 0); raises :class:`CudaError`.
        """
        check(cudart().cudaStreamWaitEvent(self.obj, event.obj, 0), "cudaStreamWaitEvent")

    def destroy(self) -> None:
        """Release the stream (``cudaStreamDestroy``); a second call does nothing."""
        if self.obj is not None:
            obj, self.obj = self.obj, None
            check(cudart().cudaStreamDestroy(obj), "cudaStreamDestroy")


class Event:
    """A CUDA event with timing enabled."""

    def __init__(self) -> None:
        self.obj: Any = check(cudart().cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Stream | int) -> None:
        """Record the event on ``stream``, a :class:`Stream` or a raw ``cudaStream_t`` (an int; 0: the legacy default
        stream), after the work queued there so far (``cudaEventRecord``); raises :class:`CudaError`.
        """
        s = stream.obj if isinstance(stream, Stream) else stream
        check(cudart().cudaEventRecord(self.obj, s), "cudaEventRecord")

    def synchronize(self) -> None:
        """Block the host until the work before the event's latest record has finished (``cudaEventSynchronize``);
        raises :class:`CudaError`.
        """
        check(cudart().cudaEventSynchronize(self.obj), "cudaEventSynchronize")

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to ``end`` (both recorded and completed)."""
        return float(check(cudart().cudaEventElapsedTime(self.obj, end.obj), "cudaEventElapsedTime"))

    def destroy(self) -> None:
        """Release the event (``cudaEventDestroy``); a second call does nothing."""
        if self.obj is not None:
            obj, self.obj = self.obj, None
            check(cudart().cudaEventDestroy(obj), "cudaEventDestroy")


def copy_htod_async(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    """Enqueue a copy of ``nbytes`` bytes from host address ``src`` to device address ``dst`` on ``stream``
    (``cudaMemcpyAsync``, ``cudaMemcpyHostToDevice``); raises :class:`CudaError`. Asynchronous from pinned memory,
    which must then stay unchanged until the stream reaches the copy; from pageable memory the call returns once
    the data is staged.
    """
    rt = cudart()
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream.obj), "cudaMemcpyAsync(host→device)")


def copy_dtoh_async(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    """Enqueue a copy of ``nbytes`` bytes from device address ``src`` to host address ``dst`` on ``stream``
    (``cudaMemcpyAsync``, ``cudaMemcpyDeviceToHost``); raises :class:`CudaError`. A pinned ``dst`` holds the data
    once the stream is synchronised; to pageable memory the call returns only when the copy has completed.
    """
    rt = cudart()
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream.obj), "cudaMemcpyAsync(device→host)")


class CudaGraph:
    """A CUDA graph captured from the work one stream enqueues between :meth:`begin` and :meth:`end`.

    Capture is thread-local (other threads' CUDA calls neither join nor break it). ``end`` returns
    False, leaving no graph, when the captured work cannot form a graph.
    """

    def __init__(self) -> None:
        self.graph: Any = None
        self.exec: Any = None

    def begin(self, stream: Stream) -> None:
        """Start capturing ``stream`` (``cudaStreamBeginCapture``, ``cudaStreamCaptureModeThreadLocal``): work queued on
        it is recorded, not run, until :meth:`end`. Raises :class:`CudaError`.
        """
        rt = cudart()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(rt.cudaStreamBeginCapture(stream.obj, mode), "cudaStreamBeginCapture")

    def end(self, stream: Stream) -> bool:
        """Stop the capture (``cudaStreamEndCapture``) and instantiate the graph (``cudaGraphInstantiate``, flags 0).
        True when both succeed; False, keeping no graph, when either fails (the CUDA error is not raised).
        """
        rt = cudart()
        res = rt.cudaStreamEndCapture(stream.obj)
        if int(res[0]) != 0 or res[1] is None:
            return False
        self.graph = res[1]
        res = rt.cudaGraphInstantiate(self.graph, 0)
        if int(res[0]) != 0:
            self.destroy()
            return False
        self.exec = res[1]
        return True

    def launch(self, stream: Stream) -> None:
        """Enqueue the captured work on ``stream`` (``cudaGraphLaunch``); call after :meth:`end` returned True.
        Raises :class:`CudaError`.
        """
        check(cudart().cudaGraphLaunch(self.exec, stream.obj), "cudaGraphLaunch")

    def destroy(self) -> None:
        """Release the executable graph and the graph (``cudaGraphExecDestroy``, ``cudaGraphDestroy``); a second call
        does nothing.
        """
        rt = cudart()
        if self.exec is not None:
            ex, self.exec = self.exec, None
            check(rt.cudaGraphExecDestroy(ex), "cudaGraphExecDestroy")
        if self.graph is not None:
            g, self.graph = self.graph, None
            check(rt.cudaGraphDestroy(g), "cudaGraphDestroy")
