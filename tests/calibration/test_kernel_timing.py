"""Grouped and dilated convolutions: quantized for ONNX Runtime only where int8 is measured faster."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from attnx.calibration import kernel_timing, plan
from attnx.calibration.config import CalibrationConfig
from attnx.calibration.graph import GraphIndex, name_nodes
from tests.calibration.conftest import const, make_model, tensor


def convs_model(hw=(12, 12)):
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "wg"], ["g"], group=4, pads=[2, 2, 2, 2], name="grouped"),
        helper.make_node("Conv", ["g", "wd"], ["d"], dilations=[2, 2], pads=[2, 2, 2, 2], name="dilated"),
        helper.make_node("Conv", ["d", "w"], ["y"], pads=[1, 1, 1, 1], name="dense"),
    ]
    inits = [const("wg", rng.standard_normal((16, 4, 5, 5))), const("wd", rng.standard_normal((16, 16, 3, 3))),
             const("w", rng.standard_normal((16, 16, 3, 3)))]  # fmt: skip
    model = make_model(nodes, [tensor("x", ["n", 16, *hw])], [tensor("y", ["n", 16, *hw])], inits)
    name_nodes(model)
    return model, GraphIndex.build(model)


@pytest.mark.parametrize(
    ("fp32_ms", "int8_ms", "stays_float"),
    [(2.0, 1.0, False), (1.0, 2.0, True), (1.0, 1.0, True), (1.04, 1.0, True), (1.06, 1.0, False)],
)
def test_int8_only_where_clearly_faster(monkeypatch, fp32_ms, int8_ms, stays_float):
    model, index = convs_model()
    seen = []

    def fake(node, x_shape, w_shape, has_bias):
        seen.append((node.name, x_shape, w_shape, has_bias))
        return fp32_ms, int8_ms

    monkeypatch.setattr(kernel_timing, "conv_times", fake)
    p = plan.detect(index)
    found = plan.ort_slow_kernels(index, p)
    # Only the grouped and the dilated conv are timed, each at its real shape with batch 1; dense never is.
    assert seen == [("grouped", [1, 16, 12, 12], [16, 4, 5, 5], False), ("dilated", [1, 16, 12, 12], [16, 16, 3, 3],
                                                                          False)]  # fmt: skip
    assert found == (["grouped", "dilated"] if stays_float else [])
    # Every measurement is kept in the plan, whichever way it went.
    choice = "float" if stays_float else "int8"
    want = {"what": "grouped Conv (group 4 of 16 channels)", "fp32_ms": fp32_ms, "int8_ms": int8_ms, "choice": choice}
    assert p.kernel_timings["grouped"] == want
    if stays_float:
        reason = p.decisions["grouped"].reasons[0]
        assert f"int8 {int8_ms:.3g} ms vs FP32 {fp32_ms:.3g} ms" in reason


def test_unknown_shapes_fall_back_to_the_rule(monkeypatch):
    _, index = convs_model(hw=("h", "w"))  # the spatial size is unknown
    monkeypatch.setattr(kernel_timing, "conv_times", lambda *a: pytest.fail("must not time without shapes"))
    p = plan.detect(index)
    assert plan.ort_slow_kernels(index, p) == ["grouped", "dilated"]
    assert "can be several times slower" in p.decisions["dilated"].reasons[0]


def test_a_failed_timing_falls_back_to_the_rule(monkeypatch):
    _, index = convs_model()

    def broken(*args):
        raise RuntimeError("ORT refused the single-node model")

    monkeypatch.setattr(kernel_timing, "conv_times", broken)
    p = plan.detect(index)
    assert plan.ort_slow_kernels(index, p) == ["grouped", "dilated"] and not p.kernel_timings


def test_real_timing_runs_fp32_and_a_fused_int8_conv():
    model, index = convs_model()
    node = index.nodes["grouped"]
    fp32, int8 = kernel_timing._models(node, [1, 16, 12, 12], [16, 4, 5, 5], False)
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("QuantizeLinear") >= 2 and "Conv" in ops  # u8 input and output around the conv
    weight_dq = [n for n in int8.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in
                 {i for c in int8.graph.node if c.op_type == "Conv" for i in c.input[1:2]}]  # fmt: skip
    assert weight_dq, "the conv's weight is not quantized"
    kernel_timing._CACHE.clear()
    fp32_ms, int8_ms = kernel_timing.conv_times(node, [1, 16, 12, 12], [16, 4, 5, 5], False, runs=3, warmup=1)
    assert fp32_ms > 0 and int8_ms > 0
    assert kernel_timing.conv_times(node, [1, 16, 12, 12], [16, 4, 5, 5], False, runs=3, warmup=1) == (fp32_ms, int8_ms)


def test_kernel_timing_option():
    assert CalibrationConfig.from_dict({}).kernel_timing is True
    assert CalibrationConfig.from_dict({"kernel_timing": "false"}).kernel_timing is False
