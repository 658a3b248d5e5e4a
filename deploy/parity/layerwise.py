"""Layer-wise parity: which node of a candidate graph first departs from the fp32 reference.

Every intermediate tensor of both graphs is marked as a graph output (ONNX Runtime accepts untyped
outputs, so this works on ORT-optimised graphs with contrib ops too); both run on the same inputs; the
tensors are matched **by name** and compared in the reference's topological order with the precision's
tolerance policy. The first tensor that fails names the node that broke, its op type and its error.

What can be matched, and why by name:
  * the reference is the fp32 ONNX run in ONNX Runtime with every graph optimisation off, so it computes
    exactly what the exported graph says (a PyTorch module has no names for its intermediate tensors that
    map onto the graph's; the fp32 ONNX is the practical reference, itself checked against PyTorch);
  * a candidate built from that graph keeps most tensor names: ORT fusions keep the name of the fused
    pattern's last output (Conv+Relu → the Relu's output), fp16 conversion keeps node outputs and adds
    Cast nodes with new names, Q/DQ insertion keeps the quantized ops' outputs. Tensors that vanish in
    fusions, or whose shape changed (layout transforms), cannot be compared: they are listed as unmatched;
  * known renamings are undone before matching: ORT's precision-free cast removal prefixes
    ``InsertedPrecisionFreeCast_`` (an fp16 graph on the CPU runs in fp32 under the new name), and fp16
    converters name a re-cast output ``..._output_cast_N`` for ``..._output_N``;
  * marking a tensor as an output can stop ORT from fusing across it, so an ORT candidate is optimised
    offline first (at the level it runs at) and the optimised graph is what gets its tensors exposed.

The candidate runs where its bundle runs, through a runner with one signature
``run_with_outputs(model: onnx.ModelProto, feed, names) -> dict`` that marks the matched names as outputs:
ONNX Runtime by default; ``attnx.deploy.backends.openvino.runner.run_with_outputs`` for OpenVINO bundles
(compiled with the bundle's inference precision, so a bf16 bundle is searched in bf16);
``attnx.deploy.backends.tensorrt.runner.run_with_outputs`` for TensorRT (a GPU is needed).
Outputs keep a backend from fusing across them (OpenVINO and TensorRT fuse at compile time, so unlike ORT
there is no offline pass to run first): an intermediate is computed as in an
unfused graph, and a fusion's own numerics show at the first tensor after it.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError

if TYPE_CHECKING:
    import onnx

    from attnx.deploy.parity.compare import Tolerance

# A hook that runs ``model`` on ``feed`` and returns the named tensors (for backends other than ORT).
CandidateRunner = Callable[["onnx.ModelProto", dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]


@dataclass
class TensorCheck:
    """One matched tensor: where it is produced in the reference graph and how far the candidate is."""

    order: int  # position of the producing node in the reference's topological order
    node: str
    op_type: str
    tensor: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float
    failures: list[str] = field(default_factory=list)
    # False: the engine's exposed value does not reproduce the engine's own outputs (fed through the reference's
    # downstream graph it gives other outputs than the engine does), so it is not evidence of a divergence
    trusted: bool = True
    onnx_node: str = ""  # PyTorch reference: the ONNX node whose output the module output was matched to

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Unmatched:
    """A reference tensor with no same-named, same-shaped tensor in the candidate (fused away, renamed)."""

    order: int
    node: str
    op_type: str
    tensor: str


@dataclass
class LayerwiseReport:
    reference: str
    candidate: str
    precision: str
    tolerance: Tolerance
    input_shapes: dict[str, tuple[int, ...]]
    checks: list[TensorCheck] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference_kind: str = "onnx"  # "pytorch": module outputs (forward hooks) against the ONNX tensors they map to
    # The final outputs of both sides: None when not compared, else whether they agree under the policy.
    outputs_agree: bool | None = None
    outputs_note: str = ""  # how the final outputs differ (when they do)
    # Non-empty when exposing intermediates changed the engine's own final outputs: nothing it exposes is trusted.
    engine_outputs_changed: str = ""

    @property
    def first_divergence(self) -> TensorCheck | None:
        if self.engine_outputs_changed:
            return None
        return next((c for c in self.checks if not c.passed and c.trusted), None)

    @property
    def untrusted(self) -> list[TensorCheck]:
        """Divergent engine tensors that do not reproduce the engine's own outputs (not evidence)."""
        return [c for c in self.checks if not c.passed and not c.trusted]

    @property
    def last_agreeing(self) -> TensorCheck | None:
        """The last tensor before the first divergence that still agreed (where the error starts)."""
        first = self.first_divergence
        before = [c for c in self.checks if c.passed and (first is None or c.order < first.order)]
        return before[-1] if before else None

    @property
    def suspects(self) -> list[Unmatched]:
        """Unmatched nodes between the last agreeing tensor and the first divergence: the error may have
        entered there (a fused pattern hides their outputs), not at the first divergent node itself."""
        first = self.first_divergence
        if first is None:
            return []
        last = self.last_agreeing
        lo = last.order if last else -1
        return [u for u in self.unmatched if lo < u.order < first.order]

    @property
    def passed(self) -> bool:
        return (bool(self.checks) and self.first_divergence is None and self.outputs_agree is not False
                and not self.engine_outputs_changed and not self.untrusted)  # fmt: skip

    def summary(self) -> str:
        first = self.first_divergence
        n = len(self.checks)
        torch_ref = self.reference_kind == "pytorch"
        what = "mapped" if torch_ref else "matched"
        if self.engine_outputs_changed:
            return self.engine_outputs_changed
        differ = f" ({self.outputs_note})" if self.outputs_note else ""
        if not self.checks:
            text = (f"no PyTorch module output of {self.reference} maps to a tensor of {self.candidate}"
                    if torch_ref else f"no tensor of {self.reference} could be matched in {self.candidate}")
            if self.outputs_agree is False:
                text += f"; the outputs differ{differ}, at a place the search cannot locate"
            return text
        untrusted = self.untrusted
        distrust = ""
        if untrusted:
            names = ", ".join(f"'{c.tensor}' at '{c.node}' ({c.op_type}, cosine {c.cosine:.3f})" for c in untrusted[:4])
            distrust = (f"; not trusted, because the engine's exposed value does not reproduce the engine's own "
                        f"outputs (the engine does not compute the exposed value it returns): {names}")  # fmt: skip
        if first is None:
            if self.outputs_agree is False:
                last = self.checks[-1]
                return (f"all {n} {what} tensors agree within the {self.precision} policy, but the outputs differ"
                        f"{differ}: the divergence is after the last {what} tensor ('{last.tensor}' of '{last.node}') "
                        f"or in a part with no {'module mapping' if torch_ref else 'matching tensor'}{distrust}")
            if untrusted:
                return f"no trusted tensor diverges ({n} {what}){distrust}"
            return f"all {n} {what} tensors agree within the {self.precision} policy"
        where = (f"module '{first.node}' ({first.op_type}), ONNX tensor '{first.tensor}'"
                 + (f" of node '{first.onnx_node}'" if first.onnx_node else "")
                 if torch_ref else f"node '{first.node}' ({first.op_type}), tensor '{first.tensor}'")  # fmt: skip
        text = (
            f"first divergence at {where} "
            f"[{first.order}]: {'; '.join(first.failures)} (max abs {first.max_abs:.3g}, rel L2 {first.rel_l2:.3g}, "
            f"cosine {first.cosine:.6f}); {sum(not c.passed for c in self.checks)} of {n} {what} tensors diverge"
        )
        last = self.last_agreeing
        if torch_ref and last is not None:
            text += f"; the last agreeing module before it is '{last.node}' ({last.op_type})"
        suspects = self.suspects
        if suspects:
            names = ", ".join(f"'{u.node}' ({u.op_type})" for u in suspects)
            text += (f"; modules between them with no ONNX tensor to compare: {names}" if torch_ref else
                     f"; not comparable in the candidate (fused or renamed), so possibly the cause: {names}")
        return text + distrust

    def to_dict(self) -> dict[str, Any]:
        from attnx.deploy.parity.compare import _json_safe

        d = asdict(self)
        for check, cd in zip(self.checks, d["checks"]):
            cd["passed"] = check.passed
        first = self.first_divergence
        d["first_divergence"] = None if first is None else {**asdict(first), "passed": False}
        d["suspects"] = [asdict(u) for u in self.suspects]
        d["passed"] = self.passed
        d["summary"] = self.summary()
        return _json_safe(d)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Running a graph with every intermediate exposed


