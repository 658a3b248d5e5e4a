"""FP16 mixed precision: onnxconverter-common does the conversion, attnx's plan says what stays FP32.

``onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True, node_block_list=plan)``
does the mechanics. Around it attnx works around three known problems of that converter (1.16):

* stale or duplicated ``value_info`` entries (left by exporters and simplifiers) make it type a
  blocked node's output wrongly (ORT: "Type (tensor(float)) of output arg ... does not match"): the
  value_info is cleared first and re-inferred;
* a graph output produced by a blocked node makes its cast clean-up raise ("The downstream node of the
  second cast node should be graph output"): such outputs get an Identity in between;
* an initializer shared by a blocked and a converted node is left FP32 for both: it is duplicated;
* its clean-up misses FP32→FP16→FP32 round trips with several consumers, so two adjacent FP32 nodes
  would still exchange an FP16-rounded tensor: attnx removes every such round trip afterwards.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from attnx.calibration.graph import drop_dead_nodes, finish_model, infer_filled, topo_sort
from attnx.core.errors import UserError

if TYPE_CHECKING:
    import onnx

CONVERTER = "onnxconverter-common"
FLOAT, FLOAT16 = 1, 10


def converter_version() -> str:
    """The FP16 converter for reports: "onnxconverter-common 1.x.y", or just the name if not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{CONVERTER} {version('onnxconverter-common')}"
    except PackageNotFoundError:
        return CONVERTER


def op_block_list() -> set[str]:
    """Op types never converted: the converter's own list (Resize, Range, TopK, ...) plus attnx's samplers."""
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST  # type: ignore[import-untyped]

    return set(DEFAULT_OP_BLOCK_LIST)


