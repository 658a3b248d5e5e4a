"""How a CPU computes an INT8 ONNX graph, and how attnx makes its CPU checks compute what the target does.

Two facts decide it (see :mod:`attnx.core.cpu` for the CPU side):

* **Saturation.** x86 CPUs without VNNI add each pair of adjacent u8×s8 products into a saturating int16
  (``VPMADDUBSW``). :func:`saturation_proof` proves, from the weights alone, that no such pair sum can leave
  the int16 range for any u8 input: per output channel, ``255 · (|w|₁ + |w|₂) ≤ 32767`` with ``|w|₁``,
  ``|w|₂`` the two largest raw |s8| weights over the channel's reduction (a bound that holds whatever order
  the kernel packs the reduction in). 7-bit weights (|w| ≤ 64) always pass; full 8-bit weights usually not.
* **TensorRT layout.** TensorRT accumulates int8 products in int32 and never saturates; ONNX Runtime's CPU
  kernels run its s8 activations through the same u8 path as above. A TensorRT-layout graph (symmetric s8
  activations) is therefore checked on the CPU by :func:`fake_quant`: every Q/DQ pair becomes the float ops
  it is defined by (ONNX ``QuantizeLinear``: ``saturate(round_half_even(x / scale) + zero_point)``), so the
  only error left is the quantization itself, exactly as TensorRT computes it.

:func:`cpu_form` applies both: the graph (and ONNX Runtime session settings) that compute, on this CPU,
what the INT8 graph computes on its target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.cpu import CpuFeatures, int8_runtime_path
from attnx.core.errors import UserError

if TYPE_CHECKING:
    import onnx

INT16_MAX = 32767
U8_MAX = 255
# op type → (weight input index, weight zero-point input index or None); Q/DQ-form ops read a DequantizeLinear
_QLINEAR_WEIGHTS = {"QLinearConv": (3, 5), "QLinearMatMul": (3, 5), "ConvInteger": (1, 3), "MatMulInteger": (1, 3),
                    "QGemm": (3, 5)}  # fmt: skip
_DQ_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class SaturationProof:
    """Per quantized dot-product node: the largest possible u8×s8 pair sum (worst case over inputs)."""

    pair_sums: dict[str, int] = field(default_factory=dict)  # node → 255 · (two largest |w| of a channel)
    unprovable: dict[str, str] = field(default_factory=dict)  # node → why no bound exists (s8 activations, ...)

    @property
    def safe(self) -> bool:
        """True when every node's bound fits int16 (≤ 32 767) and none is unprovable: no input can saturate
        a VPMADDUBSW (non-VNNI x86) kernel."""
        return not self.unprovable and all(v <= INT16_MAX for v in self.pair_sums.values())

    @property
    def checked(self) -> int:
        """How many integer dot-product nodes were examined (bounded or unprovable)."""
        return len(self.pair_sums) + len(self.unprovable)

    def worst(self) -> tuple[str, int] | None:
        """(node, pair sum) with the largest bound; None when no node was bounded."""
        return max(self.pair_sums.items(), key=lambda kv: kv[1]) if self.pair_sums else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest's ``cpu`` record: safe, node count, the int16 limit, the worst node, and
        the nodes over the limit and the unprovable ones (the first 20 of each, with the full count over)."""
        worst = self.worst()
        over = sorted(n for n, v in self.pair_sums.items() if v > INT16_MAX)
        return {"safe": self.safe, "dot_product_nodes": self.checked, "int16_limit": INT16_MAX,
                "worst": {"node": worst[0], "pair_sum": worst[1]} if worst else None,
                "over_limit": over[:20], "over_limit_count": len(over),
                "unprovable": dict(list(self.unprovable.items())[:20])}  # fmt: skip


def _initializers(model: onnx.ModelProto) -> dict[str, Any]:
    return {i.name: i for i in model.graph.initializer}


def _array(init: Any) -> np.ndarray | None:
    from onnx import numpy_helper

    if init is None or init.data_location == 1:  # external data not loaded: no bound from here
        return None
    return numpy_helper.to_array(init)


