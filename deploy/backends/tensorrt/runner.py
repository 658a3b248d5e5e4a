"""TensorRT behind :class:`~attnx.deploy.bundle.engine.Engine`:
one plan, a pool of execution contexts, cuda-python memory.

    rt = TrtRuntime(bundle, manifest, pool_size=2)       # or Engine.load(bundle) for the checked API
    out = rt.run({"input": x})                           # NumPy in, NumPy out
    out, ms = rt.run_timed({"input": x})                 # + {"h2d_ms", "compute_ms", "d2h_ms", "enqueue_ms"}
    y = rt.run_torch({"input": x_cuda})                  # torch CUDA tensors in and out, no host copies
    rt.close()

Before the plan is deserialised, the TensorRT version and GPU compute capability recorded in the
manifest are compared with this machine's (allowing for the plan's version- and hardware-compatibility
flags), so a plan from another TensorRT or GPU fails with a message that says what to rebuild, instead
of TensorRT's serialisation error. A plan whose size does not match the manifest is named as truncated.

Concurrency: each pool slot holds an execution context, a CUDA stream and device buffers sized for the
profile's largest shapes (grown on demand); concurrent callers take a free slot from a queue. Host
copies go through pinned staging buffers. ``cuda_graph=True`` captures ``execute_async_v3`` per slot
and input shape into a CUDA graph after one warm-up run and replays it afterwards.

tensorrt and cuda-python are imported when a runtime is created, never at module import.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.backends.tensorrt import cuda_mem
from attnx.deploy.bundle.manifest import Manifest

if TYPE_CHECKING:
    import tensorrt as trt
    import torch

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


# ---------------------------------------------------------------------------------------------------------
# Shared with attnx.deploy.backends.tensorrt.builder: importing TensorRT, its logger, versions, plan compatibility.


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


def rebuild_hint(bundle: Path | str, manifest: Manifest) -> str:
    model = manifest.source.get("model") or "MODEL_OR_ONNX"
    precision = "" if manifest.precision == "fp32" else f" --precision {manifest.precision}"
    return f"attnx build {model} -o {bundle} --backend trt{precision}"


def _sm(cc: str | None) -> str:
    return "sm_" + str(cc).replace(".", "") if cc else "an unrecorded GPU"


def check_plan_compat(
    manifest: Manifest, trt_version: str, device: Mapping[str, Any], plan_name: str, hint: str
) -> None:
    """Raise UserError when this TensorRT or GPU cannot run the plan the manifest describes.

    Rules (TensorRT's engine-compatibility documentation): a plan runs only on the TensorRT version that
    built it, unless built version-compatible (then on that version or a later one); and only on the
    compute capability it was built for, unless built with hardware compatibility "ampere+" (then on
    any GPU of compute capability 8.0 or newer).
    """
    build = manifest.build
    built_version = build.get("tensorrt_version")
    built_cc = manifest.device.get("compute_capability")
    if not built_version or not built_cc:
        missing = "TensorRT version" if not built_version else "compute capability"
        raise UserError(
            f"{plan_name}: the manifest records no {missing} (corrupt, or not a TensorRT bundle); "
            f"rebuild it with `{hint}`"
        )
    cc = str(device.get("compute_capability"))
    problems: list[str] = []
    bv, cv = version_tuple(built_version), version_tuple(trt_version)
    if build.get("version_compatible"):
        if cv < bv:
            problems.append(f"a version-compatible plan needs TensorRT {built_version} or later")
    elif bv != cv:
        problems.append("a plan runs only on the TensorRT version that built it")
    hw = build.get("hardware_compatibility") or "none"
    if hw == "ampere+":
        if version_tuple(cc) < (8, 0):
            problems.append("an ampere+ plan needs compute capability 8.0 or newer")
    elif version_tuple(cc) != version_tuple(str(built_cc)):
        problems.append("a plan runs only on the compute capability it was built for")
    if problems:
        raise UserError(
            f"{plan_name} was built with TensorRT {built_version} for {_sm(built_cc)}; this is TensorRT {trt_version} "
            f"on {_sm(cc)} ({'; '.join(problems)}): rebuild the bundle with `{hint}` on this machine"
        )


def np_dtype(dtype: Any, name: str) -> np.dtype[Any]:
    key = getattr(dtype, "name", str(dtype)).rsplit(".", 1)[-1]
    if key not in NP_DTYPES:
        raise UserError(
            f"engine tensor '{name}' has type {key}, which NumPy cannot hold: keep model I/O in FP32/FP16 "
            "(casts inside the graph) and rebuild"
        )
    return np.dtype(NP_DTYPES[key])


# ---------------------------------------------------------------------------------------------------------
# The runtime.


@dataclass
class _IO:
    name: str
    is_input: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]  # the engine's, -1 for a dynamic axis
    min: tuple[int, ...] = ()  # profile 0 (inputs)
    max: tuple[int, ...] = ()


@dataclass
class _Slot:
    ctx: Any
    stream: cuda_mem.Stream
    device: dict[str, cuda_mem.DeviceBuffer] = field(default_factory=dict)
    host: dict[str, cuda_mem.PinnedBuffer] = field(default_factory=dict)
    bound: dict[str, int] = field(default_factory=dict)  # tensor name → address set on the context
    key: tuple[tuple[int, ...], ...] | None = None  # input shapes set on the context
    out_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    events: list[cuda_mem.Event] = field(default_factory=list)
    graphs: dict[tuple[tuple[int, ...], ...], cuda_mem.CudaGraph | None] = field(default_factory=dict)
    pending: cuda_mem.Event | None = None  # run_torch's work still in flight on this slot


ENV_PLUGINS = "ATTNX_TRT_PLUGIN_LIBRARIES"  # os.pathsep-separated .so files the user trusts
ENV_HOST_CODE = "ATTNX_TRT_ALLOW_HOST_CODE"  # 1: run the host code a version-compatible plan carries


def trusted_native_code() -> tuple[set[Path], bool]:
    """The plugin libraries (resolved paths) and the host-code permission the user gave through the
    environment. Files are data: a bundle's manifest may say which libraries it needs, never load them."""
    import os

    libs = {Path(p).expanduser().resolve() for p in os.environ.get(ENV_PLUGINS, "").split(os.pathsep) if p.strip()}
    return libs, os.environ.get(ENV_HOST_CODE, "").strip().lower() in ("1", "true", "yes", "on")


class TrtRuntime:
    """Runs a bundle's TensorRT plan. Thread-safe; ``close()`` frees GPU memory (waits for running calls)."""

    kernels = "TensorRT (int8 accumulates in int32)"

    def __init__(
        self,
        bundle: Path,
        manifest: Manifest,
        pool_size: int = 1,
        threads: int | None = None,
        device: int = 0,
        cuda_graph: bool = False,
        pinned: bool = True,
        trusted: bool = False,
    ):
        """``trusted``: the caller built this bundle itself (``attnx build``'s own check), so the native code
        it names — plugin libraries, a version-compatible plan's host code — may run without the opt-ins of
        :func:`trusted_native_code`."""
        if pool_size < 1:
            raise UserError(f"pool_size must be ≥ 1, got {pool_size}")
        self.bundle = Path(bundle)
        self.manifest = manifest
        self.device_index = device
        self.cuda_graph = cuda_graph
        self.pinned = pinned
        self.path = manifest.path_of(self.bundle, "engine")
        hint = rebuild_hint(self.bundle, manifest)
        plan = _read_plan(self.path, manifest, hint)
        trt_mod = import_tensorrt()
        self.device = cuda_mem.device_info(device)
        cuda_mem.set_device(device)
        self.trt_version: str = trt_mod.__version__
        check_plan_compat(manifest, self.trt_version, self.device, self.path.name, hint)

        self._closed = False
        self._close_lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._pool: queue.Queue[_Slot | None] = queue.Queue()
        logger = trt_logger()
        self._runtime = trt_mod.Runtime(logger)
        if threads and hasattr(self._runtime, "max_threads"):
            self._runtime.max_threads = threads
        allowed_libs, host_code = trusted_native_code()
        if manifest.build.get("version_compatible"):
            # A version-compatible plan carries its own lean runtime: host code from the file runs in this process.
            if not (trusted or host_code):
                raise UserError(f"{self.path} is a version-compatible plan, which runs host code stored in the "
                                f"bundle: set {ENV_HOST_CODE}=1 if you trust {self.bundle}, or rebuild it without "
                                "--version-compatible")  # fmt: skip
            self._runtime.engine_host_code_allowed = True
        serialized = set(manifest.build.get("plugin_libraries_serialized") or [])
        for lib in manifest.build.get("plugin_libraries") or []:
            if lib in serialized:
                continue
            if not Path(lib).is_file():
                raise UserError(f"plugin library {lib}, which {self.path.name} needs, is not on this machine: "
                                f"install it there or rebuild with `{hint}`")  # fmt: skip
            # native code named by a file: loaded only when the user named the same library
            if not trusted and Path(lib).resolve() not in allowed_libs:
                raise UserError(f"{self.bundle} asks TensorRT to load plugin library {lib}; attnx loads native code "
                                f"only where you name it: set {ENV_PLUGINS}={lib} if you trust it")  # fmt: skip
            self._runtime.get_plugin_registry().load_library(str(lib))
        with logger.capture() as cap:
            engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise UserError(
                f"TensorRT cannot deserialise {self.path} ({cap.first('no reason given')}): the plan is corrupt or "
                f"incompatible with this TensorRT; rebuild it with `{hint}`"
            )
        self._engine = engine
        self.inputs, self.outputs = self._io_table(engine, manifest)
        try:
            for _ in range(pool_size):
                slot = self._new_slot(logger)
                self._slots.append(slot)
                self._pool.put(slot)
        except BaseException:
            self.close()
            raise
        self.output_names = [o.name for o in self.outputs]

    # -- set-up ------------------------------------------------------------------------------------------

    def _io_table(self, engine: trt.ICudaEngine, manifest: Manifest) -> tuple[list[_IO], list[_IO]]:
        trt_mod = import_tensorrt()
        ins: list[_IO] = []
        outs: list[_IO] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt_mod.TensorIOMode.INPUT
            if is_input and engine.is_shape_inference_io(name):
                raise UserError(
                    f"engine input '{name}' is a shape tensor, which attnx's TensorRT runtime does not feed"
                )
            io = _IO(
                name, is_input, np_dtype(engine.get_tensor_dtype(name), name), tuple(engine.get_tensor_shape(name))
            )
            if is_input:
                if -1 in io.shape:
                    lo, _, hi = engine.get_tensor_profile_shape(name, 0)
                    io.min, io.max = tuple(lo), tuple(hi)
                else:
                    io.min = io.max = io.shape
                ins.append(io)
            else:
                outs.append(io)
        want_in = {s.name: s for s in manifest.inputs}
        want_out = {s.name: s for s in manifest.outputs}
        got_in, got_out = {io.name: io for io in ins}, {io.name: io for io in outs}
        if set(want_in) != set(got_in) or set(want_out) != set(got_out):
            raise UserError(
                f"{self.path.name} does not match manifest.json: the plan has inputs {sorted(got_in)} and outputs "
                f"{sorted(got_out)}, the manifest {sorted(want_in)} and {sorted(want_out)}; rebuild the bundle"
            )
        for name, io in {**got_in, **got_out}.items():
            spec = want_in.get(name) or want_out[name]
            if np.dtype(spec.dtype) != io.dtype:
                raise UserError(
                    f"{self.path.name} does not match manifest.json: tensor '{name}' is {io.dtype} in the plan, "
                    f"{spec.dtype} in the manifest; rebuild the bundle"
                )
        order = [s.name for s in manifest.inputs]
        ins.sort(key=lambda io: order.index(io.name))
        out_order = [s.name for s in manifest.outputs]
        outs.sort(key=lambda io: out_order.index(io.name))
        return ins, outs

    def _new_slot(self, logger: Any) -> _Slot:
        with logger.capture() as cap:
            ctx = self._engine.create_execution_context()
        if ctx is None:
            raise UserError(
                f"TensorRT could not create execution context {len(self._slots) + 1} "
                f"({cap.first('out of GPU memory?')}): "
                "use a smaller pool_size"
            )
        slot = _Slot(ctx=ctx, stream=cuda_mem.Stream())
        try:
            # Size every buffer for the profile's largest shapes once, so calls do not allocate.
            self._set_shapes(slot, tuple(io.max for io in self.inputs))
            self._bind_buffers(slot)
        except BaseException:
            self._free_slot(slot)
            raise
        return slot

    # -- per call ----------------------------------------------------------------------------------------

    def _set_shapes(self, slot: _Slot, key: tuple[tuple[int, ...], ...]) -> None:
        if slot.key == key:
            return
        slot.key = None
        for io, shape in zip(self.inputs, key):
            if not slot.ctx.set_input_shape(io.name, shape):
                raise UserError(
                    f"input '{io.name}' shape {tuple(shape)} is outside the engine's profile "
                    f"{list(io.min)}..{list(io.max)}"
                )
        shapes: dict[str, tuple[int, ...]] = {}
        for io in self.outputs:
            shape = tuple(slot.ctx.get_tensor_shape(io.name))
            if any(d < 0 for d in shape):
                raise UserError(
                    f"output '{io.name}' has a data-dependent shape {shape}, which attnx's TensorRT runtime "
                    "does not support"
                )
            shapes[io.name] = shape
        slot.out_shapes = shapes
        slot.key = key

    def _shapes_of(self, slot: _Slot) -> dict[str, tuple[int, ...]]:
        assert slot.key is not None
        return {**{io.name: s for io, s in zip(self.inputs, slot.key)}, **slot.out_shapes}

    def _bind_buffers(self, slot: _Slot) -> None:
        """Make each tensor's device (and pinned) buffer big enough; point the context at them."""
        moved = False
        for io in (*self.inputs, *self.outputs):
            nbytes = _nbytes(self._shapes_of(slot)[io.name], io.dtype)
            buf = slot.device.get(io.name)
            if buf is None:
                buf = slot.device[io.name] = cuda_mem.DeviceBuffer(nbytes)
                moved = True
            elif buf.ensure(nbytes):
                moved = True
            if self.pinned:
                host = slot.host.get(io.name)
                if host is None:
                    slot.host[io.name] = cuda_mem.PinnedBuffer(nbytes)
                else:
                    host.ensure(nbytes)
            if slot.bound.get(io.name) != buf.ptr:
                if not slot.ctx.set_tensor_address(io.name, buf.ptr):
                    raise RuntimeError(f"TensorRT rejected the address of tensor '{io.name}'")
                slot.bound[io.name] = buf.ptr
        if moved:
            _drop_graphs(slot)  # captured graphs hold the old addresses

    def _key(self, shapes: Mapping[str, tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
        missing = [io.name for io in self.inputs if io.name not in shapes]
        if missing:
            raise UserError(f"missing input(s) {missing}; the engine takes {[io.name for io in self.inputs]}")
        return tuple(tuple(int(d) for d in shapes[io.name]) for io in self.inputs)

    def _acquire(self) -> _Slot:
        if self._closed:
            raise RuntimeError("TrtRuntime is closed")
        slot = self._pool.get()
        if slot is None:  # close() drained the pool while this call waited
            self._pool.put(None)
            raise RuntimeError("TrtRuntime is closed")
        if slot.pending is not None:
            # Let run_torch's enqueue finish before this call changes the context's shapes and addresses.
            try:
                slot.pending.synchronize()
            except BaseException:
                self._pool.put(slot)
                raise
            slot.pending = None
        return slot

    def _enqueue(self, slot: _Slot) -> None:
        if not slot.ctx.execute_async_v3(slot.stream.handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.path} (see the attnx.tensorrt log)")

    def _execute(self, slot: _Slot) -> None:
        """Enqueue the network on the slot's stream, through a CUDA graph when enabled and capturable."""
        key = slot.key
        assert key is not None
        if not self.cuda_graph:
            self._enqueue(slot)
            return
        if key in slot.graphs:
            graph = slot.graphs[key]
            if graph is not None:
                graph.launch(slot.stream)
            else:
                self._enqueue(slot)  # this shape could not be captured
            return
        # First call with this shape: a real run (TensorRT finishes deferred set-up), then capture a replay.
        self._enqueue(slot)
        graph = cuda_mem.CudaGraph()
        graph.begin(slot.stream)
        ok = False
        try:
            ok = bool(slot.ctx.execute_async_v3(slot.stream.handle))
        finally:
            captured = graph.end(slot.stream)
        if ok and captured:
            slot.graphs[key] = graph
        else:
            graph.destroy()
            slot.graphs[key] = None
            log.info("TensorRT enqueue for shapes %s cannot be captured in a CUDA graph; running without", key)

    def _events(self, slot: _Slot) -> list[cuda_mem.Event]:
        if not slot.events:
            slot.events = [cuda_mem.Event() for _ in range(4)]
        return slot.events

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run(feed, timed=False)[0]

    def run_timed(self, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Outputs and GPU times of this call: h2d_ms, compute_ms, d2h_ms (CUDA events) and enqueue_ms (host)."""
        return self._run(feed, timed=True)

    def _run(self, feed: Mapping[str, np.ndarray], timed: bool) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        arrays = {io.name: np.ascontiguousarray(feed[io.name]) if io.name in feed else None for io in self.inputs}
        key = self._key({n: a.shape for n, a in arrays.items() if a is not None})
        for io in self.inputs:
            arr = arrays[io.name]
            assert arr is not None
            if arr.dtype != io.dtype:
                raise UserError(f"input '{io.name}' has dtype {arr.dtype}, the engine wants {io.dtype}")
        slot = self._acquire()
        try:
            cuda_mem.set_device(self.device_index)
            self._set_shapes(slot, key)
            self._bind_buffers(slot)
            shapes = self._shapes_of(slot)
            stream = slot.stream
            ev = self._events(slot) if timed else []
            if timed:
                ev[0].record(stream)
            for io in self.inputs:
                arr = arrays[io.name]
                assert arr is not None
                dst = slot.device[io.name].ptr
                if self.pinned:
                    staging = slot.host[io.name].view(io.dtype, arr.shape)
                    np.copyto(staging, arr)
                    cuda_mem.copy_htod_async(dst, slot.host[io.name].ptr, arr.nbytes, stream)
                else:
                    cuda_mem.copy_htod_async(dst, arr.ctypes.data, arr.nbytes, stream)
            if timed:
                ev[1].record(stream)
            t0 = time.perf_counter()
            self._execute(slot)
            enqueue_ms = (time.perf_counter() - t0) * 1e3
            if timed:
                ev[2].record(stream)
            results: dict[str, np.ndarray] = {}
            for io in self.outputs:
                shape = shapes[io.name]
                if self.pinned:
                    host = slot.host[io.name]
                    results[io.name] = host.view(io.dtype, shape)
                    cuda_mem.copy_dtoh_async(host.ptr, slot.device[io.name].ptr, _nbytes(shape, io.dtype), stream)
                else:
                    out = np.empty(shape, io.dtype)
                    cuda_mem.copy_dtoh_async(out.ctypes.data, slot.device[io.name].ptr, out.nbytes, stream)
                    results[io.name] = out
            if timed:
                ev[3].record(stream)
            stream.synchronize()
            if self.pinned:  # the staging buffers belong to the slot: hand out copies
                results = {k: v.copy() for k, v in results.items()}
            times: dict[str, float] = {}
            if timed:
                times = {
                    "h2d_ms": ev[0].elapsed_ms(ev[1]),
                    "compute_ms": ev[1].elapsed_ms(ev[2]),
                    "d2h_ms": ev[2].elapsed_ms(ev[3]),
                    "enqueue_ms": enqueue_ms,
                }
            return results, times
        finally:
            self._pool.put(slot)

    def run_torch(self, feed: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run on torch CUDA tensors without host copies; outputs are new CUDA tensors.

        Ordered with torch's current stream on this device: the engine waits for work already queued there
        and torch's later work waits for the engine (no host synchronisation).
        """
        import torch

        rt = cuda_mem.cudart()
        tensors: dict[str, torch.Tensor] = {}
        for io in self.inputs:
            if io.name not in feed:
                raise UserError(f"missing input '{io.name}'; the engine takes {[i.name for i in self.inputs]}")
            t = feed[io.name]
            if not t.is_cuda or (t.device.index or 0) != self.device_index:
                raise UserError(
                    f"input '{io.name}' is on {t.device}; run_torch takes tensors on cuda:{self.device_index} "
                    "(use run() for host arrays)"
                )
            want = torch.from_numpy(np.empty(0, io.dtype)).dtype
            if t.dtype != want:
                raise UserError(f"input '{io.name}' has dtype {t.dtype}, the engine wants {want}")
            shape = tuple(t.shape)
            if len(shape) != len(io.min) or any(s < a or s > b for s, a, b in zip(shape, io.min, io.max)):
                raise UserError(
                    f"input '{io.name}' shape {shape} is outside the engine's profile {list(io.min)}..{list(io.max)}"
                )
            tensors[io.name] = t.contiguous()
        key = self._key({n: tuple(t.shape) for n, t in tensors.items()})
        producer = torch.cuda.current_stream(self.device_index)
        producer_stream = rt.cudaStream_t(int(producer.cuda_stream))
        slot = self._acquire()
        try:
            cuda_mem.set_device(self.device_index)
            self._set_shapes(slot, key)
            outs = {
                io.name: torch.empty(slot.out_shapes[io.name], dtype=torch.from_numpy(np.empty(0, io.dtype)).dtype,
                                     device=f"cuda:{self.device_index}")
                for io in self.outputs
            }  # fmt: skip
            for name, t in {**tensors, **outs}.items():
                ptr = int(t.data_ptr())
                if not slot.ctx.set_tensor_address(name, ptr):
                    raise RuntimeError(f"TensorRT rejected the address of tensor '{name}'")
                slot.bound[name] = ptr
            ready, done = self._events(slot)[:2]
            ready.record(producer_stream)
            slot.stream.wait(ready)
            self._enqueue(slot)
            done.record(slot.stream)
            slot.pending = done
            cuda_mem.check(rt.cudaStreamWaitEvent(producer_stream, done.obj, 0), "cudaStreamWaitEvent")
            return outs
        finally:
            self._pool.put(slot)

    # -- information and clean-up ------------------------------------------------------------------------

    @property
    def info(self) -> dict[str, Any]:
        graphs = [g for s in self._slots for g in s.graphs.values()]
        return {
            "backend": "trt",
            "tensorrt_version": self.trt_version,
            "device": self.device,
            "pool_size": len(self._slots),
            "pinned": self.pinned,
            "cuda_graph": self.cuda_graph,
            "cuda_graphs_captured": sum(g is not None for g in graphs),
            "cuda_graphs_refused": sum(g is None for g in graphs),
        }

    def close(self) -> None:
        """Wait for running calls, then free every context, stream, buffer and graph. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots)
            taken = 0
            while taken < len(slots):
                if self._pool.get() is not None:
                    taken += 1
            self._pool.put(None)  # wake callers still waiting for a slot
            for slot in slots:
                try:
                    slot.stream.synchronize()
                except cuda_mem.CudaError as exc:
                    log.warning("while closing %s: %s", self.path, exc)
                self._free_slot(slot)
            self._slots.clear()
            self._engine = None
            self._runtime = None

    def _free_slot(self, slot: _Slot) -> None:
        _drop_graphs(slot)
        for buf in slot.device.values():
            buf.free()
        for host in slot.host.values():
            host.free()
        for ev in slot.events:
            ev.destroy()
        slot.device.clear()
        slot.host.clear()
        slot.events.clear()
        slot.ctx = None
        slot.stream.destroy()

    def __enter__(self) -> TrtRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _drop_graphs(slot: _Slot) -> None:
    for graph in slot.graphs.values():
        if graph is not None:
            graph.destroy()
    slot.graphs.clear()


def _read_plan(path: Path, manifest: Manifest, hint: str) -> bytes:
    """The plan's bytes; a missing, empty or wrong-sized file is named (before TensorRT sees it)."""
    if not path.is_file():
        raise UserError(f"bundle is incomplete: {path.name} is missing; rebuild it with `{hint}`")
    data = path.read_bytes()
    want = manifest.build.get("plan_bytes")
    if not data:
        raise UserError(f"{path} is empty (truncated): rebuild the bundle with `{hint}`")
    if isinstance(want, int) and len(data) != want:
        what = "truncated" if len(data) < want else "modified (larger than built)"
        raise UserError(
            f"{path} is {what}: {len(data)} bytes, the manifest records {want}; rebuild the bundle with `{hint}`"
        )
    return data
