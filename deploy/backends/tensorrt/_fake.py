"""The one stand-in for ``tensorrt`` (builder, ONNX parser, runtime, ``tensorrt.plugin``) and for cuda-python's
``cuda.bindings.runtime``, for machines without TensorRT: the tests and the GPU check (``make gpu-check``,
whose GPU machines have CUDA but no TensorRT wheel). Not library API: only that tool and the tests import it.

:func:`fake_tensorrt` returns one fake ``tensorrt`` module; :class:`FakeCudart` is the fake CUDA runtime. They
model only what attnx calls (``deploy/backends/tensorrt/``: builder.py, runner.py, cuda_mem.py; ``plugins/``:
the ``trt.py`` of each op), with the same return conventions (cuda-python's ``(err, value)`` tuples, TensorRT's
None or False on failure plus a logged error). The fake CUDA runtime keeps "device" memory in host buffers so
that data really flows: H2D copies, an engine that reads its input addresses and writes its outputs, D2H
copies. What they cannot tell is whether TensorRT or CUDA accept the same calls on a GPU: the ``gpu`` tests
(tests/deploy/backends/tensorrt/, tests/plugins/test_trt_gpu.py) are for that.

Fake plans are ``b"FAKEPLAN\\n" + JSON`` (:func:`plan_bytes`): {"inputs": [{name, dtype, shape, min, max}],
"outputs": [{name, dtype, of, op, k}]}, where op "affine" gives ``2*x + 1`` (x's shape), "scale" gives ``k*x``,
"pool" the mean over the last two axes, "data_dependent" a shape TensorRT knows only after running; those are
computed on the host from the "device" buffers, so they need :class:`FakeCudart`. Op "copy" gives ``x`` by a
device-to-device ``cudaMemcpyAsync`` enqueued on the execution stream through the CUDA runtime the fake was
made with, so it also runs on a real GPU with the real ``cuda.bindings.runtime`` (the GPU check's engine) and
is captured into CUDA graphs like TensorRT's own work. Extra keys: "max_contexts" (execution contexts before
one fails as out of memory), "uncapturable" (the enqueue breaks a CUDA graph capture).

The fake parser makes one layer per ONNX node, whose outputs are the node's output tensors; the fake builder
makes the network's outputs (the graph's outputs and any tensor marked with ``mark_output``) the plan's
outputs: a graph output computes "affine", the output of the node at index i "scale" with k = i + 1, so a test
can tell which tensor came back.

``tensorrt.plugin`` (the module's ``plugin`` attribute) models the parts of tensorrt.plugin 11.4 the attnx
plugins use, including the signature checks tensorrt.plugin applies at decoration time (annotations must be
real classes; aot_impl takes the inputs, every attribute in registration order, then ``outputs, tactic``); what
was registered is in its ``REGISTRY`` (plugin id → {"desc", "tensors", "attrs", "autotune", "aot"}). Whether
TensorRT accepts the PTX or launches it correctly needs a GPU.
"""

from __future__ import annotations

import ctypes
import enum
import inspect
import json
import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PLAN_MAGIC = b"FAKEPLAN\n"
CACHE_MAGIC = b"FAKECACHE\n"


# ---------------------------------------------------------------------------------------------------------
# cuda.bindings.runtime


class cudaError_t(enum.IntEnum):  # noqa: N801 - cuda-python's names
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorStreamCaptureInvalidated = 901


class _Handle:
    _next = 0x1000

    def __init__(self, value: int | None = None) -> None:
        if value is None:
            _Handle._next += 16
            value = _Handle._next
        self.value = value

    def __int__(self) -> int:
        return self.value


