"""TensorRT behind the one runner interface (:class:`~attnx.deploy.backends.base.Runner`): one plan, a pool
of execution contexts, cuda-python memory.

    info = TrtPlanInfo.from_record(manifest.to_dict(), bundle)   # what the plan must be (plain data)
    with TrtRunner(plan_path, info, pool_size=2) as runner:
        out = runner.infer({"input": x})              # NumPy in, NumPy out
        out, ms = runner.infer_timed({"input": x})    # + {"h2d_ms", "compute_ms", "d2h_ms", "enqueue_ms"}
        y = runner.infer_device({"input": x_cuda})    # torch CUDA tensors in and out, no host copies
    TrtRunner(plan_path, info, onnx=onnx_path).infer_with_outputs(feed, ["/blocks.0/Add_output_0"])  # layer-wise

Before the plan is deserialised, the TensorRT version and GPU compute capability the bundle recorded are
compared with this machine's (allowing for the plan's version- and hardware-compatibility flags), so a plan
from another TensorRT or GPU fails with a message that says what to rebuild, instead of TensorRT's
serialisation error. A plan whose size does not match the record is named as truncated.

Concurrency: the execution contexts are the slots of one :class:`~attnx.deploy.backends.base.RunnerPool`. Each
slot (:class:`TrtSlot`) holds an execution context, a CUDA stream and device buffers sized for the profile's
largest shapes (grown on demand), and the CUDA graphs captured on them: a graph replays *that* context on
*those* buffers, so all per-call state lives inside the slot the pool lends whole, and the pool fits. Every
slot is made at :meth:`TrtRunner.activate` (not lazily), so a pool that does not fit in GPU memory fails at
load, and :meth:`TrtRunner.deactivate` first takes every slot back (waiting for running calls) before the pool
frees them: GPU memory is never freed under a running call. Host copies go through pinned staging buffers.
``cuda_graph=True`` captures ``execute_async_v3`` per slot and input shape into a CUDA graph after one warm-up
run and replays it afterwards.

tensorrt and cuda-python are imported when a runner activates, never at module import.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.backends.base import Capabilities, Runner, RunnerPool, TensorSpec
from attnx.deploy.backends.tensorrt import cuda_mem
from attnx.deploy.backends.tensorrt.builder import InputProfile, build_marked_plan
from attnx.deploy.backends.tensorrt.util import (
    ENV_HOST_CODE,
    ENV_PLUGINS,
    import_tensorrt,
    np_dtype,
    trt_logger,
    trusted_native_code,
    version_tuple,
)

if TYPE_CHECKING:
    import onnx
    import tensorrt as trt
    import torch

log = logging.getLogger("attnx.tensorrt")


# ---------------------------------------------------------------------------------------------------------
# What the plan must be: plain data filled by the bundle layer (this module knows nothing of bundles).


def rebuild_hint(bundle: Path | str, model: str | None, precision: str) -> str:
    """The command that rebuilds a TensorRT bundle here, for error messages: ``attnx build MODEL -o BUNDLE
    --backend trt [--precision P]`` (``model``: the bundle's source model spec, None when unknown)."""
    flag = "" if precision == "fp32" else f" --precision {precision}"
    return f"attnx build {model or 'MODEL_OR_ONNX'} -o {bundle} --backend trt{flag}"


@dataclass(frozen=True)
class TrtPlanInfo:
    """What a TensorRT plan is expected to be and how it was built, as recorded beside it.

    inputs / outputs: the engine's I/O (:class:`TensorSpec`: name, NumPy dtype, shape with ``str`` for dynamic
        axes), in the order :meth:`TrtRunner.input_specs` / :meth:`TrtRunner.output_names` give them.
    profiles: dynamic inputs' optimisation profile, input name → {"min", "opt", "max"} → shape.
    tensorrt_version / compute_capability: the TensorRT and the GPU ("8.6") that built the plan.
    version_compatible / hardware_compatibility ("none", "ampere+", "same_compute_capability"): its build flags.
    plugin_libraries: plugin libraries the plan needs at load; plugin_libraries_serialized: those carried inside.
    plan_bytes: the plan's size in bytes (None: not checked).
    build_options: the TensorRT build options (``builder.TrtBuildOptions.to_dict()``), used to rebuild the
        network with more outputs for the layer-wise search.
    rebuild_hint: the command that rebuilds it (see :func:`rebuild_hint`), ending error messages.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    profiles: Mapping[str, Mapping[str, Sequence[int]]] = field(default_factory=dict)
    tensorrt_version: str | None = None
    compute_capability: str | None = None
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    plugin_libraries: tuple[str, ...] = ()
    plugin_libraries_serialized: tuple[str, ...] = ()
    plan_bytes: int | None = None
    build_options: Mapping[str, Any] = field(default_factory=dict)
    rebuild_hint: str = "attnx build MODEL_OR_ONNX -o BUNDLE --backend trt"

    @classmethod
    def from_record(cls, record: Mapping[str, Any], bundle: Path | str = "BUNDLE") -> TrtPlanInfo:
        """From a bundle's ``manifest.json`` as JSON data (``Manifest.to_dict()``): its "inputs" / "outputs"
        ({"name", "dtype", "shape", "profile"}), "build" (the facts ``builder.build_trt_engine`` returned),
        "device" ("compute_capability"), "source" ("model") and "precision". ``bundle`` names the bundle in
        the rebuild hint. Missing entries stay unknown (the compatibility check then says so)."""
        build = record.get("build") or {}

        def specs(items: Sequence[Mapping[str, Any]]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(str(s["name"]), np.dtype(s["dtype"]), tuple(s["shape"])) for s in items)

        inputs = record.get("inputs") or []
        plan_bytes = build.get("plan_bytes")
        cc = (record.get("device") or {}).get("compute_capability")
        return cls(
            inputs=specs(inputs), outputs=specs(record.get("outputs") or []),
            profiles={str(s["name"]): dict(s["profile"]) for s in inputs if s.get("profile")},
            tensorrt_version=build.get("tensorrt_version"), compute_capability=str(cc) if cc else None,
            version_compatible=bool(build.get("version_compatible")),
            hardware_compatibility=str(build.get("hardware_compatibility") or "none"),
            plugin_libraries=tuple(map(str, build.get("plugin_libraries") or ())),
            plugin_libraries_serialized=tuple(map(str, build.get("plugin_libraries_serialized") or ())),
            plan_bytes=plan_bytes if isinstance(plan_bytes, int) else None,
            build_options=dict(build.get("trt_options") or {}),
            rebuild_hint=rebuild_hint(bundle, (record.get("source") or {}).get("model"),
                                      str(record.get("precision") or "fp32")),
        )  # fmt: skip

    def profiled_inputs(self) -> list[InputProfile]:
        """The inputs with their profiles, as the builder takes them."""
        return [InputProfile(s.name, s.shape, self.profiles.get(s.name)) for s in self.inputs]


def _sm(cc: str | None) -> str:
    return "sm_" + str(cc).replace(".", "") if cc else "an unrecorded GPU"


def check_plan_compat(info: TrtPlanInfo, trt_version: str, device: Mapping[str, Any], plan_name: str) -> None:
    """Raise UserError when this TensorRT (``trt_version``) or GPU (``device["compute_capability"]``) cannot run
    the plan ``info`` describes; ``plan_name`` names it in the message.

    Rules (TensorRT's engine-compatibility documentation): a plan runs only on the TensorRT version that
    built it, unless built version-compatible (then on that version or a later one); and only on the
    compute capability it was built for, unless built with hardware compatibility "ampere+" (then on
    any GPU of compute capability 8.0 or newer).
    """
    built_version, built_cc, hint = info.tensorrt_version, info.compute_capability, info.rebuild_hint
    if not built_version or not built_cc:
        missing = "TensorRT version" if not built_version else "compute capability"
        raise UserError(
            f"{plan_name}: the manifest records no {missing} (corrupt, or not a TensorRT bundle); "
            f"rebuild it with `{hint}`"
        )
    cc = str(device.get("compute_capability"))
    problems: list[str] = []
    bv, cv = version_tuple(built_version), version_tuple(trt_version)
    if info.version_compatible:
        if cv < bv:
            problems.append(f"a version-compatible plan needs TensorRT {built_version} or later")
    elif bv != cv:
        problems.append("a plan runs only on the TensorRT version that built it")
    if info.hardware_compatibility == "ampere+":
        if version_tuple(cc) < (8, 0):
            problems.append("an ampere+ plan needs compute capability 8.0 or newer")
    elif version_tuple(cc) != version_tuple(str(built_cc)):
        problems.append("a plan runs only on the compute capability it was built for")
    if problems:
        raise UserError(
            f"{plan_name} was built with TensorRT {built_version} for {_sm(built_cc)}; this is TensorRT {trt_version} "
            f"on {_sm(cc)} ({'; '.join(problems)}): rebuild the bundle with `{hint}` on this machine"
        )


# ---------------------------------------------------------------------------------------------------------
# The runner


@dataclass
class _IO:
    name: str
    is_input: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]  # the engine's, -1 for a dynamic axis
    min: tuple[int, ...] = ()  # profile 0 (inputs)
    max: tuple[int, ...] = ()


@dataclass
class TrtSlot:
    """One pooled execution context and what it runs on (see the module docstring).

    ctx: the ``tensorrt.IExecutionContext`` (None once freed). stream: its CUDA stream. device / host: per
    tensor name, the device buffer and pinned staging buffer. bound: tensor name → device address set on the
    context. key: the input shapes set on the context. graphs: input shapes → captured CUDA graph (None: not
    capturable). pending: the event of :meth:`TrtRunner.infer_device` work still in flight on this slot.
    """

    ctx: Any
    stream: cuda_mem.Stream
    device: dict[str, cuda_mem.DeviceBuffer] = field(default_factory=dict)
    host: dict[str, cuda_mem.PinnedBuffer] = field(default_factory=dict)
    bound: dict[str, int] = field(default_factory=dict)
    key: tuple[tuple[int, ...], ...] | None = None
    out_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    events: list[cuda_mem.Event] = field(default_factory=list)
    graphs: dict[tuple[tuple[int, ...], ...], cuda_mem.CudaGraph | None] = field(default_factory=dict)
    pending: cuda_mem.Event | None = None


class TrtRunner(Runner):
    """Runs a TensorRT plan. Thread-safe; :meth:`deactivate` frees GPU memory (after running calls finish).

    Args:
        plan: the serialized plan (bytes) or its file (read at :meth:`activate`); None for a runner made only
            for :meth:`infer_with_outputs` (then :meth:`activate` loads nothing and :meth:`infer` cannot run).
        info: what the plan must be and how it was built (:class:`TrtPlanInfo`).
        onnx: the ONNX model the plan was built from (path or ModelProto): declares ``mark_outputs``
            (:meth:`infer_with_outputs`). None: the capability is not declared.
        pool_size: execution contexts (concurrent calls); threads: TensorRT runtime threads (None: default).
        device: the CUDA device index. cuda_graph: capture and replay CUDA graphs per input shape.
        pinned: stage host copies in pinned memory.
        trusted: the caller built this plan itself (``attnx build``'s own check), so the native code it names
            (plugin libraries, a version-compatible plan's host code) may run without the opt-ins of
            :func:`~attnx.deploy.backends.tensorrt.util.trusted_native_code`.

    Declares ``device_tensors`` (:meth:`infer_device`) and ``timed_runs`` (:meth:`infer_timed`). Raises
    UserError at :meth:`activate` for a missing, truncated, corrupt or incompatible plan, a plan that does not
    match ``info``, untrusted native code, or a pool that does not fit; at a call, for inputs the engine rejects.
    """

    name = "tensorrt"
    kernels = "TensorRT (int8 accumulates in int32)"
    # What the backend can do; an instance made without ``onnx`` does not declare mark_outputs.
    capabilities = Capabilities(device_tensors=True, timed_runs=True, mark_outputs=True)

    def __init__(
        self,
        plan: bytes | Path | str | None,
        info: TrtPlanInfo,
        *,
        onnx: Path | str | onnx.ModelProto | None = None,
        pool_size: int = 1,
        threads: int | None = None,
        device: int = 0,
        cuda_graph: bool = False,
        pinned: bool = True,
        trusted: bool = False,
    ):
        if pool_size < 1:
            raise UserError(f"pool_size must be ≥ 1, got {pool_size}")
        self.plan = Path(plan) if isinstance(plan, str) else plan
        self.path = self.plan if isinstance(self.plan, Path) else Path("engine.plan")
        self.plan_info = info
        self.onnx = Path(onnx) if isinstance(onnx, str) else onnx
        self.capabilities = Capabilities(device_tensors=True, timed_runs=True, mark_outputs=onnx is not None)
        self.pool_size, self.threads, self.device_index = pool_size, threads, device
        self.cuda_graph, self.pinned, self.trusted = cuda_graph, pinned, trusted
        self.trt_version = ""
        self.device: dict[str, Any] = {}
        self._pool: RunnerPool[TrtSlot] | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._engine: Any = None
        self._runtime: Any = None
        self._contexts = 0
        self._ins: list[_IO] = []
        self._outs: list[_IO] = []

    @classmethod
    def from_bundle_files(
        cls, plan_path: Path, info: TrtPlanInfo, *, onnx_path: Path | None = None, pool_size: int = 1,
        threads: int | None = None, trusted: bool = False, **options: Any,
    ) -> TrtRunner:  # fmt: skip
        """An activated runner of a bundle's plan file (``options``: the other keywords of the constructor).
        Raises as :meth:`activate`; the caller ends it with :meth:`deactivate` (or ``close``)."""
        runner = cls(plan_path, info, onnx=onnx_path, pool_size=pool_size, threads=threads, trusted=trusted,
                     **options)  # fmt: skip
        runner.activate()
        return runner

    def __enter__(self) -> TrtRunner:
        self.activate()
        return self

    # -- activation ----------------------------------------------------------------------------------------

    def activate(self) -> None:
        """Check, deserialise and load the plan; make every execution context of the pool."""
        if self._pool is not None:
            return
        info = self.plan_info
        if self.plan is None:
            return  # a runner for the layer-wise search only: infer_with_outputs builds its own engines
        plan = _read_plan(self.path, info) if isinstance(self.plan, Path) else bytes(self.plan)
        trt_mod = import_tensorrt()
        self.device = cuda_mem.device_info(self.device_index)
        cuda_mem.set_device(self.device_index)
        self.trt_version = trt_mod.__version__
        check_plan_compat(info, self.trt_version, self.device, self.path.name)

        self._closed = False
        logger = trt_logger()
        self._runtime = trt_mod.Runtime(logger)
        if self.threads and hasattr(self._runtime, "max_threads"):
            self._runtime.max_threads = self.threads
        allowed_libs, host_code = trusted_native_code()
        where = self.path.parent if isinstance(self.plan, Path) else "this plan"
        if info.version_compatible:
            # A version-compatible plan carries its own lean runtime: host code from the file runs in this process.
            if not (self.trusted or host_code):
                raise UserError(f"{self.path} is a version-compatible plan, which runs host code stored in the "
                                f"bundle: set {ENV_HOST_CODE}=1 if you trust {where}, or rebuild it without "
                                "--version-compatible")  # fmt: skip
            self._runtime.engine_host_code_allowed = True
        for lib in info.plugin_libraries:
            if lib in info.plugin_libraries_serialized:
                continue
            if not Path(lib).is_file():
                raise UserError(f"plugin library {lib}, which {self.path.name} needs, is not on this machine: "
                                f"install it there or rebuild with `{info.rebuild_hint}`")  # fmt: skip
            # native code named by a file: loaded only when the user named the same library
            if not self.trusted and Path(lib).resolve() not in allowed_libs:
                raise UserError(f"{where} asks TensorRT to load plugin library {lib}; attnx loads native code "
                                f"only where you name it: set {ENV_PLUGINS}={lib} if you trust it")  # fmt: skip
            self._runtime.get_plugin_registry().load_library(str(lib))
        with logger.capture() as cap:
            engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise UserError(
                f"TensorRT cannot deserialise {self.path} ({cap.first('no reason given')}): the plan is corrupt or "
                f"incompatible with this TensorRT; rebuild it with `{info.rebuild_hint}`"
            )
        self._engine = engine
        self._ins, self._outs = self._io_table(engine)
        self._contexts = 0
        try:
            pool = self._pool = RunnerPool(lambda: self._new_slot(logger), self.pool_size, release=self._free_slot)
            with ExitStack() as stack:  # make every slot now: a pool that does not fit fails at load
                for _ in range(self.pool_size):
                    stack.enter_context(pool.acquire())
        except BaseException:
            self.deactivate()
            raise

    def _io_table(self, engine: trt.ICudaEngine) -> tuple[list[_IO], list[_IO]]:
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
        want_in = {s.name: s for s in self.plan_info.inputs}
        want_out = {s.name: s for s in self.plan_info.outputs}
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
        order = [s.name for s in self.plan_info.inputs]
        ins.sort(key=lambda io: order.index(io.name))
        out_order = [s.name for s in self.plan_info.outputs]
        outs.sort(key=lambda io: out_order.index(io.name))
        return ins, outs

    def _new_slot(self, logger: Any) -> TrtSlot:
        with logger.capture() as cap:
            ctx = self._engine.create_execution_context()
        if ctx is None:
            raise UserError(
                f"TensorRT could not create execution context {self._contexts + 1} "
                f"({cap.first('out of GPU memory?')}): "
                "use a smaller pool_size"
            )
        self._contexts += 1
        slot = TrtSlot(ctx=ctx, stream=cuda_mem.Stream())
        try:
            # Size every buffer for the profile's largest shapes once, so calls do not allocate.
            self._set_shapes(slot, tuple(io.max for io in self._ins))
            self._bind_buffers(slot)
        except BaseException:
            self._free_slot(slot)
            raise
        return slot

    # -- the interface ---------------------------------------------------------------------------------------

    def input_specs(self) -> list[TensorSpec]:
        """The plan's inputs as recorded (:attr:`TrtPlanInfo.inputs`), in order."""
        return list(self.plan_info.inputs)

    def output_names(self) -> list[str]:
        """The plan's outputs as recorded, in order."""
        return [s.name for s in self.plan_info.outputs]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name as new host arrays; ``feed`` maps every input to a host array of its dtype.
        Raises UserError for a missing input, a wrong dtype, or a shape outside the profile."""
        return self._run(feed, timed=False)[0]

    def infer_timed(self, feed: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Outputs (as :meth:`infer`) and GPU times of this call in milliseconds: h2d_ms, compute_ms, d2h_ms
        (CUDA events) and enqueue_ms (host)."""
        return self._run(feed, timed=True)

    # -- per call ----------------------------------------------------------------------------------------

    @contextmanager
    def _slot(self) -> Iterator[TrtSlot]:
        pool = self._pool
        if pool is None or self._closed:
            raise RuntimeError("TrtRunner is closed (or was never activated, or has no plan)")
        with pool.acquire() as slot:
            if slot.ctx is None:  # deactivate() freed the pool while this call waited
                raise RuntimeError("TrtRunner is closed")
            if slot.pending is not None:
                # Let infer_device's enqueue finish before this call changes the context's shapes and addresses.
                slot.pending.synchronize()
                slot.pending = None
            yield slot

    def _set_shapes(self, slot: TrtSlot, key: tuple[tuple[int, ...], ...]) -> None:
        if slot.key == key:
            return
        slot.key = None
        for io, shape in zip(self._ins, key):
            if not slot.ctx.set_input_shape(io.name, shape):
                raise UserError(
                    f"input '{io.name}' shape {tuple(shape)} is outside the engine's profile "
                    f"{list(io.min)}..{list(io.max)}"
                )
        shapes: dict[str, tuple[int, ...]] = {}
        for io in self._outs:
            shape = tuple(slot.ctx.get_tensor_shape(io.name))
            if any(d < 0 for d in shape):
                raise UserError(
                    f"output '{io.name}' has a data-dependent shape {shape}, which attnx's TensorRT runtime "
                    "does not support"
                )
            shapes[io.name] = shape
        slot.out_shapes = shapes
        slot.key = key

    def _shapes_of(self, slot: TrtSlot) -> dict[str, tuple[int, ...]]:
        assert slot.key is not None
        return {**{io.name: s for io, s in zip(self._ins, slot.key)}, **slot.out_shapes}

    def _bind_buffers(self, slot: TrtSlot) -> None:
        """Make each tensor's device (and pinned) buffer big enough; point the context at them."""
        moved = False
        for io in (*self._ins, *self._outs):
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
        missing = [io.name for io in self._ins if io.name not in shapes]
        if missing:
            raise UserError(f"missing input(s) {missing}; the engine takes {[io.name for io in self._ins]}")
        return tuple(tuple(int(d) for d in shapes[io.name]) for io in self._ins)

    def _enqueue(self, slot: TrtSlot) -> None:
        if not slot.ctx.execute_async_v3(slot.stream.handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.path} (see the attnx.tensorrt log)")

    def _execute(self, slot: TrtSlot) -> None:
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

    def _events(self, slot: TrtSlot) -> list[cuda_mem.Event]:
        if not slot.events:
            slot.events = [cuda_mem.Event() for _ in range(4)]
        return slot.events

    def _run(self, feed: Mapping[str, np.ndarray], timed: bool) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        arrays = {io.name: np.ascontiguousarray(feed[io.name]) if io.name in feed else None for io in self._ins}
        key = self._key({n: a.shape for n, a in arrays.items() if a is not None})
        for io in self._ins:
            arr = arrays[io.name]
            assert arr is not None
            if arr.dtype != io.dtype:
                raise UserError(f"input '{io.name}' has dtype {arr.dtype}, the engine wants {io.dtype}")
        with self._slot() as slot:
            cuda_mem.set_device(self.device_index)
            self._set_shapes(slot, key)
            self._bind_buffers(slot)
            shapes = self._shapes_of(slot)
            stream = slot.stream
            ev = self._events(slot) if timed else []
            if timed:
                ev[0].record(stream)
            for io in self._ins:
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
            for io in self._outs:
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

    def infer_device(self, feed: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run on torch CUDA tensors on this runner's device without host copies; outputs are new CUDA tensors.

        Ordered with torch's current stream on this device: the engine waits for work already queued there
        and torch's later work waits for the engine (no host synchronisation). Raises UserError for a missing
        input, a tensor on another device, a wrong dtype, or a shape outside the profile.
        """
        import torch

        rt = cuda_mem.cudart()
        tensors: dict[str, torch.Tensor] = {}
        for io in self._ins:
            if io.name not in feed:
                raise UserError(f"missing input '{io.name}'; the engine takes {[i.name for i in self._ins]}")
            t = feed[io.name]
            if not t.is_cuda or (t.device.index or 0) != self.device_index:
                raise UserError(
                    f"input '{io.name}' is on {t.device}; infer_device takes tensors on cuda:{self.device_index} "
                    "(use infer() for host arrays)"
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
        with self._slot() as slot:
            cuda_mem.set_device(self.device_index)
            self._set_shapes(slot, key)
            outs = {
                io.name: torch.empty(slot.out_shapes[io.name], dtype=torch.from_numpy(np.empty(0, io.dtype)).dtype,
                                     device=f"cuda:{self.device_index}")
                for io in self._outs
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

    # -- layer-wise search -----------------------------------------------------------------------------------

    def infer_with_outputs(
        self, feed: Mapping[str, np.ndarray], names: Sequence[str], *, strict: bool = False
    ) -> dict[str, np.ndarray]:
        """The model's outputs and the graph tensors ``names`` (ONNX tensor names) by name, as host arrays.

        As Polygraphy's ``--trt-outputs`` (``ModifyNetworkOutputs``): the source ONNX is parsed again, the
        layers' output tensors named ``names`` are marked as network outputs (``network.mark_output``; their
        types stay what the strongly typed network computes), an engine is built with the plan's build options
        (:attr:`TrtPlanInfo.build_options`, without the timing cache) and run once on ``feed``. Marking a tensor
        keeps TensorRT from fusing across it, so an intermediate is what an unfused engine computes.

        A name the network does not produce (fused away by the parser, not in the graph, a shape tensor, a type
        NumPy cannot hold) is missing from the result and named in one warning on the ``attnx.tensorrt`` log;
        ``strict=True`` raises UserError naming them instead. Raises CapabilityError when the runner was made
        without ``onnx``, and UserError as a build (``builder.build_trt_engine``) or :meth:`infer` does.
        Needs neither :meth:`activate` nor the plan: it builds and frees its own engine.
        """
        self.require("mark_outputs")
        assert self.onnx is not None
        info = self.plan_info
        source: Path | onnx.ModelProto = self.onnx
        plan, facts, marked = build_marked_plan(source, info.profiled_inputs(), info.build_options, list(names),
                                                trusted=self.trusted)  # fmt: skip
        if marked.missing:
            label = source.name if isinstance(source, Path) else "the ONNX model"
            why = "; ".join(f"'{n}': {reason}" for n, reason in marked.missing.items())
            msg = f"TensorRT cannot expose {len(marked.missing)} tensor(s) of {label} as outputs ({why})"
            if strict:
                raise UserError(msg)
            log.warning("%s", msg)
        device = facts.get("device") or {}
        built = TrtPlanInfo(
            inputs=info.inputs, outputs=tuple(TensorSpec(n, dt, ()) for n, dt in marked.outputs.items()),
            profiles=info.profiles,
            tensorrt_version=facts.get("tensorrt_version"), compute_capability=device.get("compute_capability"),
            version_compatible=bool(facts.get("version_compatible")),
            hardware_compatibility=str(facts.get("hardware_compatibility") or "none"),
            plugin_libraries=tuple(facts.get("plugin_libraries") or ()),
            plugin_libraries_serialized=tuple(facts.get("plugin_libraries_serialized") or ()),
            plan_bytes=len(plan), build_options=info.build_options, rebuild_hint=info.rebuild_hint,
        )  # fmt: skip
        # Built here and now from options already checked above: its native code is what the caller allowed.
        with TrtRunner(plan, built, device=self.device_index, pinned=self.pinned, trusted=True) as marked_runner:
            return marked_runner.infer(feed)

    # -- information and clean-up ------------------------------------------------------------------------

    def slots(self) -> list[TrtSlot]:
        """The pool's execution-context slots (empty before :meth:`activate` and after :meth:`deactivate`)."""
        return self._pool.slots() if self._pool is not None else []

    @property
    def info(self) -> dict[str, Any]:
        """What runs: backend, TensorRT version, device, pool size, pinned, cuda_graph, and how many CUDA graphs
        were captured and refused."""
        graphs = [g for s in self.slots() for g in s.graphs.values()]
        return {
            "backend": "trt",
            "tensorrt_version": self.trt_version,
            "device": self.device,
            "pool_size": len(self.slots()),
            "pinned": self.pinned,
            "cuda_graph": self.cuda_graph,
            "cuda_graphs_captured": sum(g is not None for g in graphs),
            "cuda_graphs_refused": sum(g is None for g in graphs),
        }

    def deactivate(self) -> None:
        """Wait for running calls, then free every context, stream, buffer and graph. Idempotent; later calls
        raise RuntimeError."""
        with self._close_lock:
            self._closed = True
            pool, self._pool = self._pool, None
            if pool is not None:
                with ExitStack() as stack:
                    # Take every slot back first: running calls finish before their memory is freed.
                    held = [stack.enter_context(pool.acquire()) for _ in pool.slots()]
                    for slot in held:
                        try:
                            slot.stream.synchronize()
                        except cuda_mem.CudaError as exc:
                            log.warning("while closing %s: %s", self.path, exc)
                    pool.close()  # frees each slot (_free_slot)
            self._engine = None
            self._runtime = None

    def _free_slot(self, slot: TrtSlot) -> None:
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


def _nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _drop_graphs(slot: TrtSlot) -> None:
    for graph in slot.graphs.values():
        if graph is not None:
            graph.destroy()
    slot.graphs.clear()


def _read_plan(path: Path, info: TrtPlanInfo) -> bytes:
    """The plan's bytes; a missing, empty or wrong-sized file is named (before TensorRT sees it)."""
    hint = info.rebuild_hint
    if not path.is_file():
        raise UserError(f"bundle is incomplete: {path.name} is missing; rebuild it with `{hint}`")
    data = path.read_bytes()
    want = info.plan_bytes
    if not data:
        raise UserError(f"{path} is empty (truncated): rebuild the bundle with `{hint}`")
    if want is not None and len(data) != want:
        what = "truncated" if len(data) < want else "modified (larger than built)"
        raise UserError(
            f"{path} is {what}: {len(data)} bytes, the manifest records {want}; rebuild the bundle with `{hint}`"
        )
    return data
