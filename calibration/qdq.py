"""INT8 Q/DQ layouts emitted from one attnx calibration table.

* ``ort``: what ONNX Runtime's CPU kernels run fastest: QDQ with **u8 activations** (asymmetric, the
  table's [lo, hi]) and **s8 per-channel weights**, so ORT fuses DQ → op → Q into QLinearConv,
  QLinearMatMul, QGemm, QLinearAdd, ... ONNX Runtime's own ``quantize_static`` does the mechanics; it
  reads attnx's ranges through its documented calibration cache (``calibration_cache_path``), so no
  second calibration runs.
* ``trt``: what TensorRT expects (the layout NVIDIA ModelOpt's ONNX PTQ writes): **symmetric s8**,
  scale = amax / 127, zero point 0, Q/DQ on the **inputs** of the quantizable ops only (Conv,
  ConvTranspose, Gemm, MatMul, pooling), **per-channel weights** stored as int8 initializers feeding a
  DequantizeLinear, biases left in float. TensorRT fuses each Q/DQ pair into the int8 kernel after it.
  Emitted by attnx (a direct graph edit), from the same table: amax = max(|lo|, |hi|).

Nodes the plan excludes get no Q/DQ on their inputs in either layout, so Softmax outputs, attention
MatMuls, normalisations, gates and samplers stay float.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.graph import (
    FLOAT_TYPES,
    GraphIndex,
    drop_dead_nodes,
    ensure_onnx_reference,
    finish_model,
    infer_filled,
    topo_sort,
)
from attnx.core.errors import UserError
from attnx.core.tempdirs import owned_prefix

if TYPE_CHECKING:
    import onnx

    from attnx.calibration.table import CalibrationTable

STYLES = ("ort", "trt")
# ONNX Runtime: the op types its QDQ CPU path fuses or passes through in int8. Softmax, LayerNormalization
# and InstanceNormalization are left out on purpose (see the plan); everything else by node via the plan.
ORT_OP_TYPES = [
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Concat",
    "Resize",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Split",
    "Slice",
    "Gather",
    "Pad",
    "Where",
]
# TensorRT: op type → (activation/weight input indices to quantize, weight channel axis by input index)
TRT_OPS: dict[str, tuple[tuple[int, ...], dict[int, int]]] = {
    "Conv": ((0, 1), {1: 0}),
    "ConvTranspose": ((0, 1), {1: 1}),
    "Gemm": ((0, 1), {}),  # axis from transB, below
    "MatMul": ((0, 1), {1: -1}),
    "AveragePool": ((0,), {}),
    "GlobalAveragePool": ((0,), {}),
    "MaxPool": ((0,), {}),
}


@dataclass
class QuantResult:
    """A Q/DQ model (``model``, a new ModelProto), the names of the original nodes that now read quantized
    inputs (``quantized``), and remarks for the plan (``notes``)."""

    model: onnx.ModelProto
    quantized: list[str]  # original node names that now read Q/DQ inputs
    notes: list[str] = field(default_factory=list)


def quantize(
    model: onnx.ModelProto,
    table: CalibrationTable,
    exclude: list[str],
    style: str,
    float_inputs: list[str] | None = None,
    weight_bits: int = 8,
) -> QuantResult:
    """Quantize all but ``exclude``; ``float_inputs`` (ORT style): excluded nodes that must read float inputs.

    Without ``float_inputs``, every excluded node reads float where its input comes from another excluded
    node (a float island stays float), and may read a quantized tensor otherwise (see ``ort_style``).
    ``weight_bits`` (ORT style): 7 writes s8 weights in [-64, 64] (``reduce_range``), which cannot saturate
    the u8×s8 kernels of x86 CPUs without VNNI (see :mod:`attnx.core.cpu`); 8 uses the full range. TensorRT
    accumulates in int32, so its layout always uses 8.

    ONNX operators: QuantizeLinear / DequantizeLinear (opset ≥ 13 for per-axis scales;
    https://onnx.ai/onnx/operators/onnx__QuantizeLinear.html).

    Raises:
        UserError: an unknown ``style``, a default-domain opset below 13, or ``weight_bits`` not 7 or 8;
            ORT style also when ONNX Runtime's quantizer refuses the graph.
    """
    if style not in STYLES:
        raise UserError(f"unknown Q/DQ style '{style}': choose {', '.join(STYLES)}")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise UserError(
            f"INT8 needs opset ≥ 13 (per-channel QuantizeLinear); the model has {opset}: re-export with --opset 17"
        )
    if weight_bits not in (7, 8):
        raise UserError(f"weight_bits must be 7 or 8, got {weight_bits}")
    if style == "ort":
        return ort_style(model, table, exclude, float_inputs or [], weight_bits)
    return trt_style(model, table, exclude)


def ort_style(
    model: onnx.ModelProto, table: CalibrationTable, exclude: list[str], float_inputs: list[str], weight_bits: int = 8
) -> QuantResult:
    """ONNX Runtime CPU layout via ``quantize_static``, fed attnx's ranges through ORT's calibration cache.

    ``quantize_static`` also quantizes the *outputs* of the nodes it quantizes, so an excluded node can
    still read a quantized tensor (a Softmax reading u8 logits from a quantized Conv). The nodes in
    ``float_inputs`` get their original float inputs back, and so does every excluded node whose input
    comes from another excluded node, wherever that tensor still exists as the same node's output (a
    Relu that ORT folded into a Q range has no float output left; that input stays as ORT wrote it).
    Other excluded nodes keep reading the dequantized tensor: giving them the float one would keep its
    producer from fusing into an int8 kernel (a gate's feature map needs no more than int8).
    """
    import logging

    import onnx

    ensure_onnx_reference()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    model, aliases = spatial_means_as_pools(model)
    typed_value_info(model)
    unshared = unshare_weights(model, names_to_skip=set(exclude))
    pooled = len(aliases)
    ranges = {
        name: TensorData(lowest=np.array(r.lo, np.float32), highest=np.array(r.hi, np.float32))
        for name, r in table.ranges.items()
    }
    for new, old in aliases.items():  # a pool's output before its Squeeze has the ReduceMean's range
        if old in ranges and new != old:
            ranges[new] = ranges[old]
    names = {n.name for n in model.graph.node}
    unranged = unranged_nodes(model, set(ranges), set(exclude))
    exclude = [*exclude, *unranged]

    with tempfile.TemporaryDirectory(prefix=owned_prefix("attnx-ort-qdq-")) as tmp:  # swept if killed
        cache = Path(tmp) / "ranges.json"
        out = Path(tmp) / "int8.onnx"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), cache)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" warnings are noise here
        try:
            quantize_static(
                model,
                out,
                calibration_data_reader=None,
                calibration_cache_path=cache,
                calibrate_method=CalibrationMethod.MinMax,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=ORT_OP_TYPES,
                per_channel=True,
                reduce_range=weight_bits == 7,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=[n for n in exclude if n in names],
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        finally:
            logging.getLogger().setLevel(quiet)
        qmodel = onnx.load(str(out))
    del qmodel.graph.value_info[:]
    restored = restore_float_inputs(qmodel, model, set(float_inputs), set(exclude))
    notes = [f"gave {restored} input(s) of excluded nodes back their float tensors"] if restored else []
    if unshared:
        notes.append(f"{unshared} weight(s) shared by several nodes were given one copy per node (ONNX Runtime's "
                     "U8U8 kernels re-pack each quantized weight in place)")
    if pooled:
        notes.append(f"{pooled} spatial ReduceMean(s) became pooling (ORT runs QLinear[Global]AveragePool in int8)")
    if unranged:
        notes.append(f"{len(unranged)} node(s) left float because a float tensor they read or write has no calibrated "
                     f"range (empty or untyped on calibration data): {', '.join(unranged[:3])}")  # fmt: skip
    quantized = quantized_nodes(qmodel, names - set(exclude), set(ORT_OP_TYPES))
    return QuantResult(finish_model(qmodel, model), quantized, notes)


def typed_value_info(model: onnx.ModelProto) -> None:
    """One typed ``value_info`` per tensor, the outputs of ops onnx cannot infer included (in place).

    ONNX Runtime's quantizer decides whether a tensor is quantizable from ``value_info`` (the last entry of a
    name wins) after its own onnx shape inference, which gives up at GroupNormalization-21 (a function op with
    no inference: the dynamo exporter writes it at opset >= 21). An untyped or missing entry there makes it skip
    the tensor as an activation and then fail on the bias of the Conv that reads it ("Unable to get valid
    quantization scale for input 'group_norm'"), although the table has its range. The entries are rebuilt
    with :func:`attnx.calibration.graph.infer_filled`, which types those outputs from their input.
    """
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    try:
        inferred = list(infer_filled(m).graph.value_info)
    except Exception:  # inference is best effort: keep what the file had, typed entries first
        inferred = []
    seen: set[str] = {vi.name for vi in list(model.graph.input) + list(model.graph.output)}
    keep = []
    for vi in inferred + list(model.graph.value_info):
        if vi.name not in seen and vi.type.tensor_type.elem_type:
            seen.add(vi.name)
            keep.append(vi)
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def unranged_nodes(model: onnx.ModelProto, ranged: set[str], exclude: set[str]) -> list[str]:
    """Nodes ONNX Runtime would quantize (``ORT_OP_TYPES``, not excluded) with a float activation input or
    output that has no range in the table: asked to quantize it, ``quantize_static`` fails (no scale for the
    tensor, or for the bias that depends on it), so they stay float instead. Needs typed ``value_info``."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {t for n in model.graph.node if n.op_type == "Constant" for t in n.output}
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]}  # fmt: skip
    out = []
    for node in model.graph.node:
        if node.op_type not in ORT_OP_TYPES or node.name in exclude or node.domain not in ("", "ai.onnx"):
            continue
        tensors = [t for t in [*node.input, *node.output] if t and t not in consts]
        if any(t not in ranged and types.get(t, FLOAT_TYPES[0]) in FLOAT_TYPES for t in tensors):  # untyped: maybe
            out.append(node.name)
    return out