def _per_channel(weights: np.ndarray, op: str, node: Any) -> np.ndarray:
    """|w| arranged as (output channels, reduction): each row is what one output element sums over."""
    w = np.abs(weights.astype(np.int32))
    if w.ndim < 2:
        return w.reshape(1, -1)
    if op in ("Conv", "QLinearConv", "ConvInteger"):
        return w.reshape(w.shape[0], -1)
    if op == "ConvTranspose":
        return np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    if op in ("Gemm", "QGemm") and trans_b:
        return w.reshape(w.shape[0], -1)
    # MatMul-like: B is (..., K, N); column n sums over K (batched B: every batch's columns, conservatively)
    return np.moveaxis(w, -1, 0).reshape(w.shape[-1], -1)


def saturation_proof(model: onnx.ModelProto) -> SaturationProof:
    """For every quantized Conv/ConvTranspose/MatMul/Gemm (Q/DQ form or QLinear/Integer ops), bound the
    largest u8×s8 pair sum its weights allow. ``safe`` means no input can saturate a non-VNNI kernel."""
    inits = _initializers(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    proof = SaturationProof()
    for node in model.graph.node:
        name = node.name or node.output[0]
        weight: np.ndarray | None = None
        if node.op_type in _QLINEAR_WEIGHTS:
            idx, _ = _QLINEAR_WEIGHTS[node.op_type]
            if len(node.input) <= idx:
                continue
            weight = _array(inits.get(node.input[idx]))
            if weight is None:
                proof.unprovable[name] = "its second operand is not a stored weight (activation × activation)"
                continue
        elif node.op_type in _DQ_OPS and len(node.input) > 1:
            dq = producer.get(node.input[1])
            if dq is None or dq.op_type != "DequantizeLinear":
                continue  # float weights: not an integer dot product
            weight = _array(inits.get(dq.input[0]))
            if weight is None:
                a_dq = producer.get(node.input[0])
                if a_dq is not None and a_dq.op_type == "DequantizeLinear":
                    proof.unprovable[name] = "both operands are quantized activations"
                continue
        else:
            continue
        if weight.dtype == np.uint8:
            continue  # u8×u8 runs through widening kernels that do not saturate
        if weight.dtype != np.int8:
            proof.unprovable[name] = f"weights of type {weight.dtype}"
            continue
        rows = _per_channel(weight, node.op_type, node)
        if rows.shape[1] >= 2:
            top2 = np.partition(rows, rows.shape[1] - 2, axis=1)[:, -2:]
            pair = int(top2.sum(axis=1).max())
        else:
            pair = int(rows.max()) if rows.size else 0
        proof.pair_sums[name] = U8_MAX * pair
    return proof


def has_s8_activations(model: onnx.ModelProto) -> bool:
    """True for a TensorRT-layout graph: a QuantizeLinear of an activation into int8."""
    from onnx import TensorProto

    inits = _initializers(model)
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        zp = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        out_type = next((a.i for a in node.attribute if a.name == "output_dtype"), 0)
        if (zp is not None and zp.data_type == TensorProto.INT8) or out_type == TensorProto.INT8:
            return True
    return False


def has_integer_ops(model: onnx.ModelProto) -> bool:
    """True when a top-level node is QuantizeLinear, DequantizeLinear or a QLinear/Integer op (an INT8 graph)."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", *_QLINEAR_WEIGHTS) for n in model.graph.node)


def fake_quant(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every Q/DQ computed by float ops (ONNX QuantizeLinear semantics).

    Weight DequantizeLinear nodes (int8 initializers) are folded into float initializers. Activation
    ``QuantizeLinear(x, s, zp)`` becomes ``Clip(Round(x / s) + zp, qmin, qmax)`` and its ``DequantizeLinear``
    ``(q - zp) · s``, in the scale's float type. Raises :class:`attnx.core.errors.UserError` for per-axis
    activation quantization (no static rank to broadcast it over; attnx never writes it).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = _initializers(out)
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    folded: set[str] = set()
    ranges = {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255), TensorProto.INT16: (-32768, 32767),
              TensorProto.UINT16: (0, 65535), TensorProto.INT32: (-(2**31), 2**31 - 1)}  # fmt: skip

    def const(name: str, value: np.ndarray) -> str:
        new_inits.append(numpy_helper.from_array(value, name))
        return name

    for node in g.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            new_nodes.append(node)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        scale = _array(inits.get(node.input[1]))
        zp_init = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        zp = _array(zp_init)
        if scale is None:
            raise UserError(f"fake-quant check: {node.op_type} '{node.name}' has a computed scale; attnx needs "
                            "constant scales (re-quantize with attnx)")  # fmt: skip
        ftype = scale.dtype
        tag = (node.name or node.output[0]).replace("/", "_")
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q = _array(inits[node.input[0]])
            assert q is not None
            shape = [1] * q.ndim
            if scale.size > 1:
                shape[axis % q.ndim] = -1
            z = zp.astype(np.float64).reshape(shape) if zp is not None else 0.0
            value = ((q.astype(np.float64) - z) * scale.astype(np.float64).reshape(shape)).astype(ftype)
            new_inits.append(numpy_helper.from_array(value, node.output[0]))
            folded.add(node.input[0])
            continue
        if scale.size > 1:
            raise UserError(f"fake-quant check: per-axis activation quantization at '{node.name}' is not supported")
        zf = const(f"{tag}/fq_zp", (zp.astype(ftype) if zp is not None else np.zeros((), ftype)).reshape(()))
        if node.op_type == "QuantizeLinear":
            qtype = zp_init.data_type if zp_init is not None else next(
                (a.i for a in node.attribute if a.name == "output_dtype"), TensorProto.UINT8) or TensorProto.UINT8
            lo, hi = ranges.get(qtype, (0, 255))
            x, s = node.input[0], node.input[1]
            new_nodes += [
                helper.make_node("Div", [x, s], [f"{tag}/fq_div"], name=f"{tag}/fq_div"),
                helper.make_node("Round", [f"{tag}/fq_div"], [f"{tag}/fq_round"], name=f"{tag}/fq_round"),
                helper.make_node("Add", [f"{tag}/fq_round", zf], [f"{tag}/fq_add"], name=f"{tag}/fq_add"),
                helper.make_node("Clip", [f"{tag}/fq_add", const(f"{tag}/fq_lo", np.array(lo, ftype)),
                                          const(f"{tag}/fq_hi", np.array(hi, ftype))], [node.output[0]],
                                 name=f"{tag}/fq_clip"),
            ]  # fmt: skip
        else:
            new_nodes += [
                helper.make_node("Sub", [node.input[0], zf], [f"{tag}/fq_sub"], name=f"{tag}/fq_sub"),
                helper.make_node("Mul", [f"{tag}/fq_sub", node.input[1]], [node.output[0]], name=f"{tag}/fq_mul"),
            ]
    del g.node[:]
    g.node.extend(new_nodes)
    still_used = {i for n in new_nodes for i in n.input}
    keep = [i for i in g.initializer if not (i.name in folded and i.name not in still_used)]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    del g.value_info[:]  # Q outputs changed type; let ORT infer
    return out


FAKE_QUANT = "exact fake-quant (Q/DQ as float ops; TensorRT accumulates in int32)"


@dataclass(frozen=True)
class CpuPath:
    """How ONNX Runtime on this CPU must run an INT8 graph: ``kind`` float | fake_quant | integer, the session
    settings (U8U8 where needed), and the decision in words (for reports)."""

    kind: str
    session_config: dict[str, str]
    description: str


def cpu_path(model: onnx.ModelProto, features: CpuFeatures | None = None, u8u8: str | None = None,
             proof: SaturationProof | None = None) -> CpuPath:  # fmt: skip
    """TensorRT layout → fake-quant; ONNX Runtime layout whose weights are not proven saturation-safe, on a CPU
    whose u8×s8 kernels saturate → ONNX Runtime's U8U8 kernels; else as it is. ``proof``: already computed."""
    if not has_integer_ops(model):
        return CpuPath("float", {}, "float")
    if has_s8_activations(model):
        return CpuPath("fake_quant", {}, FAKE_QUANT)

    path = int8_runtime_path((proof or saturation_proof(model)).safe, None, "ort", features, u8u8)
    return CpuPath("integer", path.session_config(), path.description)


@dataclass(frozen=True)
class CpuForm:
    """The graph to hand ONNX Runtime here, its session settings, and what was decided (for reports)."""

    model: Any
    session_config: dict[str, str]
    description: str


def cpu_form(model: onnx.ModelProto, features: CpuFeatures | None = None, u8u8: str | None = None) -> CpuForm:
    """What ONNX Runtime on this CPU must run so that it computes what ``model`` computes on its target
    (:func:`cpu_path`; a TensorRT-layout graph becomes its :func:`fake_quant` copy)."""
    path = cpu_path(model, features, u8u8)
    return CpuForm(fake_quant(model) if path.kind == "fake_quant" else model, path.session_config, path.description)
