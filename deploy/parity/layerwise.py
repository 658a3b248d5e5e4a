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

The candidate runs where its bundle runs, through a backend runner (``attnx.deploy.backends``) that declares
``mark_outputs``: its ``infer_with_outputs(feed, names)`` marks the matched names as outputs.
ONNX Runtime by default (``OnnxrtRunner``); ``OpenVinoRunner`` for OpenVINO bundles (compiled with the bundle's
inference precision, so a bf16 bundle is searched in bf16); the TensorRT runner for TensorRT (a GPU is needed;
a runner that does not declare ``mark_outputs`` is refused with a CapabilityError).
Outputs keep a backend from fusing across them (OpenVINO and TensorRT fuse at compile time, so unlike ORT
there is no offline pass to run first): an intermediate is computed as in an
unfused graph, and a fusion's own numerics show at the first tensor after it.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.core.onnx_files import load_onnx
from attnx.deploy.backends.base import Capabilities, Runner, check_capability
from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner
from attnx.deploy.backends.onnxrt.session import make_session
from attnx.deploy.parity.compare import Tolerance, compare_output
from attnx.deploy.parity.report import LayerwiseReport, TensorCheck, Unmatched

if TYPE_CHECKING:
    import onnx

# Makes the runner of a candidate graph (for backends other than ORT): ``factory(model)`` is a runner, not yet
# activated, that declares ``mark_outputs`` (e.g. ``functools.partial(OpenVinoRunner, inference_precision="bf16")``).
CandidateRunner = Callable[["onnx.ModelProto"], Runner]


# ---------------------------------------------------------------------------------------------------
# Running a graph with every intermediate exposed


def run_with_intermediates(
    model: onnx.ModelProto | str | Path, feed: dict[str, np.ndarray], names: Iterable[str] | None = None,
    optimize: bool = False, threads: int | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Run ``model`` in ONNX Runtime on ``feed``; every node output (or ``names``) by name. Raises UserError
    when ORT cannot load the graph with its intermediates exposed or rejects the inputs."""
    model = load_onnx(model)
    wanted = list(names) if names is not None else [t for n in model.graph.node for t in n.output if t]
    with OnnxrtRunner(model, threads=threads, optimize=optimize) as runner:
        return runner.infer_with_outputs(feed, wanted)


def ort_optimized(model: onnx.ModelProto, level: str = "extended") -> onnx.ModelProto:
    """The graph ONNX Runtime actually runs after its offline optimisations (``basic`` | ``extended`` | ``all``)."""
    import onnx

    if level not in ("basic", "extended", "all"):
        raise UserError(f"unknown ORT optimisation level '{level}': choose basic, extended or all")
    with tempfile.TemporaryDirectory(prefix="attnx-layerwise-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        make_session(model, optimize=level, optimized_path=optimized, custom_ops=False)
        return onnx.load(str(optimized))


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
    ``candidate_runner`` makes the candidate's runner instead of ONNX Runtime's (OpenVINO; TensorRT on a GPU);
    it must declare ``mark_outputs`` (else :class:`~attnx.deploy.backends.base.CapabilityError`).
    """
    ref_model = load_onnx(reference)
    cand_model = load_onnx(candidate)
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
    normal: dict[str, Any] | None = None  # the engine's outputs from its normal run (candidate runners only)
    if candidate_runner is not None:
        with candidate_runner(cand_model) as engine:
            engine.require("mark_outputs")
            cand_values = engine.infer_with_outputs(feed, wanted)
            normal = engine.infer_with_outputs(feed, [])
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
    if normal is not None:  # an engine's exposed intermediates are trusted only where they reproduce it
        _trust_engine(report, ref_model, cand_model, feed, normal, cand_values, ref_outputs, tol, threads)
    if not report.checks:
        notes.append("no tensor name survives in the candidate graph: layer-wise search impossible")
    return report


def compare_outputs(ref: dict[str, Any], cand: dict[str, Any], tol: Tolerance) -> tuple[bool | None, str]:
    """Whether the final outputs present on both sides agree under ``tol`` (None: none to compare), and how not."""
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
                  normal: dict[str, Any], cand_values: dict[str, Any], ref_outputs: dict[str, Any], tol: Tolerance,
                  threads: int | None, max_replays: int = 4) -> None:  # fmt: skip
    """Check that the engine run with exposed intermediates is the engine: the same final outputs as its normal
    run (``normal``: those outputs by name), and each divergent intermediate, fed through the reference's graph
    after it, reproduces the engine's outputs (OpenVINO returns zeros for some exposed intermediates while
    computing the outputs correctly)."""
    out_names = [o.name for o in cand_model.graph.output]
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


