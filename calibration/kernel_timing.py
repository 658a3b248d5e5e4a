"""Whether ONNX Runtime runs a convolution faster in int8 than in float on this CPU, measured.

MLAS's QLinearConv is fast for dense convolutions, but its grouped and dilated paths are not uniformly
so. Measured here (``python -m attnx.deploy.tools.kernel_timing``: ORT 1.31, AVX-512 VNNI, 1 thread, batch 1;
fp32 ms → int8 ms), PSA's branch convs:

    64 ch at 56×56:  k5 group 4   1.13 → 1.14     k7 group 8   2.19 → 3.73     k9 group 16  2.42 → 10.4
    256 ch at 14×14: k5 group 4   0.45 → 0.14     k7 group 8   0.97 → 0.35     k9 group 16  1.45 → 0.81

so a rule on the attributes alone either loses the big int8 wins or keeps the big losses. Like a
TensorRT builder timing tactics, the plan times each such convolution alone, at its real shape, in both
forms (the int8 one as ``ort_style`` emits it: u8 activations, s8 per-channel weights, fused by ORT into
QLinearConv) and leaves float the ones whose int8 form is not clearly faster. Identical convolutions
(same attributes and shapes) are timed once per process; every measurement and choice is recorded in the
plan (``kernel_timing``), since a build on a busier machine may choose otherwise near the threshold.

Two simplifications, both erring towards float: the timing uses one thread, and the int8 form pays for
quantizing its input and dequantizing its output, which a chain of quantized nodes mostly does not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnx.calibration.graph import IR_VERSION_MAX, GraphIndex, session
from attnx.calibration.qdq import ort_style
from attnx.calibration.table import CalibrationTable, TensorRange

# int8 must beat float by this factor to be chosen: a tie goes to float, which is the more accurate.
MIN_SPEEDUP = 1.05
_CACHE: dict[tuple[Any, ...], tuple[float, float]] = {}


def conv_times(node: Any, x_shape: list[int], w_shape: list[int], has_bias: bool, runs: int = 15,
               warmup: int = 3) -> tuple[float, float]:  # fmt: skip
    """(fp32 ms, int8 ms): medians of ``runs`` single-thread runs of ``node`` alone on a batch-1 input."""
    attrs = tuple(sorted((a.name, str(a)) for a in node.attribute))
    key = (attrs, tuple(x_shape), tuple(w_shape), has_bias, runs)
    if key not in _CACHE:
        fp32, int8 = _models(node, [1, *x_shape[1:]], w_shape, has_bias)
        ms = interleaved_medians({"fp32": fp32, "int8": int8}, [1, *x_shape[1:]], runs, warmup)
        _CACHE[key] = ms["fp32"], ms["int8"]
    return _CACHE[key]


def _models(node: Any, x_shape: list[int], w_shape: list[int], has_bias: bool) -> tuple[Any, Any]:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)  # the values do not matter to the kernels' speed, only the shapes
    inits = [numpy_helper.from_array((0.1 * rng.standard_normal(w_shape)).astype(np.float32), "w")]
    inputs = ["x", "w"]
    if has_bias:
        inits.append(numpy_helper.from_array(np.zeros(w_shape[0], np.float32), "b"))
        inputs.append("b")
    conv = helper.make_node("Conv", inputs, ["y"], name="conv")
    conv.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [conv], "conv_timing",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION_MAX)
    y_shape = GraphIndex.build(fp32).shapes.get("y")
    if not y_shape or any(d is None for d in y_shape):
        raise ValueError("output shape unknown")
    table = CalibrationTable("minmax", None, {"x": TensorRange(-4.0, 4.0, -4.0, 4.0),
                                              "y": TensorRange(-8.0, 8.0, -8.0, 8.0)}, "", "", {})  # fmt: skip
    return fp32, ort_style(fp32, table, [], []).model


def interleaved_medians(models: dict[str, Any], shape: Sequence[int], runs: int, warmup: int = 5) -> dict[str, float]:
    """Median milliseconds per run of each model on one seeded input, one thread, the sessions alternated run
    by run (the order reversed every other run) so that machine load affects each alike."""
    sessions = {label: session(model, threads=1) for label, model in models.items()}
    x = np.random.default_rng(0).standard_normal(tuple(shape)).astype(np.float32)
    name = next(iter(sessions.values())).get_inputs()[0].name
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for i in range(warmup + runs):
        for label in list(sessions) if i % 2 == 0 else list(reversed(sessions)):
            t = time.perf_counter()
            sessions[label].run(None, {name: x})
            if i >= warmup:
                times[label].append((time.perf_counter() - t) * 1e3)
    return {label: statistics.median(v) for label, v in times.items()}
