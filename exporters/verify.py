"""A dynamic axis is a claim: check it.

After export, PyTorch and ONNX Runtime run the graph at the export shape and at one other shape that moves
every dynamic axis (batch; height and width non-square and not a multiple of the export size, where the
model accepts such a shape). A graph that fails or computes other numbers there is refused, naming the node
whose size stayed fixed at the export shape: the model is exported again at the other shape, and the first
node whose constant input differs between the two exports holds a size baked from the example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from attnx.exporters.export import ExportOptions


def fmt_shape(shape: tuple[int, ...] | list[int]) -> str:
    """A shape as the CLI writes it: ``(2, 3, 64, 64)`` -> ``"2x3x64x64"``."""
    return "x".join(map(str, shape))


def _hw_candidates(h: int, w: int) -> list[tuple[int, int]]:
    """Other (H, W): non-square, not a multiple of the export size, on a growing grid (1, 2, 4, ... 32)."""
    out: list[tuple[int, int]] = []
    for g in (1, 2, 4, 8, 16, 32):
        h2 = math.ceil(1.5 * h / g) * g
        w2 = math.ceil(1.25 * w / g) * g
        for _ in range(4):
            if w2 == h2 or w2 % w == 0 or w2 == w:
                w2 += g
        for _ in range(4):
            if h2 % h == 0 or h2 == h or h2 == w2:
                h2 += g
        if (h2, w2) not in out:
            out.append((h2, w2))
    for mh, mw in ((2, 3), (3, 2)):  # multiples, where the model takes nothing else
        if (mh * h, mw * w) not in out:
            out.append((mh * h, mw * w))
    return out


def _accepts(model: nn.Module, shape: tuple[int, ...]) -> bool:
    import torch

    try:
        with torch.no_grad():
            model(torch.zeros(*shape))
        return True
    except Exception:  # any refusal: the model does not take this shape
        return False


def check_shapes(model: nn.Module, shape: tuple[int, ...], dynamic_batch: bool,
                 dynamic_hw: bool) -> list[tuple[int, ...]]:  # fmt: skip
    """The export shape, then one shape moving every dynamic axis (if the model accepts one)."""
    shapes = [tuple(shape)]
    n = shape[0]
    batch = (2 if n != 2 else 3) if dynamic_batch else n
    if dynamic_hw and len(shape) == 4:
        for h2, w2 in _hw_candidates(shape[2], shape[3]):
            other = (batch, shape[1], h2, w2)
            if _accepts(model, other):
                shapes.append(other)
                return shapes
    if dynamic_batch:
        shapes.append((batch, *shape[1:]))
    return shapes


@dataclass
class ShapeCheck:
    """PyTorch vs ONNX Runtime at one full input shape (N, C, H, W): passed, or why not and where."""

    shape: tuple[int, ...]
    passed: bool
    detail: str = ""  # why it failed: ONNX Runtime's error, or the output that differs
    node: str = ""  # the node ONNX Runtime stopped at, if it failed


@dataclass
class Verification:
    """The shape checks of one export (:func:`run_checks`), in the order they ran."""

    checks: list[ShapeCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every shape checked passed."""
        return all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> ShapeCheck | None:
        """The first failed check, or None."""
        return next((c for c in self.checks if not c.passed), None)

    def shapes_text(self) -> str:
        """The shapes checked, as ``"1x3x64x64, 3x3x40x56"``."""
        return ", ".join(fmt_shape(c.shape) for c in self.checks)


def run_checks(model: nn.Module, onnx_path: Path, shapes: list[tuple[int, ...]]) -> Verification:
    """PyTorch vs ONNX Runtime (fp32 policy) at each shape; ORT failures are recorded, not raised."""
    import torch

    from attnx.core.library_errors import ort_message
    from attnx.deploy.backends.onnxrt.session import make_session
    from attnx.deploy.backends.torch.runner import flatten_outputs
    from attnx.deploy.parity.compare import compare_output, policy

    tol = policy("fp32")
    session = make_session(Path(onnx_path))
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    result = Verification()
    for i, shape in enumerate(shapes):
        x = np.random.default_rng(100 + i).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            ref = [t.detach().numpy() for t in flatten_outputs(model(torch.from_numpy(x)))]
        try:
            outs = session.run(names, {input_name: x})
        except Exception as exc:  # ONNX Runtime's Fail / InvalidArgument / RuntimeException
            import re

            node = re.search(r"while running \w+ node\. Name:'([^']*)'", str(exc))
            result.checks.append(ShapeCheck(shape, False, ort_message(exc, fix="-").removesuffix("; -"),
                                            node.group(1) if node else ""))  # fmt: skip
            continue
        bad = ""
        for name, r, c in zip(names, ref, outs):
            comp = compare_output(name, r, c, tol)
            if not comp.passed:
                cos = f"cosine {comp.cosine:.4f}, " if math.isfinite(comp.cosine) and comp.cosine >= 0 else ""
                bad = f"ONNX Runtime computes other numbers than PyTorch at output '{name}' ({cos}{comp.failures[0]})"
                break
        result.checks.append(ShapeCheck(shape, not bad, bad))
    return result


