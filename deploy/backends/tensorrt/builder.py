"""TensorRT engine builds for ``attnx build --backend trt``: ONNX → serialized plan, with the build's facts.

    info = build_trt_engine(onnx_path, plan_path, inputs, {"workspace_mib": 2048, "timing_cache": "trt.cache"})
    plan, marked = build_marked_plan(onnx_path, inputs, options, ["/blocks.0/Add_output_0"])  # layer-wise search

``inputs`` are records with ``name``, ``shape`` and ``profile`` (:class:`ProfiledInput`: the bundle's
``IOSpec`` fits, as does :class:`InputProfile`); this module knows nothing of bundles.

Precision lives in the ONNX graph (casts for FP16, Q/DQ for INT8): the network is strongly typed
(TensorRT 11 always; on TensorRT 10 the STRONGLY_TYPED creation flag is set), and no builder precision
flag is used. attnx custom nodes are rewritten for the ONNX parser (``attnx.plugins.trt_onnx``) after the
attnx plugins are registered (``attnx.plugins.trt``); their kernels are compiled ahead of time into the plan.

Options (all optional; unknown keys and bad values are UserErrors):

    workspace_mib            int ≥ 1           workspace memory-pool limit
    timing_cache             path              loaded when present, saved after the build (atomically)
    optimization_level       0..5              builder optimization level (TensorRT's default: 3)
    version_compatible       bool              plan runs on this TensorRT version and later ones
    exclude_lean_runtime     bool              with version_compatible: leave the lean runtime out of the plan
    hardware_compatibility   none | ampere+ | same_compute_capability
    plugin_libraries         path or [paths]   TensorRT plugin libraries (.so) to load (alias: plugin_library)
    builder_threads          int ≥ 1           threads the builder may use

tensorrt is imported inside the functions that need it, never at module import.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from attnx.core.errors import UserError
from attnx.core.files import write_bytes
from attnx.deploy.backends.tensorrt import cuda_mem
from attnx.deploy.backends.tensorrt.util import (
    ENV_PLUGINS,
    import_tensorrt,
    np_dtype,
    trt_logger,
    trusted_native_code,
    version_tuple,
)

if TYPE_CHECKING:
    import onnx

HARDWARE_COMPATIBILITY = {
    "none": "NONE",
    "ampere+": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}
MAX_OPTIMIZATION_LEVEL = 5
MIN_TRT = (10, 0)
MIN_TRT_PLUGINS = (10, 9)  # AOT Python plugins in the ONNX parser
OPTION_NAMES = (
    "workspace_mib",
    "timing_cache",
    "optimization_level",
    "version_compatible",
    "exclude_lean_runtime",
    "hardware_compatibility",
    "plugin_libraries",
    "builder_threads",
)
_ALIASES = {"plugin_library": "plugin_libraries"}

Shapes = tuple[list[int], list[int], list[int]]


class ProfiledInput(Protocol):
    """An engine input as the builder needs it: name, shape (an ``int`` per fixed axis, a ``str``/``None`` for a
    dynamic one) and, for dynamic inputs, the optimisation profile {"min", "opt", "max"} → shapes."""

    @property
    def name(self) -> str:
        """The input's name in the ONNX graph."""

    @property
    def shape(self) -> Sequence[int | str | None]:
        """Its dimensions: an ``int`` per fixed axis, a ``str`` or None per dynamic one."""

    @property
    def profile(self) -> Mapping[str, Sequence[int]] | None:
        """Dynamic inputs: {"min", "opt", "max"} → a shape (an ``int`` per axis); None for a static input."""


@dataclass(frozen=True)
class InputProfile:
    """A plain :class:`ProfiledInput` (see there)."""

    name: str
    shape: tuple[int | str | None, ...]
    profile: Mapping[str, Sequence[int]] | None = field(default=None)