def unshare_weights(model: onnx.ModelProto, names_to_skip: set[str]) -> int:
    """Give every quantizable node its own copy of a weight initializer it shares with another node.

    CBAM's channel MLP applies one weight to two pooled vectors. Quantized, the two nodes then read one
    DequantizeLinear, and ONNX Runtime's U8U8 path (which re-packs a quantized weight into u8 under its own
    name) refuses the graph ("Attempt to replace the existing tensor"). In place; returns the copies made.
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    seen: dict[str, int] = {}
    copies = 0
    for node in model.graph.node:
        if node.name in names_to_skip or node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        name = node.input[1] if len(node.input) > 1 else ""
        if name not in inits:
            continue
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # the second and later readers get a copy
            copy = numpy_helper.from_array(numpy_helper.to_array(inits[name]), f"{name}__{_safe(node.name)}")
            model.graph.initializer.append(copy)
            node.input[1] = copy.name
            copies += 1
    return copies


def spatial_means_as_pools(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """ReduceMean over spatial axes of a 4-D tensor → pooling (+ Squeeze if keepdims=0).

    Over H and W: GlobalAveragePool (any size). Over one of them whose extent is fixed in the graph (the
    directional pooling of coordinate attention): AveragePool with a 1×W or H×1 kernel. The same
    arithmetic, but ORT has int8 kernels for the pools (QLinearGlobalAveragePool, QLinearAveragePool)
    and none for ReduceMean, whose float kernel is also ~10× slower on the NHWC layout ORT uses for int8
    convolutions. Node names are kept, so the plan still addresses them. Returns the model and, per
    rewritten node, its pool's output tensor → the ReduceMean's output tensor (the same values).
    """
    import onnx
    from onnx import helper, numpy_helper

    index = GraphIndex.build(model)  # no concrete input shape: only extents fixed in the graph count
    m = onnx.ModelProto()
    m.CopyFrom(model)
    new_nodes: list[onnx.NodeProto] = []
    extra_inits: list[onnx.TensorProto] = []
    aliases: dict[str, str] = {}
    for node in m.graph.node:
        shape = index.shapes.get(node.input[0]) if node.input else None
        if node.op_type != "ReduceMean" or node.domain not in ("", "ai.onnx") or not shape or len(shape) != 4:
            new_nodes.append(node)
            continue
        axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
        if axes is None and len(node.input) > 1 and node.input[1] in index.constants:
            axes = [int(a) for a in index.constants[node.input[1]].ravel()]
        axes = sorted(a % 4 for a in axes) if axes else []
        if axes == [2, 3]:
            pool = helper.make_node("GlobalAveragePool", [node.input[0]], ["?"], name=node.name)
        elif axes in ([2], [3]) and (extent := shape[axes[0]]):
            kernel = [int(extent), 1] if axes == [2] else [1, int(extent)]
            pool = helper.make_node("AveragePool", [node.input[0]], ["?"], kernel_shape=kernel, name=node.name)
        else:
            new_nodes.append(node)
            continue
        if next((a.i for a in node.attribute if a.name == "keepdims"), 1):
            pool.output[0] = node.output[0]
            new_nodes.append(pool)
            aliases[node.output[0]] = node.output[0]
        else:
            pooled = f"{node.output[0]}__pooled"
            axes_name = f"{node.name}__squeeze_axes"
            extra_inits.append(numpy_helper.from_array(np.array(axes, np.int64), axes_name))
            pool.output[0] = pooled
            new_nodes.append(pool)
            new_nodes.append(
                helper.make_node("Squeeze", [pooled, axes_name], [node.output[0]], name=f"{node.name}__squeeze")
            )
            aliases[pooled] = node.output[0]
    if not aliases:
        return model, {}
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    m.graph.initializer.extend(extra_inits)
    return m, aliases


def restore_float_inputs(
    qmodel: onnx.ModelProto, original: onnx.ModelProto, nodes: set[str], excluded: set[str] | None = None
) -> int:
    """Rewire dequantized activation inputs back to the original float tensors; drop dead Q/DQ.

    Applies to every input of ``nodes``, and to the inputs of ``excluded`` nodes produced by excluded nodes.
    """
    excluded = excluded or set()
    orig_inputs = {n.name: list(n.input) for n in original.graph.node}
    orig_producer = {t: n.name for n in original.graph.node for t in n.output}
    available = {t for n in qmodel.graph.node for t in n.output} | {i.name for i in qmodel.graph.input}
    producer = {t: n for n in qmodel.graph.node for t in n.output}
    restored = 0
    for node in qmodel.graph.node:
        if (node.name not in nodes and node.name not in excluded) or node.name not in orig_inputs:
            continue
        before = orig_inputs[node.name]
        for i, t in enumerate(node.input):
            dq = producer.get(t)
            if dq is None or dq.op_type != "DequantizeLinear" or i >= len(before) or before[i] == t:
                continue
            if node.name not in nodes and orig_producer.get(before[i]) not in excluded:
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a weight (int8 initializer → DQ): not an activation
            # safe only if the same node still produces that tensor: when ORT folds a Relu into a Q range
            # it renames the Relu's input to the Relu's output, which then holds pre-activation values
            same = producer[before[i]].name == orig_producer.get(before[i]) if before[i] in producer else True
            if before[i] in available and same:
                node.input[i] = before[i]
                restored += 1
    if restored:
        _drop_dead_nodes(qmodel)
    return restored


def _drop_dead_nodes(model: onnx.ModelProto) -> None:
    drop_dead_nodes(model)
    _drop_unused_initializers(model)


def trt_style(model: onnx.ModelProto, table: CalibrationTable, exclude: list[str]) -> QuantResult:
    """TensorRT layout: symmetric int8 Q/DQ on op inputs, per-channel int8 weights, floats elsewhere."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    excluded = set(exclude)
    inits = {i.name: i for i in g.initializer}
    const_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    new_inits: list[onnx.TensorProto] = []
    pre_nodes: dict[str, list[onnx.NodeProto]] = {}  # tensor → Q/DQ nodes that produce its dequantized copy
    dq_name: dict[tuple[str, int | None], str] = {}
    quantized: list[str] = []
    missing: set[str] = set()

    def activation(t: str) -> str | None:
        if (t, None) in dq_name:
            return dq_name[(t, None)]
        r = table.ranges.get(t)
        if r is None:
            missing.add(t)
            return None
        scale = np.float32(max(r.amax, 1e-12) / 127.0)
        base = _safe(t)
        new_inits.append(numpy_helper.from_array(np.array(scale, np.float32), f"{base}_scale"))
        new_inits.append(numpy_helper.from_array(np.array(0, np.int8), f"{base}_zero_point"))
        q = helper.make_node(
            "QuantizeLinear",
            [t, f"{base}_scale", f"{base}_zero_point"],
            [f"{base}_quantized"],
            name=f"{base}_QuantizeLinear",
        )
        dq = helper.make_node(
            "DequantizeLinear",
            [f"{base}_quantized", f"{base}_scale", f"{base}_zero_point"],
            [f"{base}_dequantized"],
            name=f"{base}_DequantizeLinear",
        )
        pre_nodes.setdefault(t, []).extend([q, dq])
        dq_name[(t, None)] = dq.output[0]
        return dq.output[0]

    def weight(t: str, axis: int | None) -> str:
        key = (t, axis if axis is not None else -999)
        if key in dq_name:
            return dq_name[key]
        w = numpy_helper.to_array(inits[t]) if t in inits else numpy_helper.to_array(const_nodes[t].attribute[0].t)
        w = w.astype(np.float32)
        if axis is not None and w.ndim > 0:
            ax = axis % w.ndim
            amax = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != ax))
            shape = [1] * w.ndim
            shape[ax] = -1
            scale = (np.maximum(amax, 1e-12) / 127.0).astype(np.float32)
            q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            zp = np.zeros_like(scale, np.int8)
        else:
            ax = None
            scale = np.array(max(float(np.abs(w).max()) if w.size else 0.0, 1e-12) / 127.0, np.float32)
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            zp = np.array(0, np.int8)
        base = _safe(t) + (f"_axis{ax}" if ax is not None else "")
        new_inits.extend(
            [
                numpy_helper.from_array(q, f"{base}_int8"),
                numpy_helper.from_array(scale, f"{base}_wscale"),
                numpy_helper.from_array(zp, f"{base}_wzero_point"),
            ]
        )
        kwargs: dict[str, Any] = {"axis": ax} if ax is not None else {}
        dq = helper.make_node(
            "DequantizeLinear",
            [f"{base}_int8", f"{base}_wscale", f"{base}_wzero_point"],
            [f"{base}_wdequantized"],
            name=f"{base}_DequantizeLinear",
            **kwargs,
        )
        pre_nodes.setdefault(t, []).append(dq)
        dq_name[key] = dq.output[0]
        return dq.output[0]

    for node in g.node:
        spec = TRT_OPS.get(node.op_type)
        if spec is None or node.name in excluded or node.domain not in ("", "ai.onnx"):
            continue
        indices, axes = spec
        touched = False
        for i in indices:
            if i >= len(node.input) or not node.input[i]:
                continue
            t = node.input[i]
            if t in inits or t in const_nodes:
                axis = axes.get(i)
                if node.op_type == "Gemm" and i == 1:
                    axis = 0 if _attr(node, "transB", 0) else 1
                if node.op_type == "Gemm" and i == 0 and _attr(node, "transA", 0):
                    axis = None
                node.input[i] = weight(t, axis)
                touched = True
            else:
                dq = activation(t)
                if dq is not None:
                    node.input[i] = dq
                    touched = True
        if touched:
            quantized.append(node.name)
    g.initializer.extend(new_inits)
    extra = [n for nodes in pre_nodes.values() for n in nodes]
    g.node.extend(extra)
    topo_sort(m)
    _drop_unused_initializers(m)
    notes = []
    if missing:
        notes.append(f"{len(missing)} activation(s) had no calibration range and stayed float: {sorted(missing)[:3]}")
    del m.graph.value_info[:]
    return QuantResult(finish_model(m, model), quantized, notes)


