"""The attention-aware precision plan: which nodes stay in float, and why, found on the ONNX graph.

One plan serves both reduced precisions: FP16 keeps the listed nodes in FP32, INT8 leaves them
unquantized (per category, see ``CATEGORIES``). Detection is pattern matching on the graph:

* attention cores: every Softmax, the MatMuls that produce its logits (through scale, mask, max-subtraction
  and layout nodes) and the MatMuls that consume its probabilities (through layout, double-normalisation
  and normalisation nodes), with the nodes on those paths;
* double normalisation: ``attnx::DoubleNorm``, or its decomposition Softmax → ReduceSum (→ Add) → Div;
* normalisation: LayerNormalization, GroupNormalization, InstanceNormalization, LpNormalization,
  MeanVarianceNormalization, and the decomposed mean/variance pattern ReduceMean → Sub → Pow|Mul →
  ReduceMean (→ Add) → Sqrt → Div (or Reciprocal → Mul);
* normalisation inputs (INT8 only): the Add/Concat/Mul that feeds a normalisation (a transformer's residual
  stream) carries outlier channels that normalisation removes; one int8 scale would crush the others;
* large reductions: ReduceSum/ReduceMean/… and global pooling over at least ``reduce_extent`` elements;
* sigmoid gates: Sigmoid/HardSigmoid whose output scales another tensor through a Mul (SE, CBAM, BAM,
  ECA, coordinate attention); ``x * sigmoid(x)`` (SiLU) is an activation, not a gate, and is left alone;
* sampling: GridSample / AffineGrid / attnx grid ops and the MatMul/Gemm that computes their grid;
* attnx custom nodes (their kernels compute in FP32);
* data-driven (FP16): tensors whose calibration-data magnitude exceeds a bound (see ``pin_fp16_range``);
* the user's own ``exclude`` list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from attnx.calibration import kernel_timing
from attnx.calibration.graph import GraphIndex
from attnx.core.errors import UserError

# category → (kept FP32 under FP16, excluded from INT8 quantization)
CATEGORIES: dict[str, tuple[bool, bool]] = {
    "softmax": (True, True),
    # one ONNX Attention node: FP16 with its softmax_precision set to FLOAT (softmax inside in FP32); never INT8
    "fused_attention": (False, True),
    "attention_matmul": (True, True),
    "attention_path": (True, True),
    "double_norm": (True, True),
    "normalization": (True, True),
    "norm_input": (False, True),
    "large_reduction": (True, False),
    "sigmoid_gate": (True, True),
    "sampling": (True, True),
    "custom_op": (True, True),
    "fp16_range": (True, False),
    "ort_kernel": (False, True),
    "user": (True, True),
    "sensitivity": (False, True),
}

LAYOUT_OPS = {
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
    "Expand",
    "Cast",
    "Gather",
    "Slice",
    "Split",
    "Concat",
    "Dropout",
}
LOGIT_OPS = LAYOUT_OPS | {"Mul", "Div", "Add", "Sub", "ReduceMax", "Where", "Clip", "Neg"}  # scale, mask, max-shift
PROB_OPS = LAYOUT_OPS | {"Mul", "Div", "Add", "Sub", "ReduceSum", "ReduceMean", "Sqrt", "Pow", "Reciprocal"}
MATMUL_OPS = {"MatMul", "Einsum"}
NORM_OPS = {
    "LayerNormalization",
    "RMSNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "LpNormalization",
    "MeanVarianceNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
}
REDUCE_OPS = {"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp"}
GLOBAL_POOL_OPS = {"GlobalAveragePool", "GlobalLpPool"}
GATE_OPS = {"Sigmoid", "HardSigmoid"}
SAMPLING_OPS = {"GridSample", "AffineGrid", "AffineGridSample"}
WALK_DEPTH = 8


@dataclass
class Decision:
    """Why one node stays in float: its op type, every category that matched (keys of ``CATEGORIES``, the
    first is the headline) and one "category: explanation" reason per rule."""

    node: str
    op: str
    categories: list[str] = field(default_factory=list)  # the first one found is the headline
    reasons: list[str] = field(default_factory=list)

    @property
    def keep_fp32(self) -> bool:
        """True when a category keeps the node FP32 in an FP16 graph."""
        return any(CATEGORIES[c][0] for c in self.categories)

    @property
    def exclude_int8(self) -> bool:
        """True when a category leaves the node unquantized in an INT8 graph."""
        return any(CATEGORIES[c][1] for c in self.categories)


@dataclass
class Plan:
    """Per-node decisions; a node found by several rules keeps every category and reason."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    int8_allowed: set[str] = field(default_factory=set)  # categories quantized anyway (the user's choice)
    # Convolutions timed for ONNX Runtime (``ort_slow_kernels``): node → fp32 ms, int8 ms and the choice.
    kernel_timings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, node: Any, category: str, reason: str) -> None:
        """Record that ``node`` (an ONNX NodeProto, named) matched ``category`` (a ``CATEGORIES`` key) for
        ``reason``; repeated categories and reasons are kept once."""
        d = self.decisions.setdefault(node.name, Decision(node.name, node.op_type))
        if category not in d.categories:
            d.categories.append(category)
        if reason not in d.reasons:
            d.reasons.append(reason)

    def keep_fp32(self) -> list[str]:
        """Names of the nodes an FP16 conversion must keep FP32, in the order they were decided."""
        return [n for n, d in self.decisions.items() if d.keep_fp32]

    def int8_excluded(self) -> list[str]:
        """Names of the nodes INT8 quantization must leave float (categories in ``int8_allowed`` not counted)."""
        return list(self.entries(int8=True))

    def entries(self, int8: bool) -> dict[str, dict[str, Any]]:
        """JSON-able: node → op, category, reason, for the nodes this precision keeps in float."""
        which = 1 if int8 else 0
        out = {}
        for n, d in self.decisions.items():
            cats = [c for c in d.categories if CATEGORIES[c][which] and not (int8 and c in self.int8_allowed)]
            if cats:
                reasons = [r for r in d.reasons if r.split(":", 1)[0] in cats]
                out[n] = {"op": d.op, "category": cats[0], "reason": "; ".join(reasons)}
        return out


