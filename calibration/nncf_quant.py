"""OpenVINO INT8 by NNCF: the attention-aware plan's float nodes as NNCF's ignored scope.

``quantize_openvino`` reads an FP32 ONNX file with OpenVINO and runs ``nncf.quantize`` on it (post-training,
FakeQuantize inserted into the OpenVINO model; the CPU plugin turns FakeQuantize pairs into int8 kernels).
The caller decides three things attnx knows and NNCF cannot:

* ``ignored_nodes``: ONNX node names the plan keeps float (:func:`attnx.calibration.plan.detect`,
  ``Plan.int8_excluded()``; :func:`float_plan` computes them). OpenVINO's ONNX frontend names the last
  operation of each converted node after the ONNX node (a Conv with bias becomes ``NAME/WithoutBiases``
  (Convolution) + ``NAME`` (Add)), and gives each output port the ONNX output tensor names; an ONNX node is
  mapped to every OpenVINO operation named ``NAME`` or ``NAME/...`` or carrying one of its output names.
  ONNX nodes that OpenVINO folded away match nothing and are reported, not an error.
* ``transformer``: ``nncf.ModelType.TRANSFORMER`` where the model has attention (Softmax): NNCF then keeps
  its own transformer patterns (residual adds, softmax, layer norm inputs) float and uses the mixed preset.
* ``saturation_safe``: NNCF's overflow fix on every layer (``OverflowFix.ENABLE``: weights use 7 of their 8
  bits) for a CPU target without VNNI, where u8×s8 pairs summed in int16 (VPMADDUBSW) saturate; else
  ``OverflowFix.DISABLE`` (VNNI / AMX / ARM accumulate in int32).

The quantized ``openvino.Model`` is saved into a bundle with
``openvino.save_model(model, "model.xml", compress_to_fp16=False)`` (writes ``model.xml`` + ``model.bin``).
Reference: NNCF post-training quantization, https://docs.openvino.ai/ (``nncf.quantize``,
``nncf.IgnoredScope``, ``AdvancedQuantizationParameters(overflow_fix=...)``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.graph import GraphIndex, graph_inputs, name_nodes
from attnx.calibration.plan import detect
from attnx.core.errors import UserError
from attnx.core.onnx_files import load_onnx
from attnx.deploy.parity.metrics import cosine_similarity

if TYPE_CHECKING:
    import onnx

    from attnx.calibration.config import CalibrationConfig

# plan categories that mean "this graph has attention": NNCF's transformer model type applies
ATTENTION_CATEGORIES = {"softmax", "attention_matmul", "attention_path", "double_norm", "fused_attention"}
_NOT_COMPUTE = {"Constant", "Parameter", "Result"}


def quantize_openvino(
    fp32_onnx: Path,
    calib_arrays: dict[str, np.ndarray],
    ignored_nodes: Sequence[str] = (),
    transformer: bool = False,
    saturation_safe: bool = False,
    subset_size: int | None = None,
    validation_arrays: dict[str, np.ndarray] | None = None,
    min_cosine: float = 0.998,
    trigger_cosine: float = 0.995,
) -> tuple[Any, dict[str, Any]]:
    """Quantize the FP32 ONNX model at ``fp32_onnx`` to an INT8 ``openvino.Model`` with NNCF.

    ``validation_arrays`` (samples as ``calib_arrays``, used neither to calibrate nor to check): NNCF's accuracy
    control (``nncf.quantize_with_accuracy_control``) with the cosine of the INT8 outputs with FP32's on them as
    its metric, used only where plain ``nncf.quantize`` scores below ``trigger_cosine`` there: NNCF then
    reverts the layers that cost most to float until the cosine is ≥ ``min_cosine`` (its ``max_drop`` from
    FP32's 1.0). Otherwise, and without them, the plain ``nncf.quantize`` result.

    ``calib_arrays``: per model input name, ``N`` samples along axis 0 (float32 images ``(N, C, H, W)``,
    as :func:`attnx.calibration.data.load_split` returns them); each sample is fed as batch 1.
    ``ignored_nodes``: ONNX node names to leave unquantized (no FakeQuantize on their inputs or weights);
    nodes without names in the file are addressed by the names :func:`attnx.calibration.graph.name_nodes` gives
    them, as in the plan. ``subset_size``: how many samples NNCF uses (default, and at most, ``N``).

    Returns ``(model, info)``: the quantized ``openvino.Model`` (same inputs and outputs as the ONNX file)
    and a JSON-able dict: ``nncf`` (version), ``openvino``, ``model_type``, ``overflow_fix``, ``preset``,
    ``subset_size``, ``samples``, ``ignored`` (``requested``, ``matched``, ``unmatched`` ONNX names,
    ``openvino_ops`` count), ``fake_quantize`` (count in the result), ``seconds``.

    Raises :class:`attnx.core.errors.UserError` (one line) when nncf or openvino is not installed, the file is
    missing or unreadable, an input has no samples, or NNCF fails.
    """
    try:
        import nncf  # type: ignore[import-untyped]
        from nncf.quantization.advanced_parameters import (  # type: ignore[import-untyped]
            AdvancedQuantizationParameters,
            OverflowFix,
        )
    except ImportError:
        raise UserError("OpenVINO INT8 needs NNCF, which is not installed: pip install nncf") from None
    try:
        import openvino
    except ImportError:
        raise UserError("OpenVINO INT8 needs OpenVINO, which is not installed: pip install openvino") from None

    fp32_onnx = Path(fp32_onnx)
    model = load_onnx(fp32_onnx)
    renamed = name_nodes(model)
    names = [spec.name for spec in graph_inputs(model)]
    missing = [n for n in names if n not in calib_arrays]
    if missing:
        raise UserError(f"no calibration samples for input(s) {', '.join(missing)} of {fp32_onnx}")
    count = min(int(np.asarray(calib_arrays[n]).shape[0]) for n in names)
    if count < 1:
        raise UserError(f"calibration for {fp32_onnx} needs at least one sample per input, got 0")
    core = openvino.Core()
    try:  # with renamed nodes, read the renamed graph so that the plan's names exist in it
        ov_model = core.read_model(model.SerializeToString() if renamed else str(fp32_onnx))
    except Exception as exc:  # OpenVINO's own error types
        raise UserError(f"OpenVINO cannot read {fp32_onnx}: {str(exc).strip().splitlines()[0][:200]}") from None

    ov_names, matched, unmatched = map_ignored(ov_model, model, ignored_nodes)
    samples = [{n: np.ascontiguousarray(np.asarray(calib_arrays[n])[i : i + 1]) for n in names} for i in range(count)]
    subset = count if subset_size is None else max(1, min(int(subset_size), count))
    model_type = nncf.ModelType.TRANSFORMER if transformer else None
    overflow_fix = OverflowFix.ENABLE if saturation_safe else OverflowFix.DISABLE
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)  # NNCF logs one INFO line per skipped quantizer
    t = time.perf_counter()
    try:
        # NNCF draws rich progress bars on stdout (no switch to turn them off): keep them out of attnx's output
        common: dict[str, Any] = {
            "subset_size": subset, "model_type": model_type,
            "ignored_scope": nncf.IgnoredScope(names=ov_names, validate=False) if ov_names else None,
        }  # fmt: skip
        advanced = AdvancedQuantizationParameters(overflow_fix=overflow_fix)
        validation: list[Any] = []
        plain: float | None = None
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(ov_model, nncf.Dataset(samples), advanced_parameters=advanced, **common)
            if validation_arrays is not None:
                items, metric = _cosine_validation(core, ov_model, validation_arrays, names)
                plain = metric(core.compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), items)[0]
            if plain is not None and plain < trigger_cosine:  # only where plain NNCF misses
                validation = items
                quantized = nncf.quantize_with_accuracy_control(
                    ov_model, nncf.Dataset(samples), nncf.Dataset(validation, lambda item: item[0]), metric,
                    max_drop=1.0 - min_cosine, advanced_quantization_parameters=advanced, **common,
                )  # fmt: skip
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"NNCF could not quantize {fp32_onnx}: {first}; build OpenVINO fp32 or use --backend ort"
        ) from None
    finally:
        nncf_logger.setLevel(level)
    seconds = time.perf_counter() - t
    info = {
        "quantizer": ("nncf.quantize (post-training, FakeQuantize in the OpenVINO model)" if not validation
                      else f"nncf.quantize_with_accuracy_control (metric: cosine with FP32 on {len(validation)} "
                           f"validation samples, kept ≥ {min_cosine})"),  # fmt: skip
        "nncf": nncf.__version__,
        "openvino": openvino.get_version(),
        "model_type": "transformer" if transformer else "default",
        "preset": "mixed" if transformer else "performance",  # NNCF's default preset for the model type
        "overflow_fix": overflow_fix.value,
        "saturation_safe": bool(saturation_safe),
        "subset_size": subset,
        "samples": count,
        "ignored": {
            "requested": len(matched) + len(unmatched),
            "matched": len(matched),
            "unmatched": unmatched,
            "openvino_ops": len(ov_names),
        },
        "validation_cosine_plain": None if plain is None else round(plain, 6),
        "fake_quantize": sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ordered_ops()),
        "seconds": round(seconds, 2),
    }
    return quantized, info


def _cosine_validation(core: Any, fp32: Any, arrays: dict[str, np.ndarray],
                       names: list[str]) -> tuple[list[Any], Any]:  # fmt: skip
    """NNCF validation items (feed, FP32 outputs) and its metric: the cosine over all outputs and samples of a
    candidate with FP32 (FP32 itself scores 1.0), plus per-sample cosines for NNCF's ranking of layers."""
    compiled = core.compile_model(fp32, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    count = min(int(np.asarray(arrays[n]).shape[0]) for n in names)
    items = []
    for i in range(count):
        feed = {n: np.ascontiguousarray(np.asarray(arrays[n])[i : i + 1]) for n in names}
        result = compiled(feed)
        items.append((feed, np.concatenate([np.asarray(result[p], np.float64).ravel() for p in compiled.outputs])))

    def metric(model: Any, data: Any) -> tuple[float, list[float]]:
        refs, outs = [], []
        for feed, ref in data:
            result = model(feed)
            refs.append(ref)
            outs.append(np.concatenate([np.asarray(result[p], np.float64).ravel() for p in model.outputs]))
        whole = cosine_similarity(np.concatenate(refs), np.concatenate(outs))
        return whole, [cosine_similarity(r, o) for r, o in zip(refs, outs)]

    return items, metric


def map_ignored(
    ov_model: Any, onnx_model: onnx.ModelProto, ignored_nodes: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """(OpenVINO operation names, matched ONNX names, unmatched ONNX names) for the ONNX nodes ``ignored_nodes``.

    An ONNX node ``NAME`` maps to the OpenVINO operations named ``NAME`` or ``NAME/...`` (the parts of its
    decomposition, unless that name is another ONNX node's) and to those whose outputs carry one of the
    node's output tensor names. Constants, parameters and results are left out.
    """
    onnx_nodes = {n.name: n for n in onnx_model.graph.node}
    ops = [op for op in ov_model.get_ordered_ops() if op.get_type_name() not in _NOT_COMPUTE]
    by_tensor: dict[str, set[str]] = {}
    by_prefix: dict[str, set[str]] = {}
    for op in ops:
        name = op.get_friendly_name()
        for port in op.outputs():
            for tensor in port.get_names():
                by_tensor.setdefault(tensor, set()).add(name)
        by_prefix.setdefault(name, set()).add(name)
        head, sep, _ = name.rpartition("/")
        while sep and head:  # NAME/WithoutBiases, NAME/a/b → NAME (when NAME is not itself another op)
            if head in onnx_nodes and head != name:
                by_prefix.setdefault(head, set()).add(name)
                break
            head, sep, _ = head.rpartition("/")
    out: set[str] = set()
    matched: list[str] = []
    unmatched: list[str] = []
    for node_name in dict.fromkeys(ignored_nodes):
        found = set(by_prefix.get(node_name, ()))
        node = onnx_nodes.get(node_name)
        for tensor in node.output if node is not None else ():
            found |= by_tensor.get(tensor, set())
        (matched if found else unmatched).append(node_name)
        out |= found
    return sorted(out), matched, unmatched


def float_plan(
    model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]], cfg: CalibrationConfig
) -> tuple[list[str], bool]:
    """(ONNX nodes the attention-aware plan leaves unquantized, whether the model has attention) for OpenVINO.

    ``input_shapes``: input name → a full input shape (batch included), e.g. ``CalibrationData.input_shapes()``.

    The structural plan only (:func:`attnx.calibration.plan.detect` with the user's ``exclude``): ONNX Runtime's
    kernel timings do not apply to OpenVINO. ``model`` must have its nodes named (:func:`name_nodes`).
    """
    plan = detect(GraphIndex.build(model, input_shapes), cfg.reduce_extent, cfg.exclude)
    if cfg.quantize_gates:
        plan.int8_allowed.add("sigmoid_gate")
    transformer = any(set(d.categories) & ATTENTION_CATEGORIES for d in plan.decisions.values())
    return plan.int8_excluded(), transformer