def _attr(node: Any, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _safe(name: str) -> str:
    return name.strip("/").replace("/", "_").replace(":", "_") or "t"


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    """Weights replaced by their int8 copies are no longer read: drop them (and any graph-input entry)."""
    used = {t for n in model.graph.node for t in n.input} | {o.name for o in model.graph.output}
    dropped = {i.name for i in model.graph.initializer if i.name not in used}
    if not dropped:
        return
    keep = [i for i in model.graph.initializer if i.name not in dropped]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    inputs = [i for i in model.graph.input if i.name not in dropped]
    del model.graph.input[:]
    model.graph.input.extend(inputs)


def quantized_nodes(qmodel: onnx.ModelProto, candidates: set[str], op_types: set[str]) -> list[str]:
    """Nodes the quantizer took: candidates of a quantizable type that read at least one DequantizeLinear.

    (A float node may read a dequantized tensor too, when its producer's output was quantized.)
    """
    dq_out = {n.output[0] for n in qmodel.graph.node if n.op_type == "DequantizeLinear"}
    return [
        n.name
        for n in qmodel.graph.node
        if n.name in candidates and n.op_type in op_types and any(t in dq_out for t in n.input)
    ]


def count_qdq(model: onnx.ModelProto) -> dict[str, int]:
    """How many QuantizeLinear and DequantizeLinear nodes the top-level graph holds (keys: those op names)."""
    q = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
    dq = sum(n.op_type == "DequantizeLinear" for n in model.graph.node)
    return {"QuantizeLinear": q, "DequantizeLinear": dq}