class FakeCudart:
    """Enough of ``cuda.bindings.runtime``; counts live allocations so tests can check ``close()``.

    Device-to-device copies are enqueued like the engine's work (deferred into a graph while the stream is
    captured); ``cudaMemGetInfo`` reports a fixed total less the live device allocations. ``fail`` maps a
    function name to the error it returns on its next call.
    """

    cudaStreamNonBlocking = 1
    TOTAL_MEMORY = 1 << 34

    class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2
        cudaMemcpyDeviceToDevice = 3

    class cudaStreamCaptureMode(enum.IntEnum):  # noqa: N801
        cudaStreamCaptureModeGlobal = 0
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self, devices: int = 1, cc: tuple[int, int] = (8, 6), name: bytes = b"Fake RTX A6000") -> None:
        self.devices, self.cc, self.name = devices, cc, name
        self.device_mem: dict[int, Any] = {}
        self.host_mem: dict[int, Any] = {}
        self.streams: set[int] = set()
        self.events: set[int] = set()
        self.graphs: set[int] = set()
        self.capturing: dict[int, list[Callable[[], None] | None]] = {}
        self.launches = 0
        self.copies: list[tuple[str, int]] = []
        self.fail: dict[str, cudaError_t] = {}  # function name → error it returns once
        self.lock = threading.Lock()

    def _err(self, fn: str) -> cudaError_t:
        return self.fail.pop(fn, cudaError_t.cudaSuccess)

    def cudaGetErrorName(self, err: Any) -> tuple[cudaError_t, bytes]:
        return cudaError_t.cudaSuccess, cudaError_t(int(err)).name.encode()

    def cudaGetDeviceCount(self) -> tuple[cudaError_t, int | None]:
        if not self.devices:
            return cudaError_t.cudaErrorInsufficientDriver, None
        return cudaError_t.cudaSuccess, self.devices

    def cudaSetDevice(self, device: int) -> tuple[cudaError_t]:
        return (cudaError_t.cudaSuccess if device < self.devices else cudaError_t.cudaErrorInvalidValue,)

    def cudaGetDeviceProperties(self, device: int) -> tuple[cudaError_t, Any]:
        props = types.SimpleNamespace(name=self.name, major=self.cc[0], minor=self.cc[1], totalGlobalMem=48 << 30)
        return cudaError_t.cudaSuccess, props

    def cudaDriverGetVersion(self) -> tuple[cudaError_t, int]:
        return cudaError_t.cudaSuccess, 13000

    def cudaRuntimeGetVersion(self) -> tuple[cudaError_t, int]:
        return cudaError_t.cudaSuccess, 12090

    def cudaMemGetInfo(self) -> tuple[cudaError_t, int, int]:
        with self.lock:
            used = sum(len(b) for b in self.device_mem.values())
        return cudaError_t.cudaSuccess, self.TOTAL_MEMORY - used, self.TOTAL_MEMORY

    def _alloc(self, table: dict[int, Any], nbytes: int, fn: str) -> tuple[cudaError_t, int]:
        err = self._err(fn)
        if err:
            return err, 0
        buf = ctypes.create_string_buffer(nbytes)
        ptr = ctypes.addressof(buf)
        with self.lock:
            table[ptr] = buf
        return cudaError_t.cudaSuccess, ptr

    def cudaMalloc(self, nbytes: int) -> tuple[cudaError_t, int]:
        return self._alloc(self.device_mem, nbytes, "cudaMalloc")

    def cudaMallocHost(self, nbytes: int) -> tuple[cudaError_t, int]:
        return self._alloc(self.host_mem, nbytes, "cudaMallocHost")

    def cudaFree(self, ptr: int) -> tuple[cudaError_t]:
        with self.lock:
            return (
                cudaError_t.cudaSuccess
                if self.device_mem.pop(ptr, None) is not None
                else cudaError_t.cudaErrorInvalidValue,
            )

    def cudaFreeHost(self, ptr: int) -> tuple[cudaError_t]:
        with self.lock:
            return (
                cudaError_t.cudaSuccess
                if self.host_mem.pop(ptr, None) is not None
                else cudaError_t.cudaErrorInvalidValue,
            )

    def is_device(self, ptr: int, nbytes: int) -> bool:
        """Whether ``[ptr, ptr + nbytes)`` lies inside one live device allocation."""
        with self.lock:
            return any(p <= ptr and ptr + nbytes <= p + len(b) for p, b in self.device_mem.items())

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple[cudaError_t]:
        if int(stream) not in self.streams:
            return (cudaError_t.cudaErrorInvalidValue,)
        if kind == self.cudaMemcpyKind.cudaMemcpyDeviceToDevice:
            if not (self.is_device(dst, count) and self.is_device(src, count)):
                return (cudaError_t.cudaErrorInvalidValue,)

            def copy() -> None:
                ctypes.memmove(dst, src, count)
                self.copies.append(("d2d", count))

            captured = self.capturing.get(int(stream))
            if captured is not None:
                captured.append(copy)
            else:
                copy()
            return (cudaError_t.cudaSuccess,)
        to_device = kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice
        dev, host = (dst, src) if to_device else (src, dst)
        if not self.is_device(dev, count) or self.is_device(host, count):
            return (cudaError_t.cudaErrorInvalidValue,)
        ctypes.memmove(dst, src, count)
        self.copies.append(("h2d" if to_device else "d2h", count))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[cudaError_t, _Handle]:
        h = _Handle()
        self.streams.add(int(h))
        return cudaError_t.cudaSuccess, h

    def cudaStream_t(self, value: int) -> _Handle:  # noqa: N802
        self.streams.add(int(value))  # a stream someone else (torch) created
        return _Handle(value)

    def cudaStreamSynchronize(self, stream: Any) -> tuple[cudaError_t]:
        return (cudaError_t.cudaSuccess if int(stream) in self.streams else cudaError_t.cudaErrorInvalidValue,)

    def cudaStreamDestroy(self, stream: Any) -> tuple[cudaError_t]:
        self.streams.discard(int(stream))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamWaitEvent(self, stream: Any, event: Any, flags: int) -> tuple[cudaError_t]:
        ok = int(stream) in self.streams and int(event) in self.events
        return (cudaError_t.cudaSuccess if ok else cudaError_t.cudaErrorInvalidValue,)

    def cudaEventCreate(self) -> tuple[cudaError_t, _Handle]:
        h = _Handle()
        h.t = 0.0  # type: ignore[attr-defined]
        self.events.add(int(h))
        return cudaError_t.cudaSuccess, h

    def cudaEventRecord(self, event: Any, stream: Any) -> tuple[cudaError_t]:
        event.t = time.perf_counter()
        return (cudaError_t.cudaSuccess,)

    def cudaEventSynchronize(self, event: Any) -> tuple[cudaError_t]:
        return (cudaError_t.cudaSuccess,)

    def cudaEventElapsedTime(self, start: Any, end: Any) -> tuple[cudaError_t, float]:
        return cudaError_t.cudaSuccess, (end.t - start.t) * 1e3

    def cudaEventDestroy(self, event: Any) -> tuple[cudaError_t]:
        self.events.discard(int(event))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamBeginCapture(self, stream: Any, mode: Any) -> tuple[cudaError_t]:
        self.capturing[int(stream)] = []
        return (cudaError_t.cudaSuccess,)

    def cudaStreamEndCapture(self, stream: Any) -> tuple[cudaError_t, Any]:
        ops = self.capturing.pop(int(stream))
        if ops is None or any(op is None for op in ops):  # None: work that cannot be captured
            return cudaError_t.cudaErrorStreamCaptureInvalidated, None
        g = _Handle()
        g.ops = ops  # type: ignore[attr-defined]
        self.graphs.add(int(g))
        return cudaError_t.cudaSuccess, g

    def cudaGraphInstantiate(self, graph: Any, flags: int) -> tuple[cudaError_t, Any]:
        ex = _Handle()
        ex.ops = graph.ops  # type: ignore[attr-defined]
        self.graphs.add(int(ex))
        return cudaError_t.cudaSuccess, ex

    def cudaGraphLaunch(self, graph_exec: Any, stream: Any) -> tuple[cudaError_t]:
        self.launches += 1
        for op in graph_exec.ops:
            op()
        return (cudaError_t.cudaSuccess,)

    def cudaGraphExecDestroy(self, graph_exec: Any) -> tuple[cudaError_t]:
        self.graphs.discard(int(graph_exec))
        return (cudaError_t.cudaSuccess,)

    cudaGraphDestroy = cudaGraphExecDestroy

    def live(self) -> dict[str, int]:
        """How many device and host buffers, streams, events and graphs exist now."""
        return {
            "device": len(self.device_mem),
            "host": len(self.host_mem),
            "streams": len(self.streams),
            "events": len(self.events),
            "graphs": len(self.graphs),
        }


