"""FP16 of dynamic graphs (issue 14, kind 8, second half): overflow pins are decided for the largest input the
bundle allows, not only at the calibration size (energy_attention: a sum over H·W)."""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from attnx.calibration.precision import apply_precision
from attnx.core.errors import UserError
from attnx.exporters.export import ExportOptions, export_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cases"))

SUM = "/attn/ReduceSum"


@pytest.fixture(scope="module")
def energy(tmp_path_factory):
    import energy_attention

    path = tmp_path_factory.mktemp("ea") / "m.onnx"
    export_onnx(energy_attention.build(), path, ExportOptions(input_shape=(1, 3, 16, 16), dynamic_hw=True,
                                                               exporter="torchscript", verify=False))  # fmt: skip
    return path


def _fp16(path, tmp_path, **extra):
    cal = {"input_shape": "3x16x16", "source": "synthetic", "count": 8, "eval_count": 4, "cache": False, **extra}
    return apply_precision(path, "fp16", calibration=cal, work_dir=tmp_path)


def _consumer_of_sum(result):
    model = result.model
    out = next(n for n in model.graph.node if n.name == SUM).output[0]
    return [n.name for n in model.graph.node if out in n.input]


def test_sum_over_hw_is_pinned_for_the_largest_input(energy, tmp_path):
    result = _fp16(energy, tmp_path, max_input_shape="3x128x128")
    largest = result.plan["largest_input"]
    record = next(r for r in largest["reductions"] if r["node"] == SUM)
    assert largest["shape"] == "128x128" and not largest["unbounded"]
    assert record["extent"] == 256 and record["largest_extent"] == 128 * 128
    assert record["amax"] < 16384 < record["largest_amax"] and record["pinned"]  # fine at 16×16, not at 128×128
    kept = result.plan["kept_fp32"]
    assert "fp16_range" in kept[SUM]["reason"] and "128x128" in kept[SUM]["reason"]
    assert all(n in kept for n in _consumer_of_sum(result))  # the FP32 sum is not cast to FP16 (it would overflow)
    assert "scaled" in largest["method"]
    session = ort.InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"input": np.random.default_rng(0).standard_normal((1, 3, 40, 24)).astype(np.float32)})[0]
    assert np.isfinite(y).all()  # a valid FP16 graph at another size


def test_at_the_calibration_size_nothing_grows(energy, tmp_path):
    result = _fp16(energy, tmp_path, max_input_shape="3x16x16")
    assert result.plan["largest_input"]["reductions"] == []
    assert "fp16_range" not in result.plan["kept_fp32"].get(SUM, {}).get("reason", "")


def test_unbounded_dynamic_hw_keeps_growing_sums_fp32(energy, tmp_path):
    result = _fp16(energy, tmp_path)
    largest = result.plan["largest_input"]
    assert largest["unbounded"] and "fp16_range" in result.plan["kept_fp32"][SUM]["reason"]
    assert any("max_input_shape" in n for n in result.notes)


def test_max_input_shape_below_the_calibration_size_is_refused(energy, tmp_path):
    with pytest.raises(UserError, match="smaller than the calibration input"):
        _fp16(energy, tmp_path, max_input_shape="3x8x8")


def test_the_bundle_refuses_inputs_beyond_the_largest_it_was_planned_for(energy, tmp_path):
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.bundle.engine import Engine
    from attnx.deploy.bundle.manifest import load_manifest

    cal = {"input_shape": "3x16x16", "source": "synthetic", "count": 8, "eval_count": 4, "cache": False}
    bounded = build_bundle(str(energy), tmp_path / "b", BuildOptions(
        backend="ort", precision="fp16", input_shape=(1, 3, 16, 16),
        calibration={**cal, "max_input_shape": "3x64x48"})).bundle  # fmt: skip
    assert load_manifest(bounded).max_hw == (64, 48)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 48)).astype(np.float32)
    with Engine.load(bounded) as engine:
        assert np.isfinite(engine(x)["output"]).all()  # the largest size it was planned for runs
        for h, w in ((96, 48), (64, 64)):
            with pytest.raises(UserError, match=f"is {h}x{w}, larger than the 64x48 .* --calib max_input_shape"):
                engine(np.zeros((1, 3, h, w), np.float32))
    unbounded = build_bundle(str(energy), tmp_path / "u", BuildOptions(
        backend="ort", precision="fp16", input_shape=(1, 3, 16, 16), calibration=cal)).bundle  # fmt: skip
    assert load_manifest(unbounded).max_hw is None  # growing sums stay FP32: any size is safe
    with Engine.load(unbounded) as engine:
        assert np.isfinite(engine(np.zeros((1, 3, 96, 64), np.float32))["output"]).all()
