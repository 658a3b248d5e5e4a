"""Roofline context for benchmarks: FLOPs counted from an ONNX graph, and the machine's peak FLOP/s.

FLOPs (one multiply-add = 2 FLOPs, as torch's counter and vendor datasheets count them):
  * Conv / ConvTranspose / MatMul / Gemm (and their quantized and ORT-fused forms): exact from shapes,
    bias additions included;
  * element-wise ops: an *estimate* — one FLOP per output element for arithmetic and activations
    (a transcendental counts as one), a few per element for normalisations and softmax, the window size
    per output element for pooling; data movement (Reshape, Transpose, Concat, Cast, Q/DQ, ...) counts zero.
Ops with no rule (custom attnx ops, Einsum, loops) are listed in ``FlopCount.uncounted``, never guessed.

Peak FLOP/s of a CPU = cores × FMA units per core × SIMD lanes (fp32) × 2 × clock, read from
/proc/cpuinfo and lscpu. What flags cannot tell (how many FMA pipes a core has, turbo clock) is stated
in ``PeakInfo.assumptions``. Override with ``ATTNX_PEAK_GFLOPS`` (whole machine), ``ATTNX_CPU_GHZ`` or
``ATTNX_CPU_FMA_UNITS``, or the ``override_gflops`` argument.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError
from attnx.core.onnx_files import load_onnx

if TYPE_CHECKING:
    import onnx

# ---------------------------------------------------------------------------------------------------
# FLOP counting

# FLOPs per output element (estimates; see the module docstring).
_ELEMENTWISE_COST: dict[str, float] = {
    **dict.fromkeys(
        "Add Sub Mul Div Neg Abs Relu LeakyRelu PRelu Max Min Mean Sum Clip Sqrt Reciprocal Exp Log Sigmoid "
        "Tanh Erf Pow Sign Floor Ceil Round Where Equal Less LessOrEqual Greater GreaterOrEqual And Or Not Xor "
        "HardSigmoid HardSwish Softplus Softsign Elu Selu Celu Mish Gelu ThresholdedRelu Sin Cos Mod "
        "QuickGelu BiasGelu FastGelu".split(),
        1.0,
    ),
    "BatchNormalization": 2.0,  # scale and shift once folded
    "InstanceNormalization": 5.0,  # mean, variance, normalise, scale, shift
    "LayerNormalization": 5.0,
    "GroupNormalization": 5.0,
    "SimplifiedLayerNormalization": 4.0,
    "SkipLayerNormalization": 6.0,
    "LpNormalization": 3.0,
    "Softmax": 4.0,  # max-subtract, exp, sum, divide
    "LogSoftmax": 4.0,
    "Resize": 4.0,  # bilinear: a weighted sum of 4 neighbours, roughly
    "GridSample": 8.0,  # bilinear sampling: weights and a 4-term weighted sum
    "Upsample": 4.0,
}
_REDUCE = set("ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare "
              "ReduceLogSumExp GlobalAveragePool GlobalMaxPool GlobalLpPool ArgMax ArgMin".split())  # fmt: skip
_POOL = {"AveragePool", "MaxPool", "LpPool"}
_ZERO = set(
    "Reshape Transpose Concat Split Slice Gather GatherElements GatherND Scatter ScatterND ScatterElements "
    "Shape Size Cast CastLike Identity Squeeze Unsqueeze Flatten Expand Pad Constant ConstantOfShape Tile "
    "Range QuantizeLinear DequantizeLinear DynamicQuantizeLinear Dropout DepthToSpace SpaceToDepth "
    "NonZero TopK Trilu EyeLike OneHot Compress CumSum".split()
)  # fmt: skip
_CONV = {"Conv", "FusedConv"}
_MATMUL = {"MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat"}


@dataclass
class FlopCount:
    """FLOPs of one inference at the given input shapes."""

    total: float
    dense: float  # Conv / ConvTranspose / MatMul / Gemm: exact
    elementwise: float  # estimate
    by_op: dict[str, float] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)  # op type → node count with no rule or no shape
    input_shapes: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``dataclasses.asdict``): FLOPs as floats, counts as ints."""
        return asdict(self)