FakeCudart.cudaError_t = cudaError_t  # type: ignore[attr-defined]  # as the bindings module has it


# ---------------------------------------------------------------------------------------------------------
# tensorrt: types


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.IntEnum):
    """TensorRT's values; printed as TensorRT's bindings print them (``DataType.HALF``)."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8

    def __str__(self) -> str:
        return f"DataType.{self.name}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class ILogger:
    def __init__(self) -> None:
        pass

    def log(self, severity: Severity, msg: str) -> None:  # overridden
        pass


ILogger.Severity = Severity  # type: ignore[attr-defined]


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class BuilderFlag(enum.IntEnum):
    VERSION_COMPATIBLE = 3
    EXCLUDE_LEAN_RUNTIME = 4


class HardwareCompatibilityLevel(enum.IntEnum):
    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


class NetworkDefinitionCreationFlag(enum.IntEnum):
    """TensorRT 11's flags (strongly typed is the only mode there)."""

    PREFER_AOT_PYTHON_PLUGINS = 2


class NetworkDefinitionCreationFlag10(enum.IntEnum):
    """TensorRT 10's flags."""

    STRONGLY_TYPED = 1
    PREFER_AOT_PYTHON_PLUGINS = 2


_NP: dict[DataType, type[np.generic]] = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT32: np.int32,
    DataType.INT64: np.int64,
}
_SAME_SHAPE = ("affine", "scale", "copy")


