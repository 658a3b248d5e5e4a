"""``apply_precision``: an FP32 ONNX file → a precision-baked model, its plan, and its calibration.

Precision lives in the graph (TensorRT 11 is strongly typed; ONNX Runtime runs what the graph says), so
both backends consume the same kind of artefact:

* ``fp16``: the attention-aware plan (see :mod:`attnx.calibration.plan`), plus, with calibration data, every
  tensor whose magnitude would overflow FP16, stays FP32; onnxconverter-common converts the rest.
* ``int8``: a calibration table (cached) and the Q/DQ layout of the chosen style (:mod:`attnx.calibration.qdq`);
  the plan's nodes stay unquantized; sensitivity mode excludes more until a budget holds.

Every result is checked against the FP32 model in ONNX Runtime on held-out samples and on seeded
standard-normal inputs; the numbers go into the plan (``check``).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.config import CalibrationConfig
from attnx.calibration.data import CalibrationData, describe, load_split
from attnx.calibration.evaluate import agreement, run
from attnx.calibration.fp16 import converter_version, mark_softmax_precision, to_fp16
from attnx.calibration.graph import (
    GraphIndex,
    graph_inputs,
    graph_sha256,
    name_nodes,
    session,
    set_metadata,
)
from attnx.calibration.int8_numerics import cpu_path, saturation_proof
from attnx.calibration.nncf_quant import float_plan, quantize_openvino
from attnx.calibration.plan import detect, ort_slow_kernels, pin_for_largest_shape, pin_fp16_range
from attnx.calibration.qdq import STYLES, count_qdq, quantize
from attnx.calibration.sensitivity import search
from attnx.calibration.table import CalibrationTable, cache_path, cached_or_collect
from attnx.core.cpu import int8_recipe
from attnx.core.errors import UserError, name_destination
from attnx.core.files import atomic_path
from attnx.core.onnx_files import load_onnx
from attnx.deploy.parity.compare import policy

if TYPE_CHECKING:
    import onnx

PRECISIONS = ("fp16", "int8")
# INT8 (ORT style): excluded nodes of these categories read float inputs even when their producer is quantized
FLOAT_INPUT_CATEGORIES = {
    "softmax",
    "fused_attention",
    "attention_matmul",
    "normalization",
    "norm_input",
    "double_norm",
    "sampling",
    "custom_op",
    "user",
    "sensitivity",
}
SEEDED_CHECK_SAMPLES = 8


@dataclass
class PrecisionResult:
    """What :func:`apply_precision` made: the baked model, its plan and its calibration (fields commented
    below). The bundle records ``plan`` as ``Manifest.precision_plan`` and ``calibration_info`` as
    ``Manifest.calibration``, and ships ``calibration_table`` as ``calibration.json``."""

    model: onnx.ModelProto  # precision-baked, IR ≤ 10
    plan: dict[str, Any]  # JSON-able: per node kept FP32 / excluded → reason; quantized nodes; converter; check
    calibration_table: Path | None  # JSON table to ship in the bundle (INT8), else None
    calibration_info: dict[str, Any] | None  # method, source, synthetic, count, data hash, cache key, cache hit
    notes: list[str] = field(default_factory=list)
    # held-out samples (.npz, arrays named as the model inputs) the check used: real data for a parity run
    # (an INT8 model calibrated on real images is not meant to agree on random-noise inputs)
    check_inputs: Path | None = None

    def save(self, onnx_path: Path) -> dict[str, Path]:
        """Write the model, ``<stem>.plan.json`` and (INT8) ``<stem>.calibration.json`` beside it, atomically."""
        import contextlib

        onnx_path = Path(onnx_path)
        written = {"onnx": onnx_path, "plan": onnx_path.with_name(onnx_path.stem + ".plan.json")}
        payloads = {"onnx": self.model.SerializeToString(), "plan": (json.dumps(self.plan, indent=2) + "\n").encode()}
        if self.calibration_table is not None:
            written["calibration"] = onnx_path.with_name(onnx_path.stem + ".calibration.json")
            payloads["calibration"] = Path(self.calibration_table).read_bytes()
        # Every file written in full before any is renamed into place (a full disk leaves none of them); the
        # renames run in reverse order of entry, so the model comes last: its presence means the rest is there.
        with contextlib.ExitStack() as stack:
            tmps = {key: stack.enter_context(atomic_path(written[key]))
                    for key in ("onnx", "plan", "calibration") if key in payloads}  # fmt: skip
            for key, tmp in tmps.items():
                try:
                    tmp.write_bytes(payloads[key])
                except OSError as exc:
                    name_destination(exc, written[key], tmp)  # the file whose write failed (write() names none)
                    raise
        return written


def apply_precision(
    fp32_onnx_path: Path,
    precision: str,
    style: str = "ort",
    calibration: dict[str, Any] | None = None,
    work_dir: Path | None = None,
) -> PrecisionResult:
    """Bake ``precision`` into the FP32 model at ``fp32_onnx_path`` for backend ``style`` (ort | trt).

    ``calibration`` holds the options of :class:`attnx.calibration.config.CalibrationConfig`. ``work_dir``
    receives the calibration table and the plan (a temporary folder when None; the caller owns it).
    Bad input raises a one-line :class:`UserError`; nothing is written outside ``work_dir`` except the
    calibration cache, whose files are written atomically.

    Args:
        fp32_onnx_path: the FP32 ONNX file (float32 inputs and weights).
        precision: "fp16" or "int8".
        style: "ort" (u8 activations / s8 per-channel weights, fused by ONNX Runtime into QLinear ops) or
            "trt" (symmetric s8 Q/DQ on the inputs of quantizable ops, as TensorRT expects); INT8 only.
        calibration: the options dict, or None for the defaults.
        work_dir: where the table and check inputs go.

    Returns:
        A :class:`PrecisionResult`; its plan includes the check against FP32 (cosine per output, top-1
        drop in percentage points) on held-out and seeded inputs.

    Raises:
        UserError: an unknown ``precision`` or ``style``; bad calibration options
            (:meth:`CalibrationConfig.from_dict`); an unreadable model, one without run-time inputs, or
            INT8 below opset 13; unusable calibration data (:func:`attnx.calibration.data.load_split`); FP16
            without onnxconverter-common.
    """
    if precision not in PRECISIONS:
        raise UserError(
            f"unknown precision '{precision}' for a precision pass: choose {' or '.join(PRECISIONS)} "
            "(fp32 is the input)"
        )
    if style not in STYLES:
        raise UserError(f"unknown backend style '{style}': choose {' or '.join(STYLES)}")
    cfg = CalibrationConfig.from_dict(calibration)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="attnx-precision-"))
    work.mkdir(parents=True, exist_ok=True)
    model = load_onnx(Path(fp32_onnx_path))
    notes: list[str] = []
    if name_nodes(model):
        notes.append("some nodes had no (or duplicate) names: attnx named them so the plan can address them")
    inputs = graph_inputs(model)
    if not inputs:
        raise UserError(f"{fp32_onnx_path} has no runtime inputs: nothing to calibrate")
    need_data = precision == "int8" or cfg.fp16_range_check
    calib = held = None
    if need_data:
        calib, held = load_split(inputs, cfg)
        notes.extend(calib.notes + held.notes)
        if calib.synthetic:
            notes.append(
                "calibration data is SYNTHETIC (seeded standard-normal), not real images: ranges may not "
                "match real inputs"
            )
        shapes = calib.input_shapes()
    else:
        shapes = _static_shapes(inputs, cfg)
    index = GraphIndex.build(model, shapes)
    plan = detect(index, cfg.reduce_extent, cfg.exclude)
    model_sha = graph_sha256(model)
    cache_dir = cfg.cache_dir if cfg.cache else None
    plan_out: dict[str, Any] = {"precision": precision, "style": style, "nodes": len(model.graph.node)}
    info: dict[str, Any] | None = None
    table_path: Path | None = None

    if precision == "fp16":
        if calib is not None:
            table, hit, tnotes = _table(model, index, calib, cfg, "minmax", model_sha, cache_dir)
            notes.extend(tnotes)
            big = pin_fp16_range(index, plan, {t: r.amax for t, r in table.ranges.items()}, cfg.fp16_limit)
            plan_out["fp16_range"] = {"limit": cfg.fp16_limit, "tensors": {t: table.ranges[t].amax for t in big}}
            info = _info(table, hit, calib, cache_dir)
        largest = _largest_shapes(inputs, cfg, shapes)
        if largest is not None:  # dynamic H/W: the pins must hold at the largest input, not only at this size
            max_shapes, label, unbounded = largest
            amax = {t: r.amax for t, r in table.ranges.items()} if calib is not None else {}
            decided = pin_for_largest_shape(index, GraphIndex.build(model, max_shapes), plan, amax, cfg.fp16_limit,
                                            cfg.reduce_extent, label, unbounded)  # fmt: skip
            plan_out["largest_input"] = {
                "shape": label, "unbounded": unbounded, "reductions": decided,
                # the bound the engine enforces: beyond it the FP16 pins are not known to hold
                "max_hw": list(cfg.max_sample_shape[1:]) if cfg.max_sample_shape else None,  # None: unbounded
                "method": "calibrated |x| of each reduction scaled by the growth of its extent at the largest input "
                          "(sums: ratio of extents) — the largest input may be unbounded or too large to calibrate at",
            }  # fmt: skip
            if unbounded and decided:
                notes.append("FP16 of a graph with dynamic H/W and no max_input_shape: every reduction that grows with "
                             "H·W stays FP32 (give --calib max_input_shape=CxHxW to decide them at that size)")
        baked, cnotes = to_fp16(model, plan.keep_fp32())
        notes.extend(cnotes)

        fused = {n: d.reasons[0] for n, d in plan.decisions.items() if "fused_attention" in d.categories}
        if fused:  # Attention nodes computed in FP16: their softmax in FP32 (the op's softmax_precision)
            plan_out["internal_precision"] = mark_softmax_precision(baked, fused)
        entries = plan.entries(int8=False)
        plan_out.update(
            converter=converter_version(), kept_fp32=entries, counts=_counts(entries, len(model.graph.node))
        )
        plan_out["counts"]["casts"] = sum(n.op_type == "Cast" for n in baked.graph.node)
    else:
        assert calib is not None and held is not None
        table, hit, tnotes = _table(model, index, calib, cfg, cfg.method, model_sha, cache_dir)
        notes.extend(tnotes)
        info = _info(table, hit, calib, cache_dir)
        if style == "ort":
            ort_slow_kernels(index, plan, measure=cfg.kernel_timing)
            if plan.kernel_timings:  # what was measured, both ways: a rebuild under other load may choose otherwise
                plan_out["kernel_timing"] = plan.kernel_timings

        # TensorRT accumulates in int32: only the CPU layout depends on the CPU's kernels.
        recipe = int8_recipe(cfg.cpu_target if style == "ort" else "vnni")
        if cfg.quantize_gates:
            plan.int8_allowed.add("sigmoid_gate")
            notes.append("sigmoid gates quantized on request (quantize_gates): their calibrated ranges are used")
        table_path = work / "calibration.json"
        table.save(table_path)
        excluded = plan.int8_excluded()

        strict = float_input_nodes(plan)

        def build(exclude: list[str]) -> Any:
            # nodes excluded later (sensitivity) are not in the plan yet: they read float inputs too
            float_inputs = [n for n in exclude if n in strict or n not in plan.decisions]
            return quantize(model, table, exclude, style, float_inputs, recipe.weight_bits)

        if cfg.sensitivity is not None and held.count:
            reference = run(model, held, cfg.batch_size, cfg.threads)
            all_nodes = [n.name for n in model.graph.node]
            result, report = search(
                build,
                reference,
                held,
                cfg.sensitivity,
                excluded,
                all_nodes,
                cfg.batch_size,
                cfg.threads,
                _margin("int8"),
            )
            for node in report.excluded:
                eff = report.effects[node]
                plan.add(
                    index.nodes[node],
                    "sensitivity",
                    f"sensitivity: alone it costs {eff['cosine_loss']:.2e} "
                    f"cosine, {eff['top1_drop_points']:.2f} top-1 points",
                )
            plan_out["sensitivity"] = report.to_dict()
            if not report.held:
                notes.append(
                    f"sensitivity budget not met after excluding {len(report.excluded)} node(s): "
                    f"cosine {report.final.min_cosine:.5f}, top-1 drop {report.final.top1_drop:.2f} points"
                )
        else:
            if cfg.sensitivity is not None:
                notes.append("sensitivity mode needs held-out samples (eval_count > 0): skipped")
            result = build(excluded)
        baked = result.model
        notes.extend(result.notes)
        plan_out["cpu"] = int8_cpu_record(baked, recipe)
        entries = plan.entries(int8=True)
        plan_out.update(
            converter=_int8_converter(style, recipe.weight_bits),
            excluded=entries,
            quantized=result.quantized,
            counts={**_counts(entries, len(model.graph.node)), "quantized": len(result.quantized), **count_qdq(baked)},
        )

    plan_out["check"] = _check(model, baked, held, inputs, shapes, cfg, _margin(precision))
    set_metadata(
        baked, {"attnx.precision": precision, "attnx.precision_style": style, "attnx.fp32_graph_sha256": model_sha}
    )
    if info is not None:
        set_metadata(baked, {"attnx.calibration_key": info["cache_key"]})
    (work / "precision_plan.json").write_text(json.dumps(plan_out, indent=2) + "\n")
    check_inputs = None
    if held is not None and held.count:
        check_inputs = work / "check_inputs.npz"
        with open(check_inputs, "wb") as f:
            np.savez(f, **held.arrays)  # type: ignore[arg-type]  # numpy's stub: a key could be allow_pickle
    return PrecisionResult(baked, plan_out, table_path, info, notes, check_inputs)


def int8_cpu_record(baked: onnx.ModelProto, recipe: Any) -> dict[str, Any]:
    """What an INT8 graph was built for and checked on: the recipe, the CPU, the saturation proof, the kernels."""
    proof = saturation_proof(baked)
    return {
        "recipe": recipe.to_dict(),
        "verified_on": recipe.built_on.to_dict(),
        "saturation": proof.to_dict(),
        "check_kernels": cpu_path(baked, recipe.built_on, proof=proof).description,
    }


def float_input_nodes(plan: Any) -> set[str]:
    """Excluded nodes that must compute on float inputs, not just leave their outputs unquantized (ORT style)."""
    return {n for n, d in plan.decisions.items() if set(d.categories) & FLOAT_INPUT_CATEGORIES}


def _margin(precision: str) -> float:
    """Top-1 counts samples whose FP32 top-2 gap exceeds the parity policy's atol (as attnx parity does)."""
    return policy(precision).atol