# ---------------------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class TrtBuildOptions:
    """The TensorRT build options of this module's docstring, validated (:meth:`from_dict`)."""

    workspace_mib: int | None = None
    timing_cache: Path | None = None
    optimization_level: int | None = None
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compatibility: str = "none"
    plugin_libraries: tuple[Path, ...] = ()
    builder_threads: int | None = None

    @classmethod
    def from_dict(cls, options: Mapping[str, Any] | None) -> TrtBuildOptions:
        """Validate a user's options; every problem is one UserError naming the option and what it takes."""
        given: dict[str, Any] = {}
        for key, value in (options or {}).items():
            name = _ALIASES.get(key, key)
            if name not in OPTION_NAMES:
                close = difflib.get_close_matches(key, [*OPTION_NAMES, *_ALIASES], n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise UserError(f"unknown TensorRT option '{key}'{hint}; known: {', '.join(OPTION_NAMES)}")
            if name in given:
                raise UserError(f"TensorRT option {name} given twice (as {name} and {key}): give it once")
            given[name] = value
        kw: dict[str, Any] = {}
        for name in ("workspace_mib", "builder_threads"):
            value = given.get(name)
            if value is not None:
                kw[name] = _positive_int(name, value)
        level = given.get("optimization_level")
        if level is not None:
            if not _is_int(level) or not 0 <= int(level) <= MAX_OPTIMIZATION_LEVEL:
                raise UserError(
                    f"TensorRT option optimization_level must be an integer 0–{MAX_OPTIMIZATION_LEVEL}, got {level!r}"
                )
            kw["optimization_level"] = int(level)
        for name in ("version_compatible", "exclude_lean_runtime"):
            value = given.get(name)
            if value is not None:
                if not isinstance(value, bool):
                    raise UserError(f"TensorRT option {name} must be true or false, got {value!r}")
                kw[name] = value
        if kw.get("exclude_lean_runtime") and not kw.get("version_compatible"):
            raise UserError(
                "TensorRT option exclude_lean_runtime applies only with version_compatible: set both or neither"
            )
        hw = given.get("hardware_compatibility")
        if hw is not None:
            key = str(hw).strip().lower().replace("-", "_")
            key = {"ampere_plus": "ampere+", "ampere": "ampere+"}.get(key, key)
            if key not in HARDWARE_COMPATIBILITY:
                raise UserError(
                    "TensorRT option hardware_compatibility must be one of "
                    f"{', '.join(HARDWARE_COMPATIBILITY)}, got {hw!r}"
                )
            kw["hardware_compatibility"] = key
        cache = given.get("timing_cache")
        if cache is not None:
            if not isinstance(cache, (str, os.PathLike)) or not str(cache):
                raise UserError(f"TensorRT option timing_cache must be a file path, got {cache!r}")
            path = Path(cache).expanduser()
            if path.is_dir():
                raise UserError(f"timing cache {path} is a folder: give a file path, e.g. {path / 'trt.cache'}")
            kw["timing_cache"] = path
        libs = given.get("plugin_libraries")
        if libs is not None:
            items = [libs] if isinstance(libs, (str, os.PathLike)) else list(libs)
            paths = []
            for item in items:
                p = Path(item).expanduser()
                if not p.is_file():
                    raise UserError(f"TensorRT plugin library not found: {p} (option plugin_libraries)")
                paths.append(p.resolve())
            kw["plugin_libraries"] = tuple(paths)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (paths as text), as the bundle records it under ``build["trt_options"]``."""
        return {
            "workspace_mib": self.workspace_mib,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
            "optimization_level": self.optimization_level,
            "version_compatible": self.version_compatible,
            "exclude_lean_runtime": self.exclude_lean_runtime,
            "hardware_compatibility": self.hardware_compatibility,
            "plugin_libraries": [str(p) for p in self.plugin_libraries],
            "builder_threads": self.builder_threads,
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise UserError(f"TensorRT option {name} must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------------------
# Optimization profile


def profile_shapes(inputs: Sequence[ProfiledInput]) -> dict[str, Shapes]:
    """min / opt / max per input from the IOSpecs, checked: rank, order, fixed axes, positivity."""
    out: dict[str, Shapes] = {}
    for spec in inputs:
        rank = len(spec.shape)
        if spec.profile:
            missing = [k for k in ("min", "opt", "max") if k not in spec.profile]
            if missing:
                raise UserError(f"input '{spec.name}': profile lacks {'/'.join(missing)}; give min, opt and max shapes")
            lo, opt, hi = (list(map(int, spec.profile[k])) for k in ("min", "opt", "max"))
            for what, dims in (("min", lo), ("opt", opt), ("max", hi)):
                if len(dims) != rank:
                    raise UserError(
                        f"input '{spec.name}': profile {what} {dims} has rank {len(dims)}, "
                        f"the input {rank} ({spec.shape})"
                    )
                if any(d < 1 for d in dims):
                    raise UserError(f"input '{spec.name}': profile {what} {dims} has an axis < 1")
            for axis, (a, b, c) in enumerate(zip(lo, opt, hi)):
                if not a <= b <= c:
                    raise UserError(
                        f"input '{spec.name}': profile axis {axis} needs min ≤ opt ≤ max, got {a}, {b}, {c}"
                    )
                fixed = spec.shape[axis]
                if isinstance(fixed, int) and fixed > 0 and not a == b == c == fixed:
                    raise UserError(
                        f"input '{spec.name}': axis {axis} is fixed at {fixed} but the profile gives {a}..{c}"
                    )
            out[spec.name] = (lo, opt, hi)
        else:
            dynamic = [a for a, d in enumerate(spec.shape) if not (isinstance(d, int) and d > 0)]
            if dynamic:
                raise UserError(
                    f"input '{spec.name}' has dynamic axes {dynamic} ({spec.shape}) but no min/opt/max profile: "
                    "pass --input-shape and --max-batch"
                )
            shape = [d for d in spec.shape if isinstance(d, int)]  # all of them (no dynamic axis)
            out[spec.name] = (shape, list(shape), list(shape))
    return out


def match_network_inputs(net_inputs: Mapping[str, Sequence[int]], shapes: Mapping[str, Shapes]) -> bool:
    """Check the profile against the parsed network's inputs (-1 = dynamic); True when any axis is dynamic."""
    missing = sorted(set(net_inputs) - set(shapes))
    extra = sorted(set(shapes) - set(net_inputs))
    if missing or extra:
        raise UserError(
            f"the ONNX model's inputs {sorted(net_inputs)} do not match the bundle's input specs {sorted(shapes)}"
        )
    dynamic = False
    for name, dims in net_inputs.items():
        lo, opt, hi = shapes[name]
        if len(dims) != len(lo):
            raise UserError(f"input '{name}' has rank {len(dims)} in the network but {len(lo)} in its profile")
        for axis, d in enumerate(dims):
            if d < 0:
                dynamic = True
            elif not lo[axis] == opt[axis] == hi[axis] == d:
                raise UserError(
                    f"input '{name}' axis {axis} is {d} in the ONNX model but {lo[axis]}..{hi[axis]} in the profile"
                )
    return dynamic


# ---------------------------------------------------------------------------------------------------------
# Files


def atomic_write(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to a temporary file beside ``path``, force it to disk, and rename it into place."""
    write_bytes(path, data, fsync=True)


def read_timing_cache(path: Path | None) -> bytes:
    """The cache file's bytes; empty when there is no file yet."""
    if path is None or not path.is_file():
        return b""
    return path.read_bytes()


# ---------------------------------------------------------------------------------------------------------
# Parser errors, flags


def format_parser_errors(parser: Any, source: str, first_log: str = "") -> str:
    """One line: every parser error with its node's name and operator."""
    items: list[str] = []
    for i in range(int(parser.num_errors)):
        err = parser.get_error(i)
        desc = " ".join(str(_call(err, "desc") or err).split())
        name, op = _call(err, "node_name"), _call(err, "node_operator")
        node = _call(err, "node")
        where = ""
        if name or op:
            where = f"node '{name or '#' + str(node)}' ({op or '?'}): "
        elif isinstance(node, int) and node >= 0:
            where = f"node #{node}: "
        items.append(where + desc[:300])
    if not items:
        items.append(first_log or "no error reported")
    more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
    return (
        f"TensorRT's ONNX parser rejected {source}: {'; '.join(items[:5])}{more}; check the op report "
        "(`attnx export ... --target trt10`) and replace or pluginise those ops"
    )


def _call(obj: Any, method: str) -> Any:
    fn = getattr(obj, method, None)
    if fn is None:
        return None
    try:
        return fn()
    except Exception:  # an accessor TensorRT lacks in this version
        return None


def network_flags(trt_mod: Any, version: tuple[int, ...]) -> tuple[int, list[str]]:
    """Creation flags: STRONGLY_TYPED on TensorRT 10 (11 is always strongly typed and deprecates the flag)."""
    flags, names = 0, []
    enum = trt_mod.NetworkDefinitionCreationFlag
    if version < (11,):
        strongly = getattr(enum, "STRONGLY_TYPED", None)
        if strongly is None:
            raise UserError(
                f"TensorRT {'.'.join(map(str, version))} has no strongly typed networks: install TensorRT ≥ 10.0"
            )
        flags |= 1 << int(strongly)
        names.append("STRONGLY_TYPED")
    return flags, names


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    if value is None or name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _onnx_for_parser(source: Path | onnx.ModelProto, version: tuple[int, ...]) -> tuple[bytes, list[str], list[str]]:
    """The model's bytes for the parser (attnx nodes in plugin form), its attnx ops and plugin ids."""
    import onnx

    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        try:
            model = onnx.load(str(source))
        except Exception as exc:  # DecodeError and friends
            raise UserError(
                f"{source} is not a readable ONNX model ({type(exc).__name__}): corrupt or truncated?"
            ) from None
    ops = sorted({n.op_type for n in model.graph.node if n.domain == "attnx"})
    if not ops:
        return model.SerializeToString(), [], []
    if version < MIN_TRT_PLUGINS:
        raise UserError(
            f"the model uses attnx plugins {ops}, which need TensorRT ≥ {'.'.join(map(str, MIN_TRT_PLUGINS))} "
            f"(this is {'.'.join(map(str, version))}): upgrade TensorRT or export with --plugins none"
        )
    try:
        from attnx.plugins.trt import register_plugins
        from attnx.plugins.trt_onnx import to_trt_plugin_form
    except ImportError as exc:
        raise UserError(
            f"the model uses attnx plugins {ops}, which need triton to build ({exc}): pip install triton"
        ) from None
    ids = register_plugins()
    return to_trt_plugin_form(model).SerializeToString(), ops, ids


# ---------------------------------------------------------------------------------------------------------
# The build


@dataclass
class _Built:
    """One finished build: the plan and what the caller records or saves."""

    plan: Any  # tensorrt.IHostMemory (buffer protocol)
    config: Any
    facts: dict[str, Any]


def _build(
    source: Path | onnx.ModelProto, label: str, inputs: Sequence[ProfiledInput], opts: TrtBuildOptions,
    mark: Sequence[str] | None = None,
) -> tuple[_Built, MarkedOutputs | None]:  # fmt: skip
    """Parse ``source``, configure the builder from ``opts``, optionally mark the tensors ``mark`` as network
    outputs (layer-wise search), and build. ``label`` names the model in messages."""
    shapes = profile_shapes(inputs)
    trt = import_tensorrt(need_builder=True)
    version_str: str = trt.__version__
    version = version_tuple(version_str)
    if version < MIN_TRT:
        raise UserError(
            f"TensorRT {version_str} is too old: attnx builds with TensorRT ≥ 10 (pip install 'tensorrt>=10.9')"
        )
    device = cuda_mem.device_info(0)
    cc = version_tuple(device["compute_capability"])
    notes: list[str] = []
    if opts.hardware_compatibility == "ampere+" and cc < (8, 0):
        raise UserError(
            f"hardware_compatibility ampere+ needs a build GPU of compute capability ≥ 8.0; this is {device['sm']}"
        )
    hw_member = HARDWARE_COMPATIBILITY[opts.hardware_compatibility]
    if not hasattr(trt.HardwareCompatibilityLevel, hw_member):
        raise UserError(
            f"TensorRT {version_str} does not support hardware_compatibility {opts.hardware_compatibility}: "
            "upgrade TensorRT"
        )

    model_bytes, plugin_ops, plugin_ids = _onnx_for_parser(source, version)
    # AOT plugin kernels are compiled for one architecture: sm_80 PTX JIT-compiles on every later GPU.
    plugin_arch = "80" if plugin_ops and opts.hardware_compatibility == "ampere+" else None
    if plugin_arch:
        notes.append("attnx plugin kernels compiled for sm_80 (PTX) so that the ampere+ plan runs on later GPUs")

    logger = trt_logger()
    builder = trt.Builder(logger)
    if opts.builder_threads:
        builder.max_threads = opts.builder_threads
    flags, flag_names = network_flags(trt, version)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with logger.capture() as cap, _env("ATTNX_CUDA_ARCH", plugin_arch):
        # the path lets the parser find external weights beside the file
        parsed = parser.parse(model_bytes, str(source) if isinstance(source, Path) else None)
    if not parsed:
        raise UserError(format_parser_errors(parser, label, cap.first()))

    net_inputs = {network.get_input(i).name: list(network.get_input(i).shape) for i in range(network.num_inputs)}
    dynamic = match_network_inputs(net_inputs, shapes)
    marked = mark_network_outputs(network, mark) if mark is not None else None

    config = builder.create_builder_config()
    if opts.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib << 20)
    if opts.optimization_level is not None:
        config.builder_optimization_level = opts.optimization_level
        if opts.optimization_level == 0 and opts.timing_cache:
            notes.append("optimization level 0 does not use the timing cache")
    if opts.hardware_compatibility != "none":
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, hw_member)
    serialized_libs: list[str] = []
    if opts.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if opts.exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
        used = [*map(str, opts.plugin_libraries), *_call_list(parser, "get_used_vc_plugin_libraries")]
        if used:
            serialized_libs = sorted(set(used))
            config.plugins_to_serialize = serialized_libs
    for lib in opts.plugin_libraries:
        builder.get_plugin_registry().load_library(str(lib))
    if dynamic:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)

    cache_info: dict[str, Any] | None = None
    if opts.timing_cache:
        data = read_timing_cache(opts.timing_cache)
        reused = False
        if data:
            try:
                cache = config.create_timing_cache(data)
                reused = cache is not None and bool(config.set_timing_cache(cache, False))
            except Exception:  # TensorRT raises on a cache it cannot read
                reused = False
            if not reused:
                notes.append(
                    f"timing cache {opts.timing_cache} is unreadable or from another TensorRT/GPU: started a new one"
                )
        if not reused:
            config.set_timing_cache(config.create_timing_cache(b""), False)
        cache_info = {"path": str(opts.timing_cache), "loaded_bytes": len(data), "reused": reused}

    t0 = time.perf_counter()
    with logger.capture() as cap, _env("ATTNX_CUDA_ARCH", plugin_arch):
        plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        raise UserError(
            f"TensorRT could not build an engine from {label}: {cap.first('no reason given')} "
            "(raise workspace_mib, or check the op report)"
        )
    facts = {
        "device": device,
        "tensorrt_version": version_str,
        "strongly_typed": True,
        "network_flags": flag_names,
        "trt_options": opts.to_dict(),
        "workspace_mib": opts.workspace_mib,
        "optimization_level": opts.optimization_level,
        "version_compatible": opts.version_compatible,
        "hardware_compatibility": opts.hardware_compatibility,
        "plugin_libraries": [str(p) for p in opts.plugin_libraries],
        "plugin_libraries_serialized": serialized_libs,
        "attnx_plugins": plugin_ids,
        "plugin_kernel_arch": ("sm_" + (plugin_arch or device["sm"].removeprefix("sm_"))) if plugin_ops else None,
        "profile": {name: {"min": lo, "opt": opt, "max": hi} for name, (lo, opt, hi) in shapes.items()}
        if dynamic
        else None,
        "timing_cache": cache_info,
        "build_seconds": round(seconds, 3),
        "build_notes": notes,
    }
    return _Built(plan, config, facts), marked