# ---------------------------------------------------------------------------------------------------------
# tensorrt: runtime


class FakeEngine:
    def __init__(self, spec: dict[str, Any], cudart: Any, logger: ILogger) -> None:
        self.spec, self.cudart, self.logger = spec, cudart, logger
        self.tensors = [(t, TensorIOMode.INPUT) for t in spec["inputs"]] + [
            (t, TensorIOMode.OUTPUT) for t in spec["outputs"]
        ]
        self.by_name = {t["name"]: t for t, _ in self.tensors}
        self.contexts = 0

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    def get_tensor_name(self, i: int) -> str:
        return str(self.tensors[i][0]["name"])

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return next(m for t, m in self.tensors if t["name"] == name)

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self.by_name[name]["dtype"]]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        t = self.by_name[name]
        if "shape" in t:
            return tuple(t["shape"])
        src = self.by_name[t["of"]]["shape"]
        return tuple(src) if t["op"] in _SAME_SHAPE else tuple(src[:-2])

    def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
        t = self.by_name[name]
        return [tuple(t["min"]), tuple(t["min"]), tuple(t["max"])]

    def is_shape_inference_io(self, name: str) -> bool:
        return False

    def create_execution_context(self) -> FakeContext | None:
        if self.spec.get("max_contexts") is not None and self.contexts >= self.spec["max_contexts"]:
            self.logger.log(Severity.ERROR, "out of device memory creating an execution context")
            return None
        self.contexts += 1
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.executions = 0
        self.busy = False

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        t = self.engine.by_name[name]
        shape = tuple(int(d) for d in shape)
        ok = len(shape) == len(t["min"]) and all(a <= s <= b for s, a, b in zip(shape, t["min"], t["max"]))
        if not ok:
            self.engine.logger.log(Severity.ERROR, f"IExecutionContext::setInputShape: {name} {shape} out of profile")
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        t = self.engine.by_name[name]
        if "of" not in t:
            return self.shapes.get(name, self.engine.get_tensor_shape(name))
        src = self.shapes.get(t["of"])
        if src is None:
            return self.engine.get_tensor_shape(name)
        if t["op"] == "data_dependent":
            return (-1,)
        return src if t["op"] in _SAME_SHAPE else src[:-2]

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        return True

    def _outputs(self, on_device: bool) -> list[dict[str, Any]]:
        return [t for t in self.engine.spec["outputs"] if (t["op"] == "copy") == on_device]

    def _compute(self) -> None:
        """The host-computed outputs, from and into the fake CUDA runtime's "device" buffers."""
        if self.busy:
            raise AssertionError("one execution context used by two callers at once")
        self.busy = True
        try:
            for t in self._outputs(on_device=False):
                src = self.engine.by_name[t["of"]]
                shape = self.shapes[src["name"]]
                dt = np.dtype(_NP[DataType[src["dtype"]]])
                n = int(np.prod(shape))
                raw = (ctypes.c_char * (n * dt.itemsize)).from_address(self.addresses[src["name"]])
                x = np.frombuffer(memoryview(raw), dt)
                x = x.reshape(shape)
                if t["op"] == "affine":
                    y = 2 * x + 1
                elif t["op"] == "scale":
                    y = t["k"] * x
                else:
                    y = x.mean(axis=(-2, -1))
                y = np.ascontiguousarray(y, dtype=_NP[DataType[t["dtype"]]])
                if not self.engine.cudart.is_device(self.addresses[t["name"]], y.nbytes):
                    raise AssertionError(f"output {t['name']} bound to memory that is not a device buffer")
                ctypes.memmove(self.addresses[t["name"]], y.ctypes.data, y.nbytes)
                time.sleep(0.001)  # give other threads a chance to collide
        finally:
            self.busy = False

    def _enqueue_copies(self, stream: int) -> bool:
        """The "copy" outputs as device-to-device copies on ``stream`` (real CUDA work on a real runtime)."""
        if self.busy:
            raise AssertionError("one execution context used by two callers at once")
        self.busy = True
        try:
            rt = self.engine.cudart
            kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
            for t in self._outputs(on_device=True):
                src = self.engine.by_name[t["of"]]
                nbytes = int(np.prod(self.shapes[src["name"]])) * np.dtype(_NP[DataType[src["dtype"]]]).itemsize
                dst, frm = self.addresses[t["name"]], self.addresses[src["name"]]
                res = rt.cudaMemcpyAsync(dst, frm, nbytes, kind, rt.cudaStream_t(int(stream)))
                err = res[0] if isinstance(res, tuple) else res  # cuda-python's (err,)
                if int(err):
                    self.engine.logger.log(Severity.ERROR, f"enqueueV3: copying {t['name']} failed ({err!r})")
                    return False
            return True
        finally:
            self.busy = False

    def execute_async_v3(self, stream: int) -> bool:
        if set(self.addresses) != set(self.engine.by_name):
            self.engine.logger.log(Severity.ERROR, "enqueueV3: a tensor has no address")
            return False
        # A FakeCudart's record of a CUDA graph capture on this stream (the real runtime captures by itself).
        captured = getattr(self.engine.cudart, "capturing", {}).get(int(stream))
        if self._outputs(on_device=True) and not self._enqueue_copies(stream):
            return False
        if captured is not None:
            if self._outputs(on_device=False):
                captured.append(None if self.engine.spec.get("uncapturable") else self._compute)
            return True
        self.executions += 1
        if self._outputs(on_device=False):
            self._compute()
        return True