def _largest_shapes(inputs: list[Any], cfg: CalibrationConfig, shapes: dict[str, tuple[int, ...]]
                    ) -> tuple[dict[str, tuple[int, ...]], str, bool] | None:  # fmt: skip
    """The largest input shapes an FP16 plan must hold at, how to name them, and whether they are unbounded (a probe
    shape then); None when no input has dynamic H/W (the calibration size is the only size)."""
    out = dict(shapes)
    label, unbounded, dynamic = "", False, False
    for spec in inputs:
        cur = shapes.get(spec.name)
        if len(spec.shape) != 4 or cur is None or all(isinstance(d, int) for d in spec.shape[2:]):
            continue
        dynamic = True
        if cfg.max_sample_shape is not None:
            c, h, w = cfg.max_sample_shape
            if h < cur[2] or w < cur[3]:
                raise UserError(f"max_input_shape {c}x{h}x{w} is smaller than the calibration input "
                                f"{'x'.join(map(str, cur[1:]))}")  # fmt: skip
            out[spec.name] = (cur[0], cur[1], h, w)
            label = f"{h}x{w}"
        else:  # unbounded: a probe at twice the size tells which extents grow with H·W
            out[spec.name] = (cur[0], cur[1], 2 * cur[2], 2 * cur[3])
            label, unbounded = "any H×W", True
    return (out, label, unbounded) if dynamic else None