# --- which node keeps a fixed size -------------------------------------------------------------------------


def _constants(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    return consts


def module_of(node: onnx.NodeProto) -> str | None:
    """The PyTorch module path that emitted ``node``: from a TorchScript name ('/block/attn/Reshape_3')
    or the dynamo exporter's name-scope metadata."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            import ast

            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                scopes = []
            if scopes:
                return scopes[-1]
    if node.name.startswith("/"):
        parts = [p for p in node.name.split("/")[1:-1] if p]
        return ".".join(parts) or None
    return None


def _describe_const(a: np.ndarray) -> str:
    if a.size <= 8:
        return "[" + ",".join(str(v) for v in a.reshape(-1).tolist()) + "]"
    return f"a {fmt_shape(a.shape)} constant"


@dataclass
class BakedNode:
    """A node whose constant input holds a size baked from the export shape.

    ``module`` is the PyTorch module that made it (None if unknown); ``at_export`` and ``at_other`` describe the
    constant in the two exports (``at_other`` empty when only one export was inspected).
    """

    name: str
    op: str
    module: str | None
    at_export: str
    at_other: str


def find_baked_node(a: onnx.ModelProto, b: onnx.ModelProto) -> BakedNode | None:
    """The first node (graph order of ``a``) whose constant input differs between two exports of one model
    at two shapes: a size (or a size-dependent table) taken from the example input."""
    ca, cb = _constants(a), _constants(b)

    def keyed(proto: onnx.ModelProto, consts: dict) -> dict[tuple, onnx.NodeProto]:
        # a node's place: its module, op, and what feeds each input; the k-th such node pairs with the k-th
        producers = {t: n.op_type for n in proto.graph.node for t in n.output}
        inputs = {i.name for i in proto.graph.input}
        seen: dict[tuple, int] = {}
        out: dict[tuple, onnx.NodeProto] = {}
        for node in proto.graph.node:
            if node.op_type == "Constant":
                continue
            feeds = tuple("const" if t in consts else "input" if t in inputs else producers.get(t, "?")
                          for t in node.input)  # fmt: skip
            key = (module_of(node), node.op_type, feeds)
            seen[key] = seen.get(key, -1) + 1
            out[(*key, seen[key])] = node
        return out

    kb = keyed(b, cb)
    for key, node in keyed(a, ca).items():
        other = kb.get(key)
        if other is None:
            continue
        for ta, tb in zip(node.input, other.input):
            va, vb = ca.get(ta), cb.get(tb)
            if va is None or vb is None:
                continue
            if va.shape != vb.shape or not np.array_equal(va, vb):
                return BakedNode(node.name or node.op_type, node.op_type, module_of(node), _describe_const(va),
                                 _describe_const(vb))  # fmt: skip
    return None


SIZE_INPUTS = {"Reshape": 1, "Expand": 1, "Tile": 1, "Resize": 3, "ConstantOfShape": 0, "Slice": 2}


def fixed_node(proto: onnx.ModelProto, name: str) -> BakedNode | None:
    """The node ONNX Runtime stopped at, when the size it asks for is a constant of the graph."""
    consts = _constants(proto)
    for node in proto.graph.node:
        if node.name == name or name in node.output:
            idx = SIZE_INPUTS.get(node.op_type)
            if idx is not None and idx < len(node.input) and node.input[idx] in consts:
                return BakedNode(node.name or name, node.op_type, module_of(node),
                                 _describe_const(consts[node.input[idx]]), "")  # fmt: skip
    return None


def refusal(options: ExportOptions, verification: Verification, baked: BakedNode | None) -> str:
    """Why a graph is refused, with the node and the module to change."""
    fail = verification.first_failure
    assert fail is not None
    dims = []
    if options.dynamic_batch:
        dims.append("batch")
    if options.dynamic_hw:
        dims.append("height/width")
    what = f"declares {' and '.join(dims)} dynamic but" if fail.shape != tuple(options.input_shape) else ""
    text = (f"the {options.exporter} graph {what} fails at {fmt_shape(fail.shape)} "
            f"(exported at {fmt_shape(options.input_shape)}): {fail.detail}")  # fmt: skip
    if baked is not None:
        where = f" in module '{baked.module}'" if baked.module else ""
        if baked.at_other:
            text += (f"; node '{baked.name}' ({baked.op}){where} keeps a size fixed at the export shape "
                     f"(its constant input is {baked.at_export} there, {baked.at_other} when exported at "
                     f"{fmt_shape(fail.shape)})")  # fmt: skip
        else:
            text += (f"; node '{baked.name}' ({baked.op}){where} keeps a size fixed at the export shape "
                     f"(its size input is the constant {baked.at_export})")  # fmt: skip
        if baked.module:
            text += f": compute that size from the input's shape (`tensor.shape`) in module '{baked.module}'"
    return text