class FakeRuntime:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        self.engine_host_code_allowed = False
        self.max_threads = 1
        self.registry = FakeRegistry()
        FAKE_STATE["runtimes"].append(self)

    def get_plugin_registry(self) -> FakeRegistry:
        return self.registry

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        if not bytes(data).startswith(PLAN_MAGIC):
            self.logger.log(
                Severity.ERROR,
                "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (magic tag does not match)",
            )
            return None
        try:
            spec = json.loads(bytes(data)[len(PLAN_MAGIC) :])
        except ValueError:
            self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (truncated)")
            return None
        return FakeEngine(spec, FAKE_STATE["cudart"], self.logger)


class FakeRegistry:
    def __init__(self) -> None:
        self.loaded: list[str] = []

    def load_library(self, path: str) -> object:
        self.loaded.append(path)
        return object()


# ---------------------------------------------------------------------------------------------------------
# tensorrt: builder and ONNX parser


class FakeTensor:
    def __init__(self, name: str, shape: list[int], dtype: DataType, op: str = "affine", k: int = 1) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype
        self.op, self.k = op, k  # what the fake plan computes for it when it is an output (see the docstring)
        self.is_network_output = False
        self.is_shape_tensor = False


class FakeLayer:
    def __init__(self, name: str, outputs: list[FakeTensor]) -> None:
        self.name, self.outputs = name, outputs

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_output(self, i: int) -> FakeTensor:
        return self.outputs[i]


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []
        self.layers: list[FakeLayer] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> FakeTensor:
        return self.inputs[i]

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_output(self, i: int) -> FakeTensor:
        return self.outputs[i]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self.layers[i]

    def mark_output(self, tensor: FakeTensor) -> None:
        if tensor.is_network_output:
            raise AssertionError(f"tensor {tensor.name} marked as an output twice")
        tensor.is_network_output = True
        self.outputs.append(tensor)


class FakeParserError:
    def __init__(self, node: int, name: str, op: str, desc: str) -> None:
        self._node, self._name, self._op, self._desc = node, name, op, desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def desc(self) -> str:
        return self._desc