def count_flops(
    model: onnx.ModelProto | str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None
) -> FlopCount:
    """FLOPs of ``model`` for concrete ``input_shapes`` (name → shape; a single-input model may pass
    ``{"": shape}``). Shapes come from ONNX shape inference; where that cannot reach (custom ops),
    the graph is run once in ONNX Runtime on zeros to read the real shapes.

    Returns:
        A :class:`FlopCount`: ``total`` = ``dense`` (exact) + ``elementwise`` (estimate), in FLOPs (one
        multiply-add = 2), per op type in ``by_op``; op types that could not be counted in ``uncounted``.

    Raises:
        UserError: the model cannot be read (``attnx.core.onnx_files.load_onnx``); an input stays dynamic
            without a given shape, a given shape contradicts a fixed axis, or names an unknown input.
    """
    proto = _load(model)
    shapes_in = _resolve_input_shapes(proto, input_shapes or {})
    shapes = _inferred_shapes(proto, shapes_in)
    if _missing_shapes(proto, shapes):
        shapes.update(_run_shapes(proto, shapes_in))
    return _count(proto, shapes, shapes_in)


def _load(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    return load_onnx(model)


def graph_inputs(proto: onnx.ModelProto) -> list[Any]:
    """The run-time inputs (``ValueInfoProto``) of the graph: ``graph.input`` minus initializers."""
    init = {i.name for i in proto.graph.initializer}
    return [vi for vi in proto.graph.input if vi.name not in init]


def _resolve_input_shapes(proto: onnx.ModelProto, given: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    inputs = graph_inputs(proto)
    if "" in given and len(inputs) == 1:
        given = {inputs[0].name: given[""]}
    out: dict[str, tuple[int, ...]] = {}
    for vi in inputs:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        shape = given.get(vi.name)
        if shape is None:
            if any(d is None for d in dims):
                raise UserError(f"input '{vi.name}' has dynamic axes {dims}: give its shape to count FLOPs")
            shape = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        if len(shape) != len(dims) or any(d is not None and d != s for d, s in zip(dims, shape)):
            raise UserError(f"input '{vi.name}' cannot take shape {tuple(shape)}: the graph wants {dims}")
        out[vi.name] = tuple(int(s) for s in shape)
    unknown = sorted(set(given) - {vi.name for vi in inputs} - {""})
    if unknown:
        raise UserError(f"unknown input(s) {unknown}; the graph takes {[vi.name for vi in inputs]}")
    return out


def _inferred_shapes(proto: onnx.ModelProto, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    for vi in m.graph.input:
        if vi.name in inputs:
            dims = vi.type.tensor_type.shape.dim
            for d, s in zip(dims, inputs[vi.name]):
                d.Clear()
                d.dim_value = s
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # custom domains or odd graphs: keep what we have; _run_shapes fills the gaps
        pass
    shapes: dict[str, tuple[int, ...]] = dict(inputs)
    for init in m.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    for vi in [*m.graph.value_info, *m.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    return shapes


def _needed(node: Any) -> list[str]:
    """The tensors whose shapes a node's rule needs (empty for ops with no rule)."""
    op = node.op_type
    if op in _CONV or op == "ConvTranspose":
        return [node.input[0], node.input[1], node.output[0]]
    if op in ("QLinearConv",):
        return [node.input[0], node.input[3], node.output[0]]
    if op == "ConvInteger":
        return [node.input[0], node.input[1], node.output[0]]
    if op in _MATMUL:
        return [node.input[0], node.output[0]]
    if op == "Gemm" or op == "FusedGemm":
        return [node.input[0], node.output[0]]
    if op in _REDUCE:
        return [node.input[0]]
    if op in _ELEMENTWISE_COST or op in _POOL:
        return [node.output[0]]
    return []


def _missing_shapes(proto: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> bool:
    return any(t and t not in shapes for n in proto.graph.node for t in _needed(n))


def _run_shapes(proto: onnx.ModelProto, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Real shapes of every tensor, from one ONNX Runtime run on zeros (for graphs inference cannot reach)."""
    import numpy as np
    from onnx import helper

    # here, not at the top: it loads numpy and the parity package, which counting FLOPs by inference never needs
    from attnx.deploy.parity.layerwise import run_with_intermediates

    dtypes = {vi.name: helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type) for vi in graph_inputs(proto)}
    feed = {name: np.zeros(shape, dtype=dtypes[name]) for name, shape in inputs.items()}
    try:
        values = run_with_intermediates(proto, feed, optimize=False)
    except UserError:
        return {}  # the counts will name what stayed uncounted
    return {k: tuple(v.shape) for k, v in values.items() if hasattr(v, "shape")}


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _node_flops(node: Any, shapes: dict[str, tuple[int, ...]]) -> tuple[float, bool] | None:
    """(FLOPs, dense?) of one node, or None when it has no rule or its shapes are unknown."""
    op = node.op_type
    need = _needed(node)
    if not need or any(t not in shapes for t in need if t):
        return None
    prod = math.prod
    if op in _CONV or op in ("QLinearConv", "ConvInteger"):
        w = shapes[need[1]]
        out = shapes[need[2]]
        # out: (N, Cout, *spatial); w: (Cout, Cin/group, *kernel)
        macs = prod(out) * prod(w[1:])
        has_bias = (len(node.input) > 2 and node.input[2]) if op in _CONV else (len(node.input) > 8 and node.input[8])
        return 2.0 * macs + (prod(out) if has_bias else 0), True
    if op == "ConvTranspose":
        x, w, out = shapes[need[0]], shapes[need[1]], shapes[need[2]]
        # every input element scatters into Cout/group × kernel outputs
        macs = prod(x) * prod(w[1:])
        has_bias = len(node.input) > 2 and node.input[2]
        return 2.0 * macs + (prod(out) if has_bias else 0), True
    if op in _MATMUL:
        a, out = shapes[need[0]], shapes[need[1]]
        k = a[-1] if len(a) >= 1 else 1
        return 2.0 * prod(out) * k, True
    if op in ("Gemm", "FusedGemm"):
        a, out = shapes[need[0]], shapes[need[1]]
        k = a[0] if _attr(node, "transA", 0) else a[-1]
        has_c = len(node.input) > 2 and node.input[2]
        return 2.0 * prod(out) * k + (prod(out) if has_c else 0), True
    if op in _REDUCE:
        return float(prod(shapes[need[0]])), False
    if op in _POOL:
        kernel = _attr(node, "kernel_shape", [1])
        return float(prod(shapes[need[0]]) * prod(kernel)), False
    return _ELEMENTWISE_COST[op] * prod(shapes[need[0]]), False


def _count(proto: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], inputs: dict[str, tuple[int, ...]]) -> FlopCount:
    dense = elem = 0.0
    by_op: dict[str, float] = {}
    uncounted: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type in _ZERO:
            continue
        got = _node_flops(node, shapes)
        if got is None:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            uncounted[key] = uncounted.get(key, 0) + 1
            continue
        flops, is_dense = got
        by_op[node.op_type] = by_op.get(node.op_type, 0.0) + flops
        if is_dense:
            dense += flops
        else:
            elem += flops
    return FlopCount(
        total=dense + elem, dense=dense, elementwise=elem, by_op=dict(sorted(by_op.items())),
        uncounted=uncounted, input_shapes={k: list(v) for k, v in inputs.items()},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Peak FLOP/s


@dataclass
class PeakInfo:
    """Peak fp32 FLOP/s of a device, with how it was obtained."""

    device: str
    gflops: float  # the whole device (all physical cores for a CPU)
    cores: int
    per_core_gflops: float
    clock_ghz: float | None
    fma_units: int | None
    simd_lanes: int | None  # fp32 lanes per vector
    isa: str
    source: str  # "cpu flags", "ATTNX_PEAK_GFLOPS", "option", "datasheet"
    assumptions: list[str] = field(default_factory=list)

    def for_cores(self, n: int | None) -> float:
        """Peak when ``n`` cores work (threads beyond the physical cores add nothing)."""
        if n is None or n <= 0:
            return self.gflops
        return self.per_core_gflops * min(n, self.cores)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``dataclasses.asdict``); ``gflops`` in GFLOP/s, ``clock_ghz`` in GHz."""
        return asdict(self)


def cpu_peak(
    override_gflops: float | None = None, cpuinfo: str | None = None, lscpu: str | None = None,
    env: dict[str, str] | None = None,
) -> PeakInfo:  # fmt: skip
    """Peak fp32 GFLOP/s of this CPU. ``cpuinfo`` / ``lscpu`` texts may be given (tests); else they are read.

    Peak = physical cores × FMA units per core × fp32 SIMD lanes × 2 × clock (GHz); what the flags cannot
    tell is listed in ``PeakInfo.assumptions``. ``override_gflops`` (or ``ATTNX_PEAK_GFLOPS`` in ``env``,
    default ``os.environ``) gives the whole-machine figure instead; ``ATTNX_CPU_GHZ`` and
    ``ATTNX_CPU_FMA_UNITS`` override one factor.

    Raises:
        UserError: an override that is not a positive number.
    """
    env = dict(os.environ) if env is None else env
    cpuinfo = _read_cpuinfo() if cpuinfo is None else cpuinfo
    lscpu = _read_lscpu() if lscpu is None else lscpu
    fields = _parse_lscpu(lscpu)
    flags = set(_first(cpuinfo, r"^(?:flags|Features)\s*:\s*(.*)$").split())
    flags |= set(fields.get("Flags", "").split())
    name = fields.get("Model name") or _first(cpuinfo, r"^model name\s*:\s*(.*)$") or "unknown CPU"
    vendor = fields.get("Vendor ID") or _first(cpuinfo, r"^vendor_id\s*:\s*(.*)$")
    family = _int(fields.get("CPU family") or _first(cpuinfo, r"^cpu family\s*:\s*(\d+)"))
    cores = _physical_cores(fields)
    assumptions: list[str] = []

    lanes, units, isa = _simd(flags, vendor, family, assumptions)
    clock = _clock_ghz(fields, cpuinfo, assumptions)
    if env.get("ATTNX_CPU_GHZ"):
        clock = _env_float(env, "ATTNX_CPU_GHZ")
        assumptions.append(f"clock {clock} GHz from ATTNX_CPU_GHZ")
    if env.get("ATTNX_CPU_FMA_UNITS"):
        units = int(_env_float(env, "ATTNX_CPU_FMA_UNITS"))
        assumptions.append(f"{units} FMA units per core from ATTNX_CPU_FMA_UNITS")
    source = "cpu flags"
    if clock is None:
        per_core = math.nan
        assumptions.append("no clock found: peak unknown (set ATTNX_CPU_GHZ or ATTNX_PEAK_GFLOPS)")
    else:
        per_core = units * lanes * 2 * clock
    total = per_core * cores
    override = override_gflops if override_gflops is not None else None
    if override is not None:
        source = "option"
    elif env.get("ATTNX_PEAK_GFLOPS"):
        override, source = _env_float(env, "ATTNX_PEAK_GFLOPS"), "ATTNX_PEAK_GFLOPS"
    if override is not None:
        if override <= 0:
            raise UserError(f"peak GFLOP/s must be positive, got {override}")
        total, per_core = override, override / cores
        assumptions.append(f"peak {override:g} GFLOP/s for {cores} cores given by {source}")
    assumptions.append("fp32 dense FMA throughput; fp16/int8 engines on a CPU are compared with the same fp32 peak")
    return PeakInfo(
        device=name, gflops=total, cores=cores, per_core_gflops=per_core, clock_ghz=clock, fma_units=units,
        simd_lanes=lanes, isa=isa, source=source, assumptions=assumptions,
    )  # fmt: skip


def _simd(flags: set[str], vendor: str, family: int | None, assumptions: list[str]) -> tuple[int, int, str]:
    """(fp32 lanes, FMA units per core, ISA) from cpu flags, with what had to be assumed."""
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family == 25:
            assumptions.append("AMD family 25 (Zen 4): AVX-512 runs on 2 × 256-bit FMA pipes")
            return 8, 2, "avx512 (256-bit datapath)"
        if vendor == "AuthenticAMD":
            assumptions.append(f"AMD family {family} (Zen 5 or later): 2 × 512-bit FMA pipes per core")
        else:
            assumptions.append("AVX-512: 2 FMA units per core (Xeon Gold/Platinum; some parts have 1)")
        return 16, 2, "avx512"
    if "avx2" in flags and "fma" in flags:
        assumptions.append("AVX2 + FMA: 2 × 256-bit FMA units per core (Haswell / Zen 2 and later)")
        return 8, 2, "avx2+fma"
    if "avx" in flags:
        assumptions.append("AVX without FMA: one 256-bit multiply and one add per cycle")
        return 8, 1, "avx"
    if "sve" in flags:
        assumptions.append("SVE: vector length unknown from flags; assumed 128-bit, 2 FMA pipes")
        return 4, 2, "sve"
    if "asimd" in flags:
        assumptions.append("NEON: 2 × 128-bit FMA pipes per core (Neoverse N1-class)")
        return 4, 2, "neon"
    if "sse2" in flags or "sse" in flags:
        assumptions.append("SSE: one 128-bit multiply and one add per cycle")
        return 4, 1, "sse"
    assumptions.append("no SIMD flags recognised: scalar, 1 FMA per cycle")
    return 1, 1, "scalar"


def _clock_ghz(fields: dict[str, str], cpuinfo: str, assumptions: list[str]) -> float | None:
    max_mhz = _float(fields.get("CPU max MHz"))
    if max_mhz:
        assumptions.append(f"clock {max_mhz / 1000:.3f} GHz: lscpu's max (all-core turbo is often lower)")
        return max_mhz / 1000
    mhz = _float(_first(cpuinfo, r"^cpu MHz\s*:\s*([\d.]+)")) or _float(fields.get("CPU MHz"))
    if mhz:
        assumptions.append(
            f"clock {mhz / 1000:.3f} GHz: the kernel's 'cpu MHz' (no max clock reported: a VM shows its "
            "nominal clock; turbo may be higher)"
        )
        return mhz / 1000
    return None


def _physical_cores(fields: dict[str, str]) -> int:
    per_socket = _int(fields.get("Core(s) per socket") or fields.get("Core(s) per cluster"))
    sockets = _int(fields.get("Socket(s)") or fields.get("Cluster(s)")) or 1
    if per_socket:
        return per_socket * sockets
    return os.cpu_count() or 1


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _read_lscpu() -> str:
    try:
        env = {**os.environ, "LC_ALL": "C"}
        return subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _parse_lscpu(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def _first(text: str, pattern: str) -> str:
    m = re.search(pattern, text, flags=re.MULTILINE)
    return m.group(1).strip() if m else ""


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        return None


def _env_float(env: dict[str, str], key: str) -> float:
    value = _float(env.get(key))
    if value is None or value <= 0:
        raise UserError(f"{key}={env.get(key)!r} is not a positive number: set it like {key}=150")
    return value


# Dense (non-sparse) datasheet peaks in TFLOP/s: fp32 on CUDA cores, and the tensor-core rate an engine
# of each precision can reach (TensorRT runs fp32 layers as TF32 by default). Matched by name substring.
_GPU_DATASHEET: dict[str, dict[str, float]] = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "int8": 1978.9},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0, "int8": 1513.0},
    "H100": {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "int8": 1978.9},  # SXM
    "A100": {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "int8": 624.0},
    "L40S": {"fp32": 91.6, "tf32": 183.0, "fp16": 362.0, "int8": 733.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "int8": 242.5},
    "A10": {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0, "int8": 250.0},
    "T4": {"fp32": 8.1, "tf32": 8.1, "fp16": 65.0, "int8": 130.0},
}


def gpu_peak(device_name: str, precision: str, override_gflops: float | None = None,
             env: dict[str, str] | None = None) -> PeakInfo | None:  # fmt: skip
    """Datasheet peak of a known NVIDIA GPU for an engine of ``precision`` (None when the GPU is unknown).

    ``precision`` "fp32" reads the dense TF32 tensor-core figure (TensorRT's default for fp32 engines),
    "fp16" / "int8" their dense tensor-core figures (NVIDIA datasheets, no sparsity), anything else fp32.
    ``override_gflops`` or ``ATTNX_GPU_PEAK_GFLOPS`` (GFLOP/s) wins. The device name is matched by
    substring, case-insensitive (e.g. "NVIDIA H100 80GB HBM3" → "H100").

    Raises:
        UserError: ``ATTNX_GPU_PEAK_GFLOPS`` is set but not a positive number.
    """
    env = dict(os.environ) if env is None else env
    if override_gflops is None and env.get("ATTNX_GPU_PEAK_GFLOPS"):
        override_gflops = _env_float(env, "ATTNX_GPU_PEAK_GFLOPS")
    if override_gflops is not None:
        return PeakInfo(device_name, override_gflops, 1, override_gflops, None, None, None, precision, "option",
                        [f"peak {override_gflops:g} GFLOP/s given"])  # fmt: skip
    for key, figures in _GPU_DATASHEET.items():
        if key.lower() in device_name.lower():
            rate = figures["tf32" if precision == "fp32" else precision] if precision in ("fp32", "fp16", "int8") else figures["fp32"]  # noqa: E501
            what = "TF32 tensor cores" if precision == "fp32" else f"{precision} tensor cores"
            return PeakInfo(device_name, rate * 1000, 1, rate * 1000, None, None, None, what, "datasheet",
                            [f"NVIDIA datasheet dense {what} peak for {key}"])  # fmt: skip
    return None