def detect(index: GraphIndex, reduce_extent: int = 1024, user_exclude: Iterable[str] = ()) -> Plan:
    """The structural plan of a graph (no data needed).

    Args:
        index: the graph (named nodes), with shapes inferred at the calibration input shape.
        reduce_extent: reductions over at least this many elements are kept FP32 (``large_reduction``).
        user_exclude: node names the user keeps in float (category ``user``).

    Raises:
        UserError: ``user_exclude`` names a node the graph does not have.
    """
    plan = Plan()
    for node in index.model.graph.node:
        op = node.op_type
        if node.domain == "attnx":
            cat = "double_norm" if op == "DoubleNorm" else "sampling" if op in SAMPLING_OPS else "custom_op"
            plan.add(node, cat, f"{cat}: attnx::{op} custom node (its kernels compute in FP32, inputs stay float)")
            if op in SAMPLING_OPS:
                _grid_producers(index, node, plan)
            continue
        if op in ("Softmax", "LogSoftmax"):
            plan.add(
                node, "softmax", f"softmax: {op} (FP16 exp-sums overflow, INT8 would round small probabilities to 0)"
            )
            _attention_core(index, node, plan)
        elif op == "Attention" and node.domain in ("", "ai.onnx"):
            _fused_attention(index, node, plan)
        elif op in NORM_OPS:
            stash = " and its stash_type statistics" if op in ("LayerNormalization", "RMSNormalization") else ""
            plan.add(node, "normalization", f"normalization: {op} (mean/variance of reduced-precision values; "
                     f"the node{stash} stay FP32)")  # fmt: skip
            _norm_inputs(index, node, plan)
        elif op == "ReduceMean":
            if _decomposed_norm(index, node, plan):
                _norm_inputs(index, node, plan)
        elif op in GATE_OPS:
            _sigmoid_gate(index, node, plan)
        elif op in SAMPLING_OPS:
            plan.add(
                node,
                "sampling",
                f"sampling: {op} (FP16 coordinates are off by pixels at large sizes, "
                "INT8 cannot hold sub-pixel offsets)",
            )
            _grid_producers(index, node, plan)
    for node in index.model.graph.node:
        if node.op_type in REDUCE_OPS or node.op_type in GLOBAL_POOL_OPS:
            extent = reduced_extent(index, node)
            if extent is None:
                plan.add(node, "large_reduction", "large_reduction: reduces over an extent unknown at plan time")
            elif extent >= reduce_extent:
                plan.add(
                    node,
                    "large_reduction",
                    f"large_reduction: sums {extent} elements (≥ {reduce_extent}: FP16 running sums lose the low bits)",
                )
    names = set(index.nodes)
    for name in user_exclude:
        if name not in names:
            import difflib

            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"calibration exclude names node '{name}', which the model does not have{hint}")
        plan.add(index.nodes[name], "user", "user: listed in the calibration 'exclude' option")
    return plan