class FakeOnnxParser:
    """Parses real ONNX bytes; ops named in ``UNSUPPORTED`` (or unknown plugin ops) are errors."""

    UNSUPPORTED = {"NonMaxSuppression", "Unique"}

    def __init__(self, network: FakeNetwork, logger: ILogger) -> None:
        self.network, self.logger = network, logger
        self.errors: list[FakeParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> FakeParserError:
        return self.errors[i]

    def parse(self, data: bytes, path: str | None = None) -> bool:
        import onnx

        model = onnx.load_from_string(bytes(data))
        FAKE_STATE["parsed"].append(model)
        for i, node in enumerate(model.graph.node):
            if node.op_type in self.UNSUPPORTED:
                self.errors.append(
                    FakeParserError(i, node.name, node.op_type, f"No importer registered for op: {node.op_type}")
                )
        if self.errors:
            return False
        inits = {t.name for t in model.graph.initializer}
        for vi in model.graph.input:
            if vi.name in inits:
                continue
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
            self.network.inputs.append(FakeTensor(vi.name, dims, DataType.FLOAT))
        graph_outputs = {o.name for o in model.graph.output}
        for i, node in enumerate(model.graph.node):
            outs = [FakeTensor(t, [], DataType.FLOAT, "affine" if t in graph_outputs else "scale", i + 1)
                    for t in node.output if t]  # fmt: skip
            for t in outs:
                t.is_shape_tensor = node.op_type == "Shape"
            self.network.layers.append(FakeLayer(node.name or f"{node.op_type}_{i}", outs))
        for layer in self.network.layers:
            for t in layer.outputs:
                if t.name in graph_outputs:
                    self.network.mark_output(t)
        return True

    def get_used_vc_plugin_libraries(self) -> list[str]:
        return []


class FakeTimingCache:
    def __init__(self, entries: list[str]) -> None:
        self.entries = entries

    def serialize(self) -> bytes:
        return CACHE_MAGIC + json.dumps(self.entries).encode()


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}

    def set_shape(self, name: str, lo: Sequence[int], opt: Sequence[int], hi: Sequence[int]) -> None:
        self.shapes[name] = (list(lo), list(opt), list(hi))


class FakeConfig:
    def __init__(self) -> None:
        self.pool_limits: dict[Any, int] = {}
        self.flags: set[Any] = set()
        self.profiles: list[FakeProfile] = []
        self.builder_optimization_level = 3
        self.hardware_compatibility_level: Any = "NONE"
        self.plugins_to_serialize: list[str] = []
        self.cache: FakeTimingCache | None = None

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.pool_limits[pool] = size

    def set_flag(self, flag: Any) -> None:
        self.flags.add(flag)

    def add_optimization_profile(self, p: FakeProfile) -> int:
        self.profiles.append(p)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        data = bytes(data)
        if not data:
            return FakeTimingCache([])
        if not data.startswith(CACHE_MAGIC):
            raise RuntimeError("ITimingCache: could not deserialize the timing cache")
        return FakeTimingCache(json.loads(data[len(CACHE_MAGIC) :]))

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        if any(e.startswith("other-gpu") for e in cache.entries):
            return False
        self.cache = cache
        return True

    def get_timing_cache(self) -> FakeTimingCache | None:
        return self.cache


class FakeBuilder:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        self.max_threads = 0
        self.registry = FakeRegistry()
        FAKE_STATE["builders"].append(self)

    def create_network(self, flags: int = 0) -> FakeNetwork:
        self.network = FakeNetwork(flags)
        return self.network

    def create_builder_config(self) -> FakeConfig:
        self.config = FakeConfig()
        return self.config

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def get_plugin_registry(self) -> FakeRegistry:
        return self.registry

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
        if FAKE_STATE.get("build_fails"):
            self.logger.log(Severity.ERROR, "Error Code 2: Internal Error (insufficient workspace for tactic)")
            return None
        if any(d < 0 for t in network.inputs for d in t.shape) and not config.profiles:
            self.logger.log(Severity.ERROR, "Network has dynamic inputs, but no optimization profile")
            return None
        if config.cache is not None:
            config.cache.entries.append(f"tactic-{len(config.cache.entries)}")
        prof = config.profiles[0].shapes if config.profiles else {}
        ins = []
        for t in network.inputs:
            lo, _, hi = prof.get(t.name, (t.shape, t.shape, t.shape))
            ins.append({"name": t.name, "dtype": "FLOAT", "shape": t.shape, "min": lo, "max": hi})
        outs = [{"name": t.name, "dtype": t.dtype.name, "of": ins[0]["name"], "op": t.op, "k": t.k}
                for t in network.outputs]  # fmt: skip
        FAKE_STATE["built_outputs"].append([t.name for t in network.outputs])
        spec = {"inputs": ins, "outputs": outs}
        return PLAN_MAGIC + json.dumps(spec).encode()


# ---------------------------------------------------------------------------------------------------------
# tensorrt.plugin