def _static_shapes(inputs: list[Any], cfg: CalibrationConfig) -> dict[str, tuple[int, ...]]:
    """Batch-1 shapes for shape inference when no data is loaded (FP16 without the range check)."""
    out: dict[str, tuple[int, ...]] = {}
    for spec in inputs:
        dims = [1, *spec.shape[1:]]
        if len(dims) == 4 and cfg.sample_shape and any(not isinstance(d, int) for d in dims[1:]):
            dims = [1, *cfg.sample_shape]
        if all(isinstance(d, int) for d in dims):
            out[spec.name] = tuple(int(d) for d in dims)
    return out


def _table(
    model: onnx.ModelProto,
    index: GraphIndex,
    data: CalibrationData,
    cfg: CalibrationConfig,
    method: str,
    model_sha: str,
    cache_dir: Path | None,
) -> tuple[CalibrationTable, bool, list[str]]:
    return cached_or_collect(
        model, index, data, method, cfg.percentile, model_sha, cache_dir, cfg.batch_size, cfg.threads, cfg.progress
    )


def _info(table: CalibrationTable, hit: bool, data: CalibrationData, cache_dir: Path | None) -> dict[str, Any]:
    return {
        "method": table.method,
        "percentile": table.percentile,
        **describe(data),
        "data_sha256": table.data["sha256"],
        "model_sha256": table.model_sha256,
        "cache_key": table.key,
        "cache_hit": hit,
        "cache_file": str(cache_path(cache_dir, table.key)) if cache_dir is not None else None,
        "tensors": len(table.ranges),
    }


