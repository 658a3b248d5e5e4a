"""Layer-wise search against the true reference: PyTorch module outputs against the ONNX tensors they map to.

When PyTorch and ONNX Runtime disagree, comparing the exported graph with itself (or with its ORT-optimised
form) finds nothing: the export computed the wrong thing faithfully. This search runs the PyTorch model with a
forward hook on every named submodule and the ONNX graph in ONNX Runtime (no optimisation, every node output
exposed), maps each module to the ONNX tensor that stands for its output, and compares them in the order the
modules finished (a child finishes before its parent), under the precision's tolerance policy.

The mapping: the exporter writes the module scope into the graph. TorchScript names nodes ``/block/attn/MatMul_2``
(a Sequential child as ``/layer1/layer1.0/conv1/Conv``); the dynamo exporter, when its metadata is kept, records
``pkg.torch.onnx.name_scopes``. A module's tensor is the output of the **last** node of its scope (itself and its
children, in the graph's topological order) whose shape equals the module output's shape. A module called more
than once, or whose output is not one float tensor, is not mapped. Where nothing maps, the report says so; where
every mapped tensor agrees but the final outputs differ, it says the divergence is after the last mapped tensor
or in an unmapped part, never that everything agrees.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.onnx_files import load_onnx
from attnx.deploy.parity.layerwise import (
    _check,
    _is_float,
    compare_outputs,
    run_with_intermediates,
    topological_nodes,
)
from attnx.deploy.parity.report import LayerwiseReport, Unmatched

if TYPE_CHECKING:
    import onnx
    import torch

    from attnx.deploy.parity.compare import Tolerance


def node_module_path(node: onnx.NodeProto) -> str | None:
    """The module path (``named_modules`` style, e.g. ``layer1.0.conv1``) that emitted ``node``; None: unknown."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            import ast

            try:
                scopes = [str(s) for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                scopes = []
            if scopes:
                return scopes[-1]
    if not node.name.startswith("/"):
        return None
    path = ""
    for seg in [p for p in node.name.split("/")[1:-1] if p]:
        # TorchScript repeats the qualified name for a container's children: /layer1/layer1.0/conv1
        path = seg if path and seg.startswith(path + ".") else (f"{path}.{seg}" if path else seg)
    return path


def _in_scope(node_path: str | None, module: str) -> bool:
    return node_path is not None and (node_path == module or node_path.startswith(module + "."))


def torch_module_outputs(
    model: torch.nn.Module, inputs: list[Any]
) -> tuple[list[tuple[str, str, np.ndarray]], list[tuple[str, str, str]], list[np.ndarray]]:
    """Run ``model``: (module path, class, output) in the order modules finished; modules left out and why; the
    model's outputs."""
    import torch

    done: list[tuple[str, str, Any]] = []
    calls: dict[str, int] = {}
    hooks = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        def fn(module: Any, args: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if calls[name] == 1:
                done.append((name, type(module).__name__, out))

        return fn

    for name, module in model.named_modules():
        if name:
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            out = model(*[torch.as_tensor(x) for x in inputs])
    finally:
        for h in hooks:
            h.remove()
    outputs = [out] if isinstance(out, torch.Tensor) else [o for o in out if isinstance(o, torch.Tensor)]
    kept: list[tuple[str, str, np.ndarray]] = []
    skipped: list[tuple[str, str, str]] = []
    for name, cls, value in done:
        if calls[name] > 1:
            skipped.append((name, cls, f"called {calls[name]} times"))
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            kept.append((name, cls, value.detach().float().cpu().numpy()))
        else:
            skipped.append((name, cls, "its output is not one float tensor"))
    return kept, skipped, [o.detach().float().cpu().numpy() for o in outputs]


def layerwise_torch(
    model: torch.nn.Module, onnx_model: onnx.ModelProto | str | Path, feed: dict[str, np.ndarray],
    tolerance: Tolerance, *, precision: str = "fp32", reference_label: str = "PyTorch",
    candidate_label: str | None = None, threads: int | None = None,
) -> LayerwiseReport:  # fmt: skip
    """First divergence between PyTorch module outputs and the ONNX tensors they map to (see the module doc)."""
    proto = load_onnx(onnx_model)
    input_names = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    modules, skipped, torch_outputs = torch_module_outputs(model, [feed[n] for n in input_names if n in feed])
    values = run_with_intermediates(proto, feed, threads=threads)
    tol = replace(tolerance, min_top1=0.0)
    report = LayerwiseReport(
        reference=reference_label, candidate=candidate_label or (str(onnx_model) if isinstance(onnx_model, (str, Path))
                                                                 else "ONNX (ONNX Runtime, unoptimised)"),
        precision=precision, tolerance=tolerance, input_shapes={k: tuple(v.shape) for k, v in feed.items()},
        reference_kind="pytorch",
    )  # fmt: skip
    order = [n for n in topological_nodes(proto) if n.op_type != "Constant"]
    paths = [node_module_path(n) for n in order]
    if not any(p for p in paths):
        report.notes.append("the ONNX nodes carry no module scope (the exporter kept none): no PyTorch module maps "
                            "to an ONNX tensor")  # fmt: skip
    for index, (name, cls, ref) in enumerate(modules):
        hit = None
        for node, path in zip(reversed(order), reversed(paths)):
            if not _in_scope(path, name):
                continue
            t = next((t for t in node.output if t and t in values and _is_float(values[t])
                      and tuple(values[t].shape) == tuple(ref.shape)), None)  # fmt: skip
            if t is not None:
                hit = (node, t)
                break
        if hit is None:
            report.unmatched.append(Unmatched(index, name, cls, ""))
            continue
        node, tensor = hit
        check = _check(index, node, tensor, ref, np.asarray(values[tensor]), tol)
        check.node, check.op_type, check.onnx_node = name, cls, node.name or node.op_type
        report.checks.append(check)
    for name, cls, why in skipped:
        report.notes.append(f"module '{name}' ({cls}) not compared: {why}")
    onnx_outputs = {o.name: values.get(o.name) for o in proto.graph.output}
    ref_outputs = {o.name: r for o, r in zip(proto.graph.output, torch_outputs)}
    report.outputs_agree, report.outputs_note = compare_outputs(ref_outputs, onnx_outputs, tol)
    if not report.checks:
        report.notes.append("no PyTorch module output maps to an ONNX tensor: layer-wise search impossible")
    first, last = report.first_divergence, report.last_agreeing
    if first is not None:
        names = [n.name or n.op_type for n in order]
        lo = names.index(last.onnx_node) if last is not None and last.onnx_node in names else -1
        hi = names.index(first.onnx_node) if first.onnx_node in names else len(names)
        between = [n for n, p in zip(order[lo + 1 : hi], paths[lo + 1 : hi]) if not _in_scope(p, first.node)]
        if between:
            ops = ", ".join(f"'{n.name}' ({n.op_type})" for n in between[-8:])
            report.notes.append(f"the error enters in the {len(between)} ONNX node(s) between the last agreeing "
                                f"tensor and module '{first.node}' (its own nodes aside), or in '{first.node}'; "
                                f"the last of them: {ops}")  # fmt: skip
    return report