def softmax_precision_attr(index: GraphIndex) -> bool:
    """Whether the model's opset defines ``Attention.softmax_precision`` (the precision of the softmax inside)."""
    import onnx

    opset = next((o.version for o in index.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    try:
        return "softmax_precision" in onnx.defs.get_schema("Attention", opset).attributes
    except onnx.defs.SchemaError:
        return False


def _fused_attention(index: GraphIndex, node: Any, plan: Plan) -> None:
    """One ONNX Attention node (QKᵀ, scale, mask, softmax and ·V inside): its probabilities never leave it."""
    int8 = "INT8 leaves it float (its probabilities never quantized; Q/DQ only on the projections around it)"
    if softmax_precision_attr(index):
        plan.add(node, "fused_attention", "fused_attention: Attention node; FP16 computes it in FP16 with "
                 f"softmax_precision=FLOAT (the softmax inside stays FP32); {int8}")  # fmt: skip
    else:  # no attribute to mark the softmax's precision: the whole node stays FP32
        plan.add(node, "softmax", f"softmax: Attention node without softmax_precision (FP32 under FP16); {int8}")


def _attention_core(index: GraphIndex, softmax: Any, plan: Plan) -> None:
    """Pin the MatMuls around a Softmax and the nodes on the paths between them."""
    # upstream: logits ← (scale | mask | max-shift | layout)* ← MatMul
    for path in _paths(index, softmax, upstream=True, through=LOGIT_OPS):
        *between, mm = path
        plan.add(mm, "attention_matmul", f"attention_matmul: {mm.op_type} producing the logits of {softmax.name}")
        for n in between:
            plan.add(n, "attention_path", f"attention_path: between {mm.name} and {softmax.name}")
    # downstream: probabilities → (layout | double-norm | norm | weighting)* → MatMul, or → reduction
    out = softmax.output[0]
    for consumer in index.consumers.get(out, []):
        if consumer.op_type == "ReduceSum":
            for div in index.children(consumer) + [c for a in index.children(consumer) for c in index.children(a)]:
                if div.op_type == "Div" and div.input[0] == out:
                    plan.add(consumer, "double_norm", f"double_norm: {softmax.name} → ReduceSum → Div")
                    plan.add(div, "double_norm", f"double_norm: {softmax.name} → ReduceSum → Div")
                    for mid in index.parents(div):
                        if mid is not consumer and mid.op_type == "Add" and consumer in index.parents(mid):
                            plan.add(mid, "double_norm", f"double_norm: {softmax.name} → ReduceSum → Add → Div")
    for path in _paths(index, softmax, upstream=False, through=PROB_OPS):
        *between, end = path
        if end.op_type in MATMUL_OPS:
            plan.add(
                end,
                "attention_matmul",
                f"attention_matmul: {end.op_type} consuming the probabilities of {softmax.name}",
            )
        elif end.op_type == "ReduceSum":
            plan.add(end, "attention_path", f"attention_path: sums the {softmax.name}-weighted values")
        else:
            plan.add(end, "attention_path", f"attention_path: weights a tensor by the probabilities of {softmax.name}")
        for n in between:
            plan.add(n, "attention_path", f"attention_path: between {softmax.name} and {end.name}")


def _paths(index: GraphIndex, start: Any, upstream: bool, through: set[str]) -> list[list[Any]]:
    """Paths from ``start`` (exclusive) through ``through`` ops to the node that ends each (inclusive).

    Upstream, a path ends at a MatMul/Einsum (the logits) and may pass one 1×1 Conv. Downstream it ends
    where the probabilities meet another tensor: a MatMul/Einsum (attention · V), or a Mul weighting
    another tensor, with the ReduceSum that follows it if any (the separable attention of MobileViTv2,
    the branch weights of PSA).
    """
    found: list[list[Any]] = []
    seen: set[str] = set()
    on_path = {start.output[0]}

    def walk(node: Any, path: list[Any], depth: int) -> None:
        if depth > WALK_DEPTH:
            return
        for n in index.parents(node) if upstream else index.children(node):
            if n.op_type in MATMUL_OPS:
                found.append([*path, n])
                continue
            # one 1×1 Conv may mix heads on the logits (ResT's attention transform)
            head_mix = upstream and _is_pointwise_conv(n) and not any(p.op_type == "Conv" for p in path)
            if n.name in seen or (n.op_type not in through and not head_mix):
                continue
            seen.add(n.name)
            if not upstream and n.op_type == "Mul" and not all(t in on_path for t in n.input):
                sums = [k for k in index.children(n) if k.op_type == "ReduceSum"]
                found.append([*path, n, *sums[:1]] if sums else [*path, n])
                continue
            on_path.update(n.output)
            walk(n, [*path, n], depth + 1)

    walk(start, [], 0)
    return found


def _is_pointwise_conv(node: Any) -> bool:
    if node.op_type != "Conv":
        return False
    kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
    return kernel is not None and all(k == 1 for k in kernel)


def _norm_inputs(index: GraphIndex, norm: Any, plan: Plan) -> None:
    """The elementwise node (through layout nodes) that produces a normalisation's input: the residual stream."""
    node = index.producer.get(norm.input[0])
    depth = 0
    while node is not None and node.op_type in LAYOUT_OPS - {"Concat"} and depth < 4:
        node = index.producer.get(node.input[0])
        depth += 1
    if node is not None and node.op_type in ("Add", "Concat", "Mul", "Sub"):
        plan.add(
            node,
            "norm_input",
            f"norm_input: feeds {norm.name} (residual stream with outlier channels, "
            "one int8 scale would crush the others)",
        )


def _decomposed_norm(index: GraphIndex, mean: Any, plan: Plan) -> bool:
    """ReduceMean(x) → Sub(x, μ) → Pow(·,2)|Mul(d,d) → ReduceMean → [Add ε] → Sqrt → Div|Reciprocal→Mul."""
    x = mean.input[0]
    for sub in index.children(mean):
        if sub.op_type != "Sub" or x not in sub.input:
            continue
        d = sub.output[0]
        members = [mean, sub]
        for sq in index.consumers.get(d, []):
            if sq.op_type == "Pow" or (sq.op_type == "Mul" and list(sq.input) == [d, d]):
                var = next((n for n in index.children(sq) if n.op_type == "ReduceMean"), None)
                if var is None:
                    continue
                chain = [sq, var]
                node = var
                for _ in range(3):  # [Add ε] → Sqrt → (Div | Reciprocal → Mul)
                    kids = index.children(node)
                    if len(kids) != 1:
                        break
                    node = kids[0]
                    if node.op_type not in ("Add", "Sqrt", "Div", "Reciprocal", "Mul"):
                        break
                    chain.append(node)
                    if node.op_type in ("Div", "Mul") and d in node.input:
                        break
                    if node.op_type == "Reciprocal":
                        mul = [k for k in index.children(node) if k.op_type == "Mul" and d in k.input]
                        chain.extend(mul)
                        break
                if any(n.op_type == "Sqrt" for n in chain):
                    members.extend(chain)
        if len(members) > 2:
            for n in members:
                plan.add(n, "normalization", f"normalization: decomposed mean/variance starting at {mean.name}")
            return True
    return False


def _sigmoid_gate(index: GraphIndex, sig: Any, plan: Plan) -> None:
    """A Sigmoid whose output (through layout nodes or `1 + g`) multiplies another tensor."""
    x = sig.input[0]
    frontier: list[tuple[Any, list[Any]]] = [(sig, [])]
    gates: list[tuple[Any, list[Any]]] = []
    while frontier:
        node, path = frontier.pop()
        if len(path) > WALK_DEPTH:
            continue
        for kid in index.children(node):
            if kid.op_type == "Mul":
                other = [t for t in kid.input if t != node.output[0]]
                if other and other[0] != x:  # Mul(x, sigmoid(x)) is SiLU, an activation
                    gates.append((kid, path))
            elif kid.op_type in (LAYOUT_OPS - {"Concat"}) or (
                kid.op_type == "Add" and any(index.is_const(t) for t in kid.input)
            ):
                frontier.append((kid, [*path, kid]))
    if not gates:
        return
    plan.add(
        sig,
        "sigmoid_gate",
        f"sigmoid_gate: {sig.op_type} gate (FP16 rounds gates near 1, INT8 would quantize the gate map)",
    )
    for mul, path in gates:
        for n in [*path, mul]:
            plan.add(n, "sigmoid_gate", f"sigmoid_gate: applies the gate {sig.name}")


def _grid_producers(index: GraphIndex, sampler: Any, plan: Plan) -> None:
    """The MatMul/Gemm that computes a sampler's grid (an affine grid is base_grid @ θᵀ), and the path to it."""
    if len(sampler.input) < 2:
        return
    start = index.producer.get(sampler.input[1])
    frontier: list[tuple[Any, list[Any]]] = [(start, [])] if start is not None else []
    while frontier:
        node, path = frontier.pop()
        if node.op_type in MATMUL_OPS | {"Gemm"}:
            for n in [*path, node]:
                plan.add(n, "sampling", f"sampling: computes the sampling grid of {sampler.name}")
            continue
        if node.op_type in LOGIT_OPS and len(path) < WALK_DEPTH:
            frontier.extend((p, [*path, node]) for p in index.parents(node))


def reduced_extent(index: GraphIndex, node: Any) -> int | None:
    """How many elements each output value of a reduction sums over (None: unknown)."""
    shape = index.shapes.get(node.input[0])
    if not shape:
        return None
    rank = len(shape)
    axes: list[int] | None
    if node.op_type in GLOBAL_POOL_OPS:
        axes = list(range(2, rank))
    else:
        axes = None
        for attr in node.attribute:
            if attr.name == "axes":
                axes = list(attr.ints)
        if axes is None and len(node.input) > 1 and node.input[1]:
            if node.input[1] not in index.constants:
                return None
            axes = [int(a) for a in index.constants[node.input[1]].ravel()]
        if not axes:
            noop = any(a.name == "noop_with_empty_axes" and a.i for a in node.attribute)
            if noop:
                return 1
            axes = list(range(rank))
    extent = 1
    for a in axes:
        dim = shape[a % rank]
        if dim is None:
            return None  # only the reduced axes need to be known
        extent *= int(dim)
    return extent


def ort_slow_kernels(index: GraphIndex, plan: Plan, measure: bool = True) -> list[str]:
    """INT8 for ONNX Runtime's CPU: leave float the convolutions whose int8 kernel is not faster than FP32.

    Dense convolutions always gain from int8. Grouped (not depthwise) and dilated ones may lose, by up to
    5× (see ``attnx.calibration.kernel_timing``): with ``measure``, each is timed alone at its real shape in both
    forms and stays float unless int8 is clearly faster; without (or where its shapes are unknown), every
    such convolution stays float, the conservative rule.
    """
    found = []
    for node in index.model.graph.node:
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx"):
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        dilations = next((list(a.ints) for a in node.attribute if a.name == "dilations"), [1])
        shape = index.shapes.get(node.input[0])
        channels = shape[1] if shape and len(shape) > 1 else None
        if group > 1 and channels is not None and group != channels:
            what = f"grouped Conv (group {group} of {channels} channels)"
        elif any(d > 1 for d in dilations):
            what = f"dilated Conv (dilations {dilations})"
        else:
            continue
        timed = _conv_times(index, node) if measure else None
        if timed is None:
            why = f"{what}: ONNX Runtime's int8 kernel for it can be several times slower than FP32"
        else:
            fp32_ms, int8_ms = timed
            faster = fp32_ms >= kernel_timing.MIN_SPEEDUP * int8_ms
            plan.kernel_timings[node.name] = {"what": what, "fp32_ms": round(fp32_ms, 4), "int8_ms": round(int8_ms, 4),
                                              "choice": "int8" if faster else "float"}  # fmt: skip
            if faster:
                continue
            why = f"{what}: measured int8 {int8_ms:.3g} ms vs FP32 {fp32_ms:.3g} ms in ONNX Runtime"
        plan.add(node, "ort_kernel", f"ort_kernel: {why}")
        found.append(node.name)
    return found


def _conv_times(index: GraphIndex, node: Any) -> tuple[float, float] | None:
    """(fp32 ms, int8 ms) of ``node`` alone, or None where its shapes are not all known."""
    x = index.shapes.get(node.input[0])
    w = index.shapes.get(node.input[1]) if node.input[1] in index.constants else None
    if not x or not w or any(d is None for d in x[1:]) or any(d is None for d in w):
        return None
    try:
        return kernel_timing.conv_times(node, [1, *x[1:]], list(w), len(node.input) > 2 and bool(node.input[2]))  # type: ignore[list-item]
    except Exception:  # noqa: BLE001  timing is an optimisation: any failure falls back to the rule
        return None


def pin_fp16_range(index: GraphIndex, plan: Plan, amax: dict[str, float], limit: float) -> list[str]:
    """Keep FP32 around every tensor whose observed |x| exceeds ``limit``: its producer and its consumers.

    A Cast to FP16 of such a tensor overflows, so pinning only its producer would not help.
    """
    big = sorted((t for t, v in amax.items() if v > limit), key=lambda t: -amax[t])
    for t in big:
        reason = f"fp16_range: |{t}| reaches {amax[t]:.4g} on calibration data (> {limit:g}, FP16 max 65504)"
        producer = index.producer.get(t)
        for n in ([producer] if producer is not None else []) + index.consumers.get(t, []):
            plan.add(n, "fp16_range", reason)
    return big


# How a reduction's magnitude grows with the number of elements it reduces: linearly for sums, as the square root
# for an L2 norm. Means, maxima and minima keep their magnitude (their accumulators are a large_reduction matter).
SUM_GROWTH = {"ReduceSum": 1.0, "ReduceSumSquare": 1.0, "ReduceL1": 1.0, "ReduceL2": 0.5}


def pin_for_largest_shape(index: GraphIndex, largest: GraphIndex, plan: Plan, amax: dict[str, float], limit: float,
                          reduce_extent: int, label: str, unbounded: bool) -> list[dict[str, Any]]:  # fmt: skip
    """FP16 decisions at the largest input the bundle allows, from a calibration at a smaller one.

    ``index`` has the calibration shapes, ``largest`` the largest input's (``label``). A reduction whose extent
    grows with the input (a sum over H·W) is judged at the largest extent: ``large_reduction`` when that extent
    reaches ``reduce_extent``, and ``fp16_range`` (producer and consumers, as :func:`pin_fp16_range`) when its
    calibrated |x| scaled by the growth of its extent (sums: the ratio of extents; L2: its square root) exceeds
    ``limit``. Scaling is used rather than calibrating at the largest size because that size may be unbounded or
    too large to calibrate at, and a sum's magnitude grows with its extent. ``unbounded`` (dynamic H/W, no largest
    input given): every growing reduction stays FP32 and every growing sum is pinned, whatever its magnitude here.
    """
    decided: list[dict[str, Any]] = []
    for node in index.model.graph.node:
        if node.op_type not in REDUCE_OPS and node.op_type not in GLOBAL_POOL_OPS:
            continue
        small, big = reduced_extent(index, node), reduced_extent(largest, node)
        if not small or not big or big <= small:
            continue
        record: dict[str, Any] = {"node": node.name, "op": node.op_type, "extent": small, "largest_extent": big}
        if unbounded or big >= reduce_extent:
            plan.add(node, "large_reduction", f"large_reduction: reduces {small} elements at the calibration size and "
                     + ("more at larger inputs (the bundle accepts any H×W)" if unbounded else
                        f"{big} at the largest input {label} (≥ {reduce_extent})"))  # fmt: skip
        growth = SUM_GROWTH.get(node.op_type)
        out = node.output[0]
        if growth is not None:
            seen = amax.get(out)
            grown = None if seen is None else seen * (big / small) ** growth
            record.update(amax=seen, largest_amax=grown)
            if unbounded or (grown is not None and grown > limit):
                reason = (f"fp16_range: |{out}| grows with the sum's extent ({small} elements at the calibration size"
                          + ("; the bundle accepts any H×W, so no bound holds)" if unbounded else
                             f", {big} at {label}: {seen:.4g} calibrated → ~{grown:.4g} > {limit:g})"))  # fmt: skip
                for n in [node, *index.consumers.get(out, [])]:
                    plan.add(n, "fp16_range", reason)
                record["pinned"] = True
        decided.append(record)
    return decided