ATTR_TYPES = (int, float, str, bool, bytes)


class ShapeExpr:
    def __init__(self, value: int | None = None) -> None:
        self.value = value

    @property
    def is_fake(self) -> bool:
        return self.value is None

    @property
    def is_constant(self) -> bool:
        if self.value is None:
            raise RuntimeError("fake ShapeExpr")
        return True

    def constant_value(self) -> int:
        assert self.value is not None
        return self.value

    def _op(self, other: Any, f: Callable[[int, int], int]) -> ShapeExpr:
        o = other.value if isinstance(other, ShapeExpr) else other
        return ShapeExpr(None if self.value is None or o is None else f(self.value, o))

    def __mul__(self, o: Any) -> ShapeExpr:
        return self._op(o, lambda a, b: a * b)

    def __add__(self, o: Any) -> ShapeExpr:
        return self._op(o, lambda a, b: a + b)

    def __floordiv__(self, o: Any) -> ShapeExpr:
        return self._op(o, lambda a, b: a // b)


class SymInt32:
    def __init__(self, value: Any = None) -> None:
        self.value: Any = value.value if isinstance(value, (ShapeExpr, SymInt32)) else value


class SymIntExprs:
    def __init__(self, length: int) -> None:
        self.items: list[Any] = [None] * length

    def __setitem__(self, i: int, v: Any) -> None:
        assert isinstance(v, SymInt32), type(v)
        self.items[i] = v

    def __len__(self) -> int:
        return len(self.items)


class KernelLaunchParams:
    def __init__(self) -> None:
        self.grid_x: Any = 1
        self.grid_y: Any = 1
        self.grid_z: Any = 1
        self.block_x: Any = 1
        self.shared_mem: Any = 0


class ShapeExprs(list[ShapeExpr]):
    def numel(self) -> ShapeExpr:
        out = ShapeExpr(1)
        for e in self:
            out = out * e
        return out


class _Shape(tuple[int, ...]):
    _max: tuple[int, ...] | None = None

    @property
    def max(self) -> tuple[int, ...] | None:
        return self._max


class TensorDesc:
    def __init__(self, dims: tuple[Any, ...], dtype: DataType, max_dims: tuple[int, ...] | None = None) -> None:
        self.shape_expr = ShapeExprs(d if isinstance(d, ShapeExpr) else ShapeExpr(d) for d in dims)
        self.dtype = dtype
        shape = _Shape(-1 if e.value is None else e.value for e in self.shape_expr)
        shape._max = max_dims
        self.shape = shape


class AutoTuneCombination:
    def __init__(self, io_types: str, layouts: str = "LINEAR") -> None:
        self.io_types, self.layouts = io_types, layouts


def from_shape_expr(shape: tuple[Any, ...], dtype: DataType) -> TensorDesc:
    """A tensor descriptor of shape expressions (``tensorrt.plugin.from_shape_expr``)."""
    return TensorDesc(tuple(shape), dtype)


def cdiv(a: Any, b: Any) -> ShapeExpr:
    """Ceiling division of shape expressions or ints (``tensorrt.plugin.cdiv``)."""
    av = a.value if isinstance(a, ShapeExpr) else a
    bv = b.value if isinstance(b, ShapeExpr) else b
    return ShapeExpr(None if av is None or bv is None else -(-av // bv))


def _params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(fn).parameters.values())


class _PluginDecorators:
    """``tensorrt.plugin``'s decorators, with its checks; what they register goes into ``registry``."""

    def __init__(self) -> None:
        self.registry: dict[str, dict[str, Any]] = {}

    def register(self, plugin_id: str) -> Callable[[Any], Any]:
        def deco(fn: Any) -> Any:
            tensors: list[str] = []
            attrs: dict[str, type] = {}
            for p in _params(fn):
                assert p.default is inspect.Parameter.empty, f"{p.name}: tensorrt.plugin allows no defaults"
                ann = p.annotation
                assert not isinstance(ann, str), f"{p.name}: string annotation (from __future__ import annotations?)"
                if inspect.isclass(ann) and issubclass(ann, TensorDesc):
                    assert not attrs, "tensors must precede attributes"
                    tensors.append(p.name)
                else:
                    assert ann in ATTR_TYPES, f"{p.name}: unsupported attribute type {ann}"
                    attrs[p.name] = ann
            assert inspect.signature(fn).return_annotation is TensorDesc
            self.registry[plugin_id] = {"desc": fn, "tensors": tensors, "attrs": attrs}
            return fn

        return deco

    def autotune(self, plugin_id: str) -> Callable[[Any], Any]:
        def deco(fn: Any) -> Any:
            d = self.registry[plugin_id]
            names = [p.name for p in _params(fn)]
            assert names[: len(d["tensors"])] == d["tensors"] and names[-1] == "outputs", names
            d["autotune"] = fn
            return fn

        return deco

    def aot_impl(self, plugin_id: str) -> Callable[[Any], Any]:
        def deco(fn: Any) -> Any:
            d = self.registry[plugin_id]
            names = [p.name for p in _params(fn)]
            # tensorrt.plugin calls aot_impl(*inputs, *all_attribute_values, outputs, tactic).
            assert names == [*d["tensors"], *d["attrs"], "outputs", "tactic"], names
            for p in _params(fn):
                if p.name in d["attrs"]:
                    assert p.annotation is d["attrs"][p.name], p.name
            ret = inspect.signature(fn).return_annotation
            assert not isinstance(ret, str)
            d["aot"] = fn
            return fn

        return deco


def _plugin_module() -> types.ModuleType:
    plugin = types.ModuleType("tensorrt.plugin")
    decorators = _PluginDecorators()
    names: dict[str, Any] = {
        "ShapeExpr": ShapeExpr, "SymInt32": SymInt32, "SymIntExprs": SymIntExprs,
        "KernelLaunchParams": KernelLaunchParams, "TensorDesc": TensorDesc, "AutoTuneCombination": AutoTuneCombination,
        "from_shape_expr": from_shape_expr, "cdiv": cdiv, "register": decorators.register,
        "autotune": decorators.autotune, "aot_impl": decorators.aot_impl, "REGISTRY": decorators.registry,
    }  # fmt: skip
    for name, value in names.items():
        setattr(plugin, name, value)
    return plugin


# ---------------------------------------------------------------------------------------------------------
# the module

# What the fakes did, for tests to look at: the runtimes and builders made, the ONNX models parsed, each
# build's network outputs; "cudart": the CUDA runtime engines run on; "build_fails": the next builds fail.
FAKE_STATE: dict[str, Any] = {"runtimes": [], "builders": [], "parsed": [], "built_outputs": [], "cudart": None}


def fake_tensorrt(version: str = "11.4.0.106", cudart: Any = None) -> types.ModuleType:
    """A fake ``tensorrt`` module: builder, ONNX parser, runtime, and ``plugin`` (``tensorrt.plugin``, with a
    fresh registry); engines run on ``cudart`` (a :class:`FakeCudart`, or the real ``cuda.bindings.runtime``
    for plans of "copy" outputs). 10.x versions also get the STRONGLY_TYPED creation flag. Resets FAKE_STATE."""
    FAKE_STATE.update(runtimes=[], builders=[], parsed=[], built_outputs=[], cudart=cudart, build_fails=False)
    m = types.ModuleType("tensorrt")
    m.__version__ = version  # type: ignore[attr-defined]
    m.ILogger = ILogger  # type: ignore[attr-defined]
    m.Logger = ILogger  # type: ignore[attr-defined]
    m.DataType = DataType  # type: ignore[attr-defined]
    m.TensorIOMode = TensorIOMode  # type: ignore[attr-defined]
    m.Runtime = FakeRuntime  # type: ignore[attr-defined]
    m.Builder = FakeBuilder  # type: ignore[attr-defined]
    m.OnnxParser = FakeOnnxParser  # type: ignore[attr-defined]
    m.MemoryPoolType = MemoryPoolType  # type: ignore[attr-defined]
    m.BuilderFlag = BuilderFlag  # type: ignore[attr-defined]
    m.HardwareCompatibilityLevel = HardwareCompatibilityLevel  # type: ignore[attr-defined]
    m.NetworkDefinitionCreationFlag = (  # type: ignore[attr-defined]
        NetworkDefinitionCreationFlag10 if version.startswith("10.") else NetworkDefinitionCreationFlag
    )
    m.plugin = _plugin_module()  # type: ignore[attr-defined]
    return m


def plan_bytes(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], **extra: Any) -> bytes:
    """A fake plan (see the module docstring): its inputs, outputs and extra keys."""
    return PLAN_MAGIC + json.dumps({"inputs": inputs, "outputs": outputs, **extra}).encode()