def to_fp16(model: onnx.ModelProto, keep_fp32: list[str]) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` computing in FP16 except the ``keep_fp32`` nodes; inputs and outputs stay FP32.

    Converted by onnxconverter-common's ``convert_float_to_float16`` (``keep_io_types``, ``node_block_list``).
    Returns (the FP16 model, notes on what was adjusted).

    Raises:
        UserError: onnxconverter-common is not installed.
    """
    import onnx
    from onnx import helper

    try:
        from onnxconverter_common.float16 import convert_float_to_float16  # type: ignore[import-untyped]
    except ImportError:
        raise UserError("--precision fp16 needs onnxconverter-common: pip install onnxconverter-common") from None

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    blocked_ops = op_block_list()
    block = set(keep_fp32) | {n.name for n in m.graph.node if n.domain not in ("", "ai.onnx")}
    notes: list[str] = []

    def is_blocked(node: onnx.NodeProto) -> bool:
        return node.name in block or node.op_type in blocked_ops

    producers = {t: n for n in m.graph.node for t in n.output}
    for out in m.graph.output:
        node = producers.get(out.name)
        if node is not None and is_blocked(node):
            inner = f"{out.name}__attnx_fp32"
            node.output[list(node.output).index(out.name)] = inner
            m.graph.node.append(helper.make_node("Identity", [inner], [out.name], name=f"{out.name}__attnx_out"))

    inits = {i.name: i for i in m.graph.initializer}
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in m.graph.node:
        for t in node.input:
            if t in inits:
                users.setdefault(t, []).append(node)
    for name, nodes in users.items():
        kinds = {is_blocked(n) for n in nodes}
        if len(kinds) == 2 and inits[name].data_type == FLOAT:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[name])
            copy.name = f"{name}__attnx_fp32"
            m.graph.initializer.append(copy)
            for n in nodes:
                if is_blocked(n):
                    n.input[:] = [copy.name if t == name else t for t in n.input]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = convert_float_to_float16(
            m, keep_io_types=True, node_block_list=sorted(block), op_block_list=sorted(blocked_ops)
        )
    clamped = sum("will be truncated" in str(w.message) for w in caught)
    if clamped:
        notes.append(f"the converter clamped {clamped} group(s) of weights below 1e-7 (or above 1e4) in magnitude")
    removed = remove_round_trips(out)
    if removed:
        notes.append(f"removed {removed} FP32→FP16→FP32 cast round trip(s) left by the converter")
    mixed = unify_float_inputs(out)
    if mixed:
        notes.append(f"cast {mixed} FP32 input(s) of FP16 nodes (shape arithmetic: Shape → Cast → Div) to FP16")
    topo_sort(out)
    del out.graph.value_info[:]
    return finish_model(out, model), notes


def mark_softmax_precision(model: onnx.ModelProto, reasons: dict[str, str]) -> dict[str, dict[str, str]]:
    """Set ``softmax_precision`` = FLOAT on the named Attention nodes that now compute in FP16 (in place).

    Returns, per node, what was marked and why (the plan's entry). A node left FP32 needs no mark.
    """
    from onnx import helper

    types = _elem_types(model)
    marked: dict[str, dict[str, str]] = {}
    for node in model.graph.node:
        if node.name not in reasons or node.op_type != "Attention" or types.get(node.input[0]) != FLOAT16:
            continue
        kept = [a for a in node.attribute if a.name != "softmax_precision"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("softmax_precision", FLOAT)])
        marked[node.name] = {"op": "Attention", "computes": "fp16", "softmax_precision": "FLOAT",
                             "reason": reasons[node.name]}  # fmt: skip
    return marked


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    import onnx

    fresh = onnx.ModelProto()
    fresh.CopyFrom(model)
    del fresh.graph.value_info[:]

    g = infer_filled(fresh).graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


# Ops whose float inputs share one type parameter: an FP32 input beside an FP16 one is an invalid graph.
SAME_TYPE_OPS = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Concat", "MatMul",
                 "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Mod", "PRelu", "Gemm",
                 "Conv", "ConvTranspose", "Attention"}  # fmt: skip


def unify_float_inputs(model: onnx.ModelProto) -> int:
    """Cast every FP32 input of a node that mixes FP32 and FP16 inputs under one type parameter to the node's
    own type (FP16 where it was converted). The converter leaves a value computed from the input's shape
    (Shape → Gather → Mul → Cast(to FP32)) FP32 beside FP16 arithmetic: the pixel count of a dynamic H×W."""
    import onnx
    from onnx import helper

    fresh = onnx.ModelProto()
    fresh.CopyFrom(model)
    del fresh.graph.value_info[:]  # the converter's value_info can be stale: infer the types afresh

    g = infer_filled(fresh).graph  # onnx infers no type for GroupNormalization-21 (dynamo's opset ≥ 21 exports)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    types.update({i.name: i.data_type for i in g.initializer})
    for node in g.node:  # Constant outputs are not always in value_info
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
    added = []
    count = 0
    for node in model.graph.node:
        if node.op_type not in SAME_TYPE_OPS:
            continue
        first = 1 if node.op_type == "Where" else 0
        floats = {types.get(t) for t in node.input[first:] if t} & {FLOAT, FLOAT16}
        if floats != {FLOAT, FLOAT16}:
            continue
        target = types.get(node.output[0])
        if target not in (FLOAT, FLOAT16):
            target = FLOAT16
        for i, t in enumerate(node.input):
            if i < first or not t or types.get(t) not in (FLOAT, FLOAT16) or types.get(t) == target:
                continue
            cast_out = f"{t}__attnx_as_{'fp16' if target == FLOAT16 else 'fp32'}_{count}"
            added.append(helper.make_node("Cast", [t], [cast_out], to=target, name=f"{cast_out}_cast"))
            node.input[i] = cast_out
            count += 1
    model.graph.node.extend(added)
    return count


def remove_round_trips(model: onnx.ModelProto) -> int:
    """Cast(→FP16) [→ Identity]* → Cast(→FP32) on an FP32 tensor: read the FP32 tensor directly."""
    from onnx import helper

    graph = model.graph
    producer = {t: n for n in graph.node for t in n.output}
    float_tensors = _float32_tensors(model)
    outputs = {o.name for o in graph.output}
    removed = 0
    rewired: dict[str, str] = {}
    replacements: dict[int, onnx.NodeProto] = {}
    for node in graph.node:
        if node.op_type != "Cast" or _cast_to(node) != FLOAT:
            continue
        src = producer.get(node.input[0])
        while src is not None and src.op_type == "Identity":
            src = producer.get(src.input[0])
        if src is None or src.op_type != "Cast" or _cast_to(src) != FLOAT16 or src.input[0] not in float_tensors:
            continue
        original = src.input[0]
        if node.output[0] in outputs:
            replacements[id(node)] = helper.make_node("Identity", [original], [node.output[0]], name=node.name)
        else:
            rewired[node.output[0]] = original
        removed += 1
    if not removed:
        return 0
    new_nodes = []
    for node in graph.node:
        if id(node) in replacements:
            new_nodes.append(replacements[id(node)])
            continue
        node.input[:] = [rewired.get(t, t) for t in node.input]
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    drop_dead_nodes(model)  # the Casts left unused by the rewiring
    return removed


def _cast_to(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "to"), -1)


def _float32_tensors(model: onnx.ModelProto) -> set[str]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    names = {
        vi.name for vi in list(g.input) + list(g.value_info) + list(g.output) if vi.type.tensor_type.elem_type == FLOAT
    }
    names.update(i.name for i in g.initializer if i.data_type == FLOAT)
    return names