def engine_candidate_runner(manifest: Any, threads: int | None) -> tuple[CandidateRunner | None, str]:
    """The runner factory that runs a bundle's engine graph where the bundle runs, for :func:`layerwise_compare`.

    Args:
        manifest: the bundle's manifest (``attnx.deploy.bundle.manifest.Manifest``; read for ``backend`` and
            ``build["inference_precision"]``).
        threads: intra-op threads for the runner (None: the library's default).

    Returns:
        (factory, label suffix): for an OpenVINO bundle, an ``OpenVinoRunner`` factory at the bundle's inference
        precision and ``", OpenVINO <precision>"``; for any other backend ``(None, "")``: ONNX Runtime runs it.

    Raises:
        UserError: the manifest names an unknown inference precision, or a bf16 OpenVINO bundle on a CPU
            without bf16.
    """
    if manifest.backend != "openvino":
        return None, ""
    from functools import partial

    from attnx.deploy.backends.openvino.runner import INFERENCE_PRECISIONS, OpenVinoRunner

    precision = INFERENCE_PRECISIONS.get(str(manifest.build.get("inference_precision", "fp32")))
    if precision is None:
        raise UserError(f"the bundle asks for inference precision '{manifest.build['inference_precision']}': "
                        "rebuild it")  # fmt: skip
    if precision == "bf16":
        from attnx.deploy.backends.openvino.runner import bf16_supported

        ok, why = bf16_supported()
        if not ok:  # OpenVINO would search it in f32 and find nothing of what bf16 does
            raise UserError(f"the bundle is a bf16 OpenVINO bundle but {why}: search it on a CPU with bf16")
    return partial(OpenVinoRunner, inference_precision=precision, threads=threads), f", OpenVINO {precision}"


def trt_candidate_runner(manifest: Any) -> CandidateRunner:
    """The runner factory for a TensorRT bundle's candidate graph, for :func:`layerwise_compare`.

    Args:
        manifest: the bundle's manifest (``attnx.deploy.bundle.manifest.Manifest``), read as its JSON data for
            the bundle's TensorRT build options and optimisation profile.

    Returns:
        ``factory(model)``: a plan-less :class:`~attnx.deploy.backends.tensorrt.runner.TrtRunner` of ``model`` (an
        ``onnx.ModelProto``), not yet activated, whose ``infer_with_outputs`` builds it with the requested
        tensors marked as network outputs (Polygraphy's ``--trt-outputs``).

    Raises:
        UserError: no NVIDIA GPU with TensorRT here.
        CapabilityError: the TensorRT runner does not declare ``mark_outputs``.
    """
    from attnx.core.device import gpu_status

    ok, why = gpu_status()
    if not ok:
        raise UserError(f"layer-wise search of a TensorRT bundle needs an NVIDIA GPU with TensorRT ({why})")
    from attnx.deploy.backends.tensorrt import runner as trt_runner

    factory = trt_runner.TrtRunner
    # The TensorRT runner declares what it can do; one that cannot mark outputs is refused in those words.
    check_capability("tensorrt", getattr(factory, "capabilities", None) or Capabilities(), "mark_outputs")
    info = trt_runner.TrtPlanInfo.from_record(manifest.to_dict())
    return lambda model: factory(None, info, onnx=model)
