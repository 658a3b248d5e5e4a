"""Small stand-ins for ``tensorrt`` and cuda-python's ``cuda.bindings.runtime``, for tests without a GPU.

They model only what attnx.deploy.backends.tensorrt (builder.py, runner.py, cuda_mem.py) calls, with the same return
conventions (cuda-python's ``(err, value)`` tuples, TensorRT's None on failure plus a logged error),
and keep "device" memory in host buffers so that data really flows: H2D copies, an engine that reads
its input addresses and writes its outputs, D2H copies. What they cannot tell is whether TensorRT or
CUDA accept the same calls on a GPU: tests/deploy/backends/tensorrt/ have GPU tests for that.

Fake plans are ``b"FAKEPLAN\\n" + JSON``: {"inputs": [{name, dtype, shape, min, max}], "outputs": [{name,
dtype, of, op, k}]}, where op "affine" gives ``2*x + 1`` (x's shape), "scale" gives ``k*x`` and "pool" the
mean over the last two axes. The fake parser makes one layer per ONNX node, whose outputs are the node's
output tensors; the fake builder makes the network's outputs (the graph's outputs and any tensor marked with
``mark_output``) the plan's outputs: a graph output computes "affine", the output of the node at index i
"scale" with k = i + 1, so a test can tell which tensor came back.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import json
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import onnx

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
    """Enough of ``cuda.bindings.runtime``; counts live allocations so tests can check ``close()``."""

    cudaStreamNonBlocking = 1

    class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStreamCaptureMode(enum.IntEnum):  # noqa: N801
        cudaStreamCaptureModeGlobal = 0
        cudaStreamCaptureModeThreadLocal = 1

    cudaError_t = cudaError_t

    def __init__(self, devices: int = 1, cc: tuple[int, int] = (8, 6), name: bytes = b"Fake RTX A6000") -> None:
        self.devices, self.cc, self.name = devices, cc, name
        self.device_mem: dict[int, Any] = {}
        self.host_mem: dict[int, Any] = {}
        self.streams: set[int] = set()
        self.events: set[int] = set()
        self.graphs: set[int] = set()
        self.capturing: dict[int, list[Callable[[], None]]] = {}
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
        with self.lock:
            return any(p <= ptr and ptr + nbytes <= p + len(b) for p, b in self.device_mem.items())

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple[cudaError_t]:
        to_device = kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice
        dev, host = (dst, src) if to_device else (src, dst)
        if not self.is_device(dev, count) or self.is_device(host, count) or int(stream) not in self.streams:
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
        return {
            "device": len(self.device_mem),
            "host": len(self.host_mem),
            "streams": len(self.streams),
            "events": len(self.events),
            "graphs": len(self.graphs),
        }


# ---------------------------------------------------------------------------------------------------------
# tensorrt


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class ILogger:
    Severity = Severity

    def __init__(self) -> None:
        pass

    def log(self, severity: Severity, msg: str) -> None:  # overridden
        pass


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32, DataType.INT64: np.int64}


class FakeEngine:
    def __init__(self, spec: dict[str, Any], cudart: FakeCudart, logger: ILogger) -> None:
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
        return tuple(src) if t["op"] in ("affine", "scale") else tuple(src[:-2])

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
        return src if t["op"] in ("affine", "scale") else src[:-2]

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        return True

    def _compute(self) -> None:
        if self.busy:
            raise AssertionError("one execution context used by two callers at once")
        self.busy = True
        try:
            for t in self.engine.spec["outputs"]:
                src = self.engine.by_name[t["of"]]
                shape = self.shapes[src["name"]]
                dt = np.dtype(_NP[DataType[src["dtype"]]])
                n = int(np.prod(shape))
                x = np.frombuffer((ctypes.c_char * (n * dt.itemsize)).from_address(self.addresses[src["name"]]), dt)
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

    def execute_async_v3(self, stream: int) -> bool:
        if set(self.addresses) != set(self.engine.by_name):
            self.engine.logger.log(Severity.ERROR, "enqueueV3: a tensor has no address")
            return False
        captured = self.engine.cudart.capturing.get(int(stream))
        if captured is not None:
            captured.append(None if self.engine.spec.get("uncapturable") else self._compute)
            return True
        self.executions += 1
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


# Builder side -------------------------------------------------------------------------------------------


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


FAKE_STATE: dict[str, Any] = {"runtimes": [], "builders": [], "parsed": [], "built_outputs": [], "cudart": None}


def fake_tensorrt(version: str = "11.4.0.106", cudart: FakeCudart | None = None) -> types.ModuleType:
    """A ``tensorrt`` module of fakes (10.x versions also get the STRONGLY_TYPED creation flag)."""
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
    m.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})  # type: ignore[attr-defined]
    m.BuilderFlag = enum.IntEnum("BuilderFlag", {"VERSION_COMPATIBLE": 3, "EXCLUDE_LEAN_RUNTIME": 4})  # type: ignore[attr-defined]
    m.HardwareCompatibilityLevel = enum.IntEnum(  # type: ignore[attr-defined]
        "HardwareCompatibilityLevel", {"NONE": 0, "AMPERE_PLUS": 1, "SAME_COMPUTE_CAPABILITY": 2}
    )
    flags = {"PREFER_AOT_PYTHON_PLUGINS": 2}
    if version.startswith("10."):
        flags["STRONGLY_TYPED"] = 1
    m.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)  # type: ignore[attr-defined]
    return m


@contextlib.contextmanager
def installed(monkeypatch: Any, version: str = "11.4.0.106", cc: tuple[int, int] = (8, 6)) -> Iterator[FakeCudart]:
    """Fake cuda-python and ``tensorrt`` in place of the real ones (and a fresh TensorRT logger) while in use;
    yields the fake CUDA runtime."""
    import sys

    from attnx.deploy.backends.tensorrt import cuda_mem
    from attnx.deploy.backends.tensorrt import util as trt_util

    cudart = FakeCudart(cc=cc)
    old = cuda_mem.use_cudart(cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, cudart=cudart))
    monkeypatch.setattr(trt_util, "_LOGGER", None)
    try:
        yield cudart
    finally:
        cuda_mem.use_cudart(old)


def plan_bytes(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], **extra: Any) -> bytes:
    return PLAN_MAGIC + json.dumps({"inputs": inputs, "outputs": outputs, **extra}).encode()