def _int8_converter(style: str, weight_bits: int = 8) -> str:
    from importlib.metadata import version

    if style == "ort":
        weights = "7-bit s8 (reduce_range)" if weight_bits == 7 else "s8"
        return (
            f"onnxruntime {version('onnxruntime')} quantize_static (QDQ, u8 activations / {weights} per-channel "
            "weights) from the attnx table"
        )
    return (
        "attnx Q/DQ emitter (TensorRT layout: symmetric s8 on op inputs, per-channel s8 weights) from the attnx table"
    )


def _counts(entries: dict[str, dict[str, Any]], total: int) -> dict[str, Any]:
    return {
        "nodes": total,
        "float": len(entries),
        "by_category": dict(Counter(e["category"] for e in entries.values())),
    }


def _check(
    model: onnx.ModelProto,
    baked: onnx.ModelProto,
    held: CalibrationData | None,
    inputs: list[Any],
    shapes: dict[str, tuple[int, ...]],
    cfg: CalibrationConfig,
    margin: float,
) -> dict[str, Any]:
    """Agreement with FP32 in ONNX Runtime: held-out samples (when any) and seeded standard-normal inputs."""
    import numpy as np

    out: dict[str, Any] = {}
    ref_sess, cand_sess = session(model, cfg.threads), session(baked, cfg.threads)
    if held is not None and held.count:
        ref = run(ref_sess, held, cfg.batch_size)
        out["held_out"] = {
            "source": held.description,
            **agreement(ref, run(cand_sess, held, cfg.batch_size), margin).to_dict(),
        }
    if len(shapes) == len(inputs):
        rng = np.random.default_rng(0)
        arrays = {}
        for spec in inputs:
            shape = (SEEDED_CHECK_SAMPLES, *shapes[spec.name][1:])
            arrays[spec.name] = (
                rng.standard_normal(shape) if spec.dtype.kind == "f" else rng.integers(0, 2, size=shape)
            ).astype(spec.dtype)
        seeded = CalibrationData(arrays, "seeded standard-normal (seed 0)", synthetic=True)
        ref = run(ref_sess, seeded, cfg.batch_size)
        out["seeded"] = {
            "source": seeded.description,
            **agreement(ref, run(cand_sess, seeded, cfg.batch_size), margin).to_dict(),
        }
    return out