def load_model(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    from attnx.exporters.export import load_onnx

    return load_onnx(model)


def expose_intermediates(model: onnx.ModelProto, names: Iterable[str] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs also include ``names`` (default: every node output).

    The added outputs carry no type: ONNX Runtime infers it, which also works for contrib ops that
    ONNX shape inference does not know.
    """
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    present = {o.name for o in m.graph.output}
    wanted = list(names) if names is not None else [t for n in m.graph.node for t in n.output if t]
    for name in wanted:
        if name not in present:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
            present.add(name)
    return m


def _session(model: onnx.ModelProto, optimize: bool, threads: int | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # failures are raised and reported in one line
    if threads:
        so.intra_op_num_threads = threads
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    try:
        if any(n.domain == "attnx" for n in model.graph.node):
            from attnx.plugins.ort import create_session

            return create_session(model, sess_options=so)
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own error types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        from attnx.core.library_errors import shorten

        raise UserError(f"ONNX Runtime cannot run the graph with its intermediates exposed: {shorten(first)}") from None


def run_with_intermediates(
    model: onnx.ModelProto | str | Path, feed: dict[str, np.ndarray], names: Iterable[str] | None = None,
    optimize: bool = False, threads: int | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Run ``model`` in ONNX Runtime on ``feed``; every node output (or ``names``) by name."""
    exposed = expose_intermediates(load_model(model), names)
    session = _session(exposed, optimize, threads)
    out_names = [o.name for o in session.get_outputs()]
    try:
        values = session.run(out_names, feed)
    except Exception as exc:  # shape or type errors in the feed
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        from attnx.core.library_errors import shorten

        raise UserError(f"ONNX Runtime rejects the inputs: {shorten(first)}") from None
    return dict(zip(out_names, values))


def ort_optimized(model: onnx.ModelProto, level: str = "extended") -> onnx.ModelProto:
    """The graph ONNX Runtime actually runs after its offline optimisations (``basic`` | ``extended`` | ``all``)."""
    import onnx
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise UserError(f"unknown ORT optimisation level '{level}': choose basic, extended or all")
    with tempfile.TemporaryDirectory(prefix="attnx-layerwise-") as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 4  # failures are raised and reported in one line
        so.graph_optimization_level = levels[level]
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return onnx.load(so.optimized_model_filepath)


def topological_nodes(model: onnx.ModelProto) -> list[Any]:
    """Nodes in a topological order (the file's order where it is already one, as ONNX requires)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[Any] = []
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                rest.append(node)
        if not progressed:  # a cycle or inputs from an outer scope: keep the file's order for the rest
            ordered.extend(rest)
            break
        pending = rest
    return ordered


# ---------------------------------------------------------------------------------------------------
# The search


def layerwise_compare(
    reference: onnx.ModelProto | str | Path,
    candidate: onnx.ModelProto | str | Path,
    feed: dict[str, np.ndarray],
    tolerance: Tolerance,
    *,
    precision: str = "fp32",
    candidate_optimize: str | None = None,
    candidate_runner: CandidateRunner | None = None,
    reference_label: str | None = None,
    candidate_label: str | None = None,
    threads: int | None = None,
) -> LayerwiseReport:
    """Compare every tensor the two graphs share by name, in the reference's topological order.

    ``candidate_optimize`` (basic | extended | all) runs ORT's offline optimiser on the candidate first;
    leave it None for a graph that is already what ships (an ORT bundle's ``engine.onnx``).
    ``candidate_runner`` replaces ONNX Runtime for the candidate (OpenVINO; TensorRT on a GPU).
    """
    ref_model = load_model(reference)
    cand_model = load_model(candidate)
    notes: list[str] = []
    if candidate_optimize:
        if any(n.domain == "attnx" for n in cand_model.graph.node):
            notes.append("candidate has attnx custom nodes: run without ORT's offline optimisation")
        else:
            cand_model = ort_optimized(cand_model, candidate_optimize)
            notes.append(f"candidate optimised offline by ONNX Runtime (level {candidate_optimize})")
    ref_order = [n for n in topological_nodes(ref_model) if n.op_type != "Constant"]
    cand_names = [t for n in cand_model.graph.node for t in n.output if t] + [o.name for o in cand_model.graph.output]
    by_name = {t: t for t in cand_names}
    for t in cand_names:  # exact names win over names recovered from a known renaming
        by_name.setdefault(canonical_name(t), t)
    match = {t: by_name[t] for n in ref_order for t in n.output if t and t in by_name}
    wanted = list(dict.fromkeys(match.values()))
    ref_values = run_with_intermediates(ref_model, feed, optimize=False, threads=threads)
    if candidate_runner is not None:
        cand_values = candidate_runner(cand_model, feed, wanted)
    else:
        cand_values = run_with_intermediates(cand_model, feed, names=wanted, optimize=False, threads=threads)

    # Intermediates are judged on the policy's error and similarity criteria; top-1 is for final logits.
    tol = replace(tolerance, min_top1=0.0)
    report = LayerwiseReport(
        reference=reference_label or _label(reference, "reference"),
        candidate=candidate_label or _label(candidate, "candidate"),
        precision=precision, tolerance=tolerance,
        input_shapes={k: tuple(v.shape) for k, v in feed.items()}, notes=notes,
    )  # fmt: skip
    for order, node in enumerate(ref_order):
        for tensor in node.output:
            if not tensor or tensor not in ref_values:
                continue
            ref = ref_values[tensor]
            if not _is_float(ref):
                continue  # shapes, indices, masks: not activations
            cand = cand_values.get(match[tensor]) if tensor in match else None
            if cand is None or not hasattr(cand, "shape") or tuple(cand.shape) != tuple(ref.shape):
                label = node.name or f"<{node.op_type} #{order}>"
                report.unmatched.append(Unmatched(order, label, node.op_type, tensor))
                continue
            report.checks.append(_check(order, node, tensor, ref, np.asarray(cand), tol))
    ref_outputs = {o.name: ref_values[o.name] for o in ref_model.graph.output if o.name in ref_values}
    cand_outputs = {o.name: cand_values.get(o.name) for o in cand_model.graph.output}
    report.outputs_agree, report.outputs_note = compare_outputs(ref_outputs, cand_outputs, tol)
    if candidate_runner is not None:  # an engine's exposed intermediates are trusted only where they reproduce it
        _trust_engine(report, ref_model, cand_model, feed, candidate_runner, cand_values, ref_outputs, tol, threads)
    if not report.checks:
        notes.append("no tensor name survives in the candidate graph: layer-wise search impossible")
    return report


def compare_outputs(ref: dict[str, Any], cand: dict[str, Any], tol: Tolerance) -> tuple[bool | None, str]:
    """Whether the final outputs present on both sides agree under ``tol`` (None: none to compare), and how not."""
    from attnx.deploy.parity.compare import compare_output

    failed = []
    compared = 0
    for name, r in ref.items():
        c = cand.get(name)
        if c is None or not hasattr(c, "shape") or tuple(c.shape) != tuple(np.shape(r)) or not _is_float(np.asarray(r)):
            continue
        compared += 1
        comp = compare_output(name, np.asarray(r), np.asarray(c).astype(np.float64), tol)
        if comp.failures:
            failed.append(f"output '{name}': cosine {comp.cosine:.6f}, max abs {comp.max_abs:.3g}")
    if not compared:
        return None, ""
    return not failed, "; ".join(failed)


def _trust_engine(report: LayerwiseReport, ref_model: Any, cand_model: Any, feed: dict[str, np.ndarray],
                  runner: CandidateRunner, cand_values: dict[str, Any], ref_outputs: dict[str, Any], tol: Tolerance,
                  threads: int | None, max_replays: int = 4) -> None:  # fmt: skip
    """Check that the engine run with exposed intermediates is the engine: the same final outputs as its normal
    run, and each divergent intermediate, fed through the reference's graph after it, reproduces the engine's
    outputs (OpenVINO returns zeros for some exposed intermediates while computing the outputs correctly)."""
    from attnx.deploy.parity.compare import compare_output

    out_names = [o.name for o in cand_model.graph.output]
    normal = runner(cand_model, feed, [])
    normal_outputs = {n: normal.get(n) for n in out_names}
    same, how = compare_outputs(normal_outputs, {n: cand_values.get(n) for n in out_names}, tol)
    if same is False:
        report.engine_outputs_changed = (
            f"{report.candidate} computes other final outputs when its intermediates are exposed ({how}, the exposed "
            "run against the normal run): its intermediates are not trusted and the search cannot locate the "
            "divergence in this engine; search the bundle's model.onnx instead (--graph model-raw)")  # fmt: skip
        return
    def err(a: dict[str, Any], b: dict[str, Any]) -> float:
        worst = 0.0
        for name, x in a.items():
            y = b.get(name)
            if y is None or np.shape(x) != np.shape(y):
                continue
            worst = max(worst, compare_output(name, np.asarray(x), np.asarray(y).astype(np.float64), tol).rel_l2)
        return worst

    base = err(ref_outputs, normal_outputs)
    for check in [c for c in report.checks if not c.passed][:max_replays]:
        value = cand_values.get(check.tensor)
        if value is None or check.tensor in ref_outputs:
            continue
        replayed = _replay(ref_model, check.tensor, np.asarray(value), feed, threads)
        if replayed is None:
            continue
        worse = err(replayed, normal_outputs) > 2 * base + 1e-6
        if worse and compare_outputs(normal_outputs, replayed, tol)[0] is False:
            check.trusted = False
        else:
            break  # the first divergent tensor that explains the engine's outputs: the search stops there


def _replay(ref_model: Any, tensor: str, value: np.ndarray, feed: dict[str, np.ndarray],
            threads: int | None) -> dict[str, np.ndarray] | None:  # fmt: skip
    """The reference's final outputs with ``tensor`` replaced by ``value`` (the reference's nodes after it)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(ref_model)
    for node in m.graph.node:
        for i, out in enumerate(node.output):
            if out == tensor:
                node.output[i] = f"{tensor}__attnx_replaced"
    del m.graph.value_info[:]
    m.graph.input.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    try:
        return run_with_intermediates(m, {**feed, tensor: value.astype(np.float32)},
                                      names=[o.name for o in m.graph.output], threads=threads)  # fmt: skip
    except UserError:
        return None


_RENAMES = (("InsertedPrecisionFreeCast_", ""),)  # prefixes ORT adds


def canonical_name(name: str) -> str:
    """The reference's name for a candidate tensor renamed by a known graph transformation."""
    for prefix, repl in _RENAMES:
        if name.startswith(prefix):
            name = repl + name[len(prefix) :]
    return re.sub(r"_output_cast_(\d+)$", r"_output_\1", name)


def _check(order: int, node: Any, tensor: str, ref: np.ndarray, cand: np.ndarray, tol: Tolerance) -> TensorCheck:
    from attnx.deploy.parity.compare import compare_output

    comp = compare_output(tensor, ref, cand.astype(np.float64) if _is_float(cand) else cand, tol)
    return TensorCheck(
        order=order, node=node.name or f"<{node.op_type} #{order}>", op_type=node.op_type, tensor=tensor,
        shape=tuple(ref.shape), max_abs=comp.max_abs, mean_abs=comp.mean_abs, rel_l2=comp.rel_l2,
        cosine=comp.cosine, failures=list(comp.failures),
    )  # fmt: skip


def _is_float(arr: Any) -> bool:
    return hasattr(arr, "dtype") and np.issubdtype(arr.dtype, np.floating)


def _label(model: object, default: str) -> str:
    return str(model) if isinstance(model, (str, Path)) else default


def layerwise_bundle(
    bundle: str | Path, reference_onnx: str | Path, feed: dict[str, np.ndarray],
    tolerance: Tolerance | None = None, graph: str = "engine", threads: int | None = None,
) -> LayerwiseReport:  # fmt: skip
    """Layer-wise search of a bundle against its fp32 ONNX.

    ``graph``: ``engine`` compares the graph that ships where it ships (an ORT bundle's optimised ``engine.onnx``
    in ORT; an OpenVINO bundle's baked ``model.onnx`` in OpenVINO at the bundle's inference precision);
    ``model`` compares the precision-baked ``model.onnx`` as ORT would optimise it; ``model-raw`` runs
    ``model.onnx`` unoptimised — Q/DQ then compute in float (simulated quantization), so more names
    survive than in an engine with fused QLinear kernels, and the search shows where the quantization
    plan lets error in. A TensorRT bundle is searched through its ``model.onnx`` with the TensorRT runner
    (needs a GPU).
    """
    from attnx.deploy.bundle.manifest import load_manifest
    from attnx.deploy.parity.compare import policy

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    tol = tolerance or policy(manifest.precision)
    if graph not in ("engine", "model", "model-raw"):
        raise UserError(f"unknown graph '{graph}' for the layer-wise search: choose engine, model or model-raw")
    label = f"{manifest.backend} {manifest.precision} bundle {bundle.name}"
    if manifest.backend == "trt":
        runner = _trt_runner()
        return layerwise_compare(
            reference_onnx, manifest.path_of(bundle, "onnx"), feed, tol, precision=manifest.precision,
            candidate_runner=runner, reference_label="fp32 ONNX (ORT, unoptimised)", candidate_label=label,
        )  # fmt: skip
    if manifest.files.get("engine", "").endswith(".xml"):  # NNCF's OpenVINO IR: no ONNX tensors to compare
        raise UserError(f"{bundle} is an OpenVINO INT8 bundle quantized by NNCF (OpenVINO IR), which the layer-wise "
                        "search cannot read: search an ORT int8 bundle of the same model (--backend ort)")  # fmt: skip
    if graph == "engine":
        engine_runner, where = _engine_runner(manifest, threads)
        return layerwise_compare(
            reference_onnx, manifest.path_of(bundle, "engine"), feed, tol, precision=manifest.precision,
            candidate_runner=engine_runner, reference_label="fp32 ONNX (ORT, unoptimised)",
            candidate_label=f"{label} ({manifest.files['engine']}{where})", threads=threads,
        )  # fmt: skip
    return layerwise_compare(
        reference_onnx, manifest.path_of(bundle, "onnx"), feed, tol, precision=manifest.precision,
        candidate_optimize="extended" if graph == "model" else None, reference_label="fp32 ONNX (ORT, unoptimised)",
        candidate_label=f"{label} (model.onnx{', unoptimised' if graph == 'model-raw' else ''})", threads=threads,
    )  # fmt: skip


def _engine_runner(manifest: Any, threads: int | None) -> tuple[CandidateRunner | None, str]:
    """The runner for a bundle's engine graph (None: ONNX Runtime), and its label suffix."""
    if manifest.backend != "openvino":
        return None, ""
    from functools import partial

    from attnx.deploy.backends.openvino.runner import INFERENCE_PRECISIONS, run_with_outputs

    precision = INFERENCE_PRECISIONS.get(str(manifest.build.get("inference_precision", "fp32")))
    if precision is None:
        raise UserError(f"the bundle asks for inference precision '{manifest.build['inference_precision']}': "
                        "rebuild it")  # fmt: skip
    if precision == "bf16":
        from attnx.deploy.backends.openvino.runner import bf16_supported

        ok, why = bf16_supported()
        if not ok:  # OpenVINO would search it in f32 and find nothing of what bf16 does
            raise UserError(f"the bundle is a bf16 OpenVINO bundle but {why}: search it on a CPU with bf16")
    return partial(run_with_outputs, inference_precision=precision, threads=threads), f", OpenVINO {precision}"


def _trt_runner() -> CandidateRunner:
    from attnx.core.device import gpu_status

    ok, why = gpu_status()
    if not ok:
        raise UserError(f"layer-wise search of a TensorRT bundle needs an NVIDIA GPU with TensorRT ({why})")
    try:
        from attnx.deploy.backends.tensorrt.runner import run_with_outputs  # type: ignore[attr-defined]
    except ImportError:
        raise UserError(
            "this attnx has no TensorRT layer-wise runner "
            "(attnx.deploy.backends.tensorrt.runner.run_with_outputs): upgrade attnx"
        ) from None
    return run_with_outputs  # type: ignore[no-any-return]


def layerwise_table(report: LayerwiseReport, limit: int = 25) -> Any:
    """A rich table: the tensors around the first divergence (or the worst ones when all agree)."""
    from rich.table import Table

    table = Table(title=f"Layer-wise: {report.reference} vs {report.candidate}, policy {report.precision}",
                  caption=report.summary())  # fmt: skip
    for col, just in [("#", "right"), ("node", "left"), ("op", "left"), ("tensor", "left"), ("max abs", "right"),
                      ("rel L2", "right"), ("cosine", "right"), ("result", "left")]:  # fmt: skip
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    first = report.first_divergence
    if first is not None:
        idx = report.checks.index(first)
        rows = report.checks[max(0, idx - 3) : idx + 3]
    else:
        rows = sorted(report.checks, key=lambda c: -c.rel_l2)[:limit]
    for c in rows:
        result = "[green]ok[/]" if c.passed else f"[bold red]DIVERGES[/] {'; '.join(c.failures)}"
        table.add_row(str(c.order), c.node, c.op_type, c.tensor, f"{c.max_abs:.2e}", f"{c.rel_l2:.2e}",
                      f"{c.cosine:.6f}", result)  # fmt: skip
    return table