def build_trt_engine(
    onnx_path: Path, plan_path: Path, inputs: Sequence[ProfiledInput], options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Build ``plan_path`` from ``onnx_path``; return JSON-able facts: ``device`` plus the build's own.

    ``inputs``: the engine's inputs with their optimisation profiles (:class:`ProfiledInput`); ``options``:
    the TensorRT options of this module's docstring. The facts ("tensorrt_version", "plan_bytes",
    "version_compatible", "hardware_compatibility", "plugin_libraries", "profile", "trt_options", ...) are
    what the bundle records and what :class:`~attnx.deploy.backends.tensorrt.runner.TrtPlanInfo` checks.

    Raises UserError for bad options, a profile that does not fit the model, parser errors (named by
    node), and a failed build (with TensorRT's first error).
    """
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    opts = TrtBuildOptions.from_dict(options)
    built, _ = _build(onnx_path, onnx_path.name, inputs, opts)
    atomic_write(plan_path, memoryview(built.plan))
    facts = built.facts
    facts["plan_bytes"] = plan_path.stat().st_size
    cache_info = facts["timing_cache"]
    if opts.timing_cache and cache_info is not None:
        final = built.config.get_timing_cache()
        if final is not None:
            blob = memoryview(final.serialize())
            atomic_write(opts.timing_cache, blob)
            cache_info["saved_bytes"] = blob.nbytes
    return facts


# ---------------------------------------------------------------------------------------------------------
# Layer-wise search: more network outputs (Polygraphy's ModifyNetworkOutputs / --trt-outputs)


@dataclass
class MarkedOutputs:
    """What :func:`mark_network_outputs` did: ``marked`` maps each tensor it made a network output to its
    NumPy dtype (the tensor's type as built: a strongly typed network keeps it); ``missing`` maps each
    requested name it could not mark to why (no layer produces it, a shape tensor, a type NumPy cannot hold);
    ``outputs`` maps every network output after marking (the model's own first) to its NumPy dtype."""

    marked: dict[str, np.dtype[Any]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, np.dtype[Any]] = field(default_factory=dict)  # every network output after marking, in order


def mark_network_outputs(network: Any, names: Sequence[str]) -> MarkedOutputs:
    """Mark the tensors ``names`` of a parsed ``tensorrt.INetworkDefinition`` as network outputs, as Polygraphy's
    ``mark_outputs`` does: look up the layer outputs by tensor name and ``network.mark_output`` each one (its
    type stays what the network computes). Names that are already outputs are kept as they are; names no layer
    produces, shape tensors and tensors NumPy cannot hold are reported in ``missing``, not raised."""
    produced: dict[str, Any] = {}
    for i in range(int(network.num_layers)):
        layer = network.get_layer(i)
        for j in range(int(layer.num_outputs)):
            tensor = layer.get_output(j)
            if tensor is not None:
                produced.setdefault(str(tensor.name), tensor)
    outputs = {str(network.get_output(i).name) for i in range(int(network.num_outputs))}
    result = MarkedOutputs()
    for name in dict.fromkeys(names):
        tensor = produced.get(name)
        if tensor is None:
            result.missing[name] = "no layer of the network produces it (fused by the parser, or not in the graph)"
            continue
        if name in outputs:
            continue  # a model output: returned anyway
        if getattr(tensor, "is_shape_tensor", False):  # lives on the host as shape information, not an activation
            result.missing[name] = "a shape tensor"
            continue
        try:
            dtype = np_dtype(tensor.dtype, name)
        except UserError:
            result.missing[name] = f"of type {getattr(tensor.dtype, 'name', tensor.dtype)}, which NumPy cannot hold"
            continue
        network.mark_output(tensor)
        result.marked[name] = dtype
    for i in range(int(network.num_outputs)):
        tensor = network.get_output(i)
        result.outputs[str(tensor.name)] = np_dtype(tensor.dtype, str(tensor.name))
    return result


def build_marked_plan(
    source: Path | onnx.ModelProto, inputs: Sequence[ProfiledInput], options: Mapping[str, Any] | None,
    names: Sequence[str], trusted: bool = False,
) -> tuple[bytes, dict[str, Any], MarkedOutputs]:  # fmt: skip
    """A plan of the ONNX model ``source`` (a path or a ModelProto) built with ``options`` (the bundle's TensorRT
    options; its timing cache is neither read nor written) and with the tensors ``names`` marked as network
    outputs: returns the plan's bytes, the build's facts (as :func:`build_trt_engine`, without "plan_bytes")
    and what was marked.

    ``trusted``: the caller vouches for the options' plugin libraries; otherwise each must also be named in
    ``ATTNX_TRT_PLUGIN_LIBRARIES`` (options read from a bundle are data, and a library is native code).
    Raises UserError as :func:`build_trt_engine` does, and for an untrusted plugin library.
    """
    opts = replace(TrtBuildOptions.from_dict(options), timing_cache=None)
    if opts.plugin_libraries and not trusted:
        allowed, _ = trusted_native_code()
        for lib in opts.plugin_libraries:
            if lib.resolve() not in allowed:
                raise UserError(f"the TensorRT options ask to load plugin library {lib}; attnx loads native code "
                                f"only where you name it: set {ENV_PLUGINS}={lib} if you trust it")  # fmt: skip
    label = source.name if isinstance(source, Path) else "the ONNX model"
    built, marked = _build(source, label, inputs, opts, mark=list(names))
    assert marked is not None
    return bytes(memoryview(built.plan)), built.facts, marked


def _call_list(obj: Any, method: str) -> list[str]:
    value = _call(obj, method)
    return [str(v) for v in value] if value else []