def format_plan(plan: dict[str, Any], max_nodes: int = 6) -> str:
    """The plan as a few readable lines (what the CLI prints)."""
    int8 = plan["precision"] == "int8"
    entries = plan.get("excluded" if int8 else "kept_fp32", {})
    counts = plan.get("counts", {})
    done = (f"{counts['fake_quantize']} FakeQuantize by NNCF" if "fake_quantize" in counts
            else f"{counts.get('quantized', 0)} nodes quantized")  # fmt: skip
    head = (
        f"INT8 ({plan['style']} layout): {done}, {len(entries)} left float"
        if int8
        else f"FP16: {len(entries)} of {plan['nodes']} nodes kept FP32, the rest FP16"
    )
    lines = [head, f"  converter: {plan.get('converter')}"]
    by_cat: dict[str, list[str]] = {}
    for name, e in entries.items():
        by_cat.setdefault(e["category"], []).append(name)
    for cat, names in sorted(by_cat.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(names[:max_nodes]) + (f", … (+{len(names) - max_nodes})" if len(names) > max_nodes else "")
        why = entries[names[0]]["reason"].split(":", 1)[-1].strip().split(";")[0]
        lines.append(f"  {cat} ({len(names)}): {shown}")
        lines.append(f"      why: {why}")
    sens = plan.get("sensitivity")
    if sens:
        held = "held" if sens["held"] else "NOT met"
        lines.append(f"  sensitivity: budget {held}; excluded {[e['node'] for e in sens['excluded']]}")
    checks = plan.get("check", {})
    # With held-out data, parity judges on it; random N(0,1) inputs lie off the data's distribution, where
    # INT8 ranges calibrated on real data clip: shown for information, so it must not read as a verdict.
    seeded = "seeded N(0,1), off the data's distribution: shown, not judged" if "held_out" in checks else "seeded"
    for key, label in (("held_out", "held-out"), ("seeded", seeded)):
        c = checks.get(key)
        if c:
            top1 = (
                f", top-1 disagreement {c['top1_drop_points']:.2f} points (clear samples), "
                f"{c['top1_drop_points_all']:.2f} (all)"
                if c["top1_agreement"]
                else ""
            )
            lines.append(f"  check vs FP32 ({label}, {c['samples']} samples): cosine {c['min_cosine']:.6f}{top1}")
    return "\n".join(lines)


@dataclass
class OpenVinoInt8Result:
    """OpenVINO INT8 by NNCF: the quantized ``openvino.Model`` (FakeQuantize inside), its plan, its data."""

    model: Any  # openvino.Model: save with openvino.save_model(model, "model.xml", compress_to_fp16=False)
    plan: dict[str, Any]
    calibration_info: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    held_out: bool = False  # checked on held-out samples of the calibration source


def apply_openvino_int8(fp32_onnx_path: Path, calibration: dict[str, Any] | None = None) -> OpenVinoInt8Result:
    """INT8 for OpenVINO's CPU plugin: NNCF quantizes the FP32 model with attnx's plan as its ignored scope.

    The same calibration samples as the ONNX Runtime route (``calibration`` options, ``load_split``), NNCF's
    transformer model type where the plan finds attention, and NNCF's overflow fix when the CPU target's
    u8×s8 kernels saturate (:func:`attnx.core.cpu.int8_recipe`). Sigmoid gates are quantized unless the user set
    ``quantize_gates``: kept float they made the NNCF model 1.15–1.2× slower than NNCF's own on cbam_resnet
    at 224², and quantized they were no less accurate (``python -m attnx.deploy.tools.nncf_bench --gates-float``).
    The check compares it (OpenVINO) with the FP32 model (ONNX Runtime) on the held-out samples.
    Raises :class:`UserError` (one line) when NNCF or OpenVINO is missing or fails.
    """
    options = dict(calibration or {})
    options.setdefault("quantize_gates", True)
    cfg = CalibrationConfig.from_dict(options)
    model = load_onnx(Path(fp32_onnx_path))
    name_nodes(model)
    inputs = graph_inputs(model)
    calib, held = load_split(inputs, cfg)
    notes = [*calib.notes, *held.notes]
    if calib.synthetic:
        notes.append("calibration data is SYNTHETIC (seeded standard-normal), not real images")
    recipe = int8_recipe(cfg.cpu_target)
    ignored, transformer = float_plan(model, calib.input_shapes(), cfg)
    # Where plain NNCF scores below 0.995 on validation samples that neither calibrate nor check (the next ones of
    # the calibration source), NNCF's accuracy control reverts the costliest layers to float until ≥ 0.998.
    # Measured on ResT (tiny, digits weights): plain NNCF 0.977-0.981 on held-out digits, with it 0.9978.
    more, _ = load_split(inputs, replace(cfg, count=cfg.count + max(cfg.eval_count, 16)))
    validation = {k: v[calib.count :] for k, v in more.arrays.items()}
    usable = bool(validation) and min(len(v) for v in validation.values()) > 0
    ov_model, info = quantize_openvino(Path(fp32_onnx_path), calib.arrays, ignored, transformer,
                                       recipe.saturation_safe, calib.count, validation if usable else None)  # fmt: skip
    if info["ignored"]["unmatched"]:
        notes.append(f"{len(info['ignored']['unmatched'])} float node(s) of the plan have no OpenVINO op (folded)")
    plan: dict[str, Any] = {
        "precision": "int8", "style": "openvino", "nodes": len(model.graph.node),
        "converter": f"nncf {info['nncf']} quantize ({info['model_type']} model type, overflow fix "
                     f"{info['overflow_fix']}) with the attnx plan as ignored scope",
        "excluded": {n: {"category": "plan", "reason": "kept float by the attention-aware plan"} for n in ignored},
        "counts": {"nodes": len(model.graph.node), "float": len(ignored), "fake_quantize": info["fake_quantize"]},
        "nncf": info,
        "cpu": {"recipe": recipe.to_dict(), "verified_on": recipe.built_on.to_dict(),
                "saturation": {"safe": recipe.saturation_safe, "by": f"NNCF overflow fix {info['overflow_fix']}"},
                "check_kernels": "OpenVINO CPU"},
    }  # fmt: skip
    plan["check"] = _check_openvino(model, ov_model, held, cfg, _margin("int8"))
    calibration_info = {"method": "nncf (its own statistics over the samples)", **describe(calib),
                        "data_sha256": calib.sha256(), "cache_hit": False}  # fmt: skip
    return OpenVinoInt8Result(ov_model, plan, calibration_info, notes, bool(held.count))


def _check_openvino(fp32: onnx.ModelProto, ov_model: Any, held: CalibrationData, cfg: CalibrationConfig,
                    margin: float) -> dict[str, Any]:  # fmt: skip
    """Agreement of the NNCF model (OpenVINO CPU) with FP32 (ONNX Runtime) on the held-out samples."""
    import openvino

    if not held.count:
        return {}
    compiled = openvino.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = [o.get_any_name() for o in compiled.outputs]
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in held.batches(cfg.batch_size):
        result = compiled(feed)
        for n, port in zip(names, compiled.outputs):
            chunks[n].append(np.asarray(result[port]))
    got = {n: np.concatenate(v) for n, v in chunks.items()}
    ref = run(fp32, held, cfg.batch_size, cfg.threads)
    return {"held_out": {"source": held.description, **agreement(ref, got, margin).to_dict()}}
