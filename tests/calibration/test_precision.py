"""apply_precision end to end: plans, tables, caching, results that run, and bad input."""

import json

import numpy as np
import onnx
import pytest

from attnx.calibration.graph import session
from attnx.calibration.precision import apply_precision, format_plan
from attnx.core.errors import UserError
from tests.calibration.conftest import const, make_model, save, tensor

SMALL = {"count": 16, "eval_count": 8, "batch_size": 8}


def test_int8_ort_on_a_gated_resnet(zoo_onnx, tmp_path, private_cache):
    work = tmp_path / "work"
    result = apply_precision(zoo_onnx("se_resnet"), "int8", "ort", SMALL, work)
    plan, info = result.plan, result.calibration_info
    assert plan["precision"] == "int8" and "quantize_static" in plan["converter"]
    gates = {n: e for n, e in plan["excluded"].items() if e["category"] == "sigmoid_gate"}
    assert len(gates) == 12 and all("gate" in e["reason"] for e in gates.values())
    assert plan["counts"]["quantized"] == len(plan["quantized"]) > 20
    assert not set(plan["quantized"]) & set(plan["excluded"])
    assert info["method"] == "percentile" and info["synthetic"] is False and info["count"] == 16
    assert info["cache_hit"] is False and len(info["cache_key"]) == 64
    assert result.calibration_table == work / "calibration.json"
    table = json.loads(result.calibration_table.read_text())
    assert table["key"] == info["cache_key"] and table["data"]["sha256"] == info["data_sha256"]
    assert (private_cache / f"{info['cache_key'][:32]}.json").is_file()
    assert json.loads((work / "precision_plan.json").read_text()) == plan
    with np.load(result.check_inputs) as held:  # the held-out digits, ready for `attnx parity --inputs`
        assert held.files == ["input"] and held["input"].shape == (8, 3, 64, 64)
    check = plan["check"]
    assert check["held_out"]["samples"] == 8 and check["held_out"]["min_cosine"] > 0.99
    assert check["seeded"]["min_cosine"] > 0.99
    meta = {p.key: p.value for p in result.model.metadata_props}
    assert meta["attnx.precision"] == "int8" and meta["attnx.model"] == "se_resnet"
    assert result.model.ir_version <= 10
    # rebuilding reuses the cached table
    again = apply_precision(zoo_onnx("se_resnet"), "int8", "ort", SMALL, tmp_path / "work2")
    assert again.calibration_info["cache_hit"] is True
    assert again.calibration_info["cache_key"] == info["cache_key"]
    assert "INT8 (ort layout)" in format_plan(plan) and "sigmoid_gate (12)" in format_plan(plan)


def test_int8_trt_on_a_vit_keeps_attention_float(zoo_onnx, tmp_path):
    result = apply_precision(zoo_onnx("vit_tiny"), "int8", "trt", SMALL, tmp_path)
    plan = result.plan
    cats = {e["category"] for e in plan["excluded"].values()}
    assert {"softmax", "attention_matmul", "normalization", "norm_input"} <= cats
    q = result.model
    prod = {t: n for n in q.graph.node for t in n.output}
    for node in q.graph.node:
        if node.op_type in ("Softmax", "LayerNormalization") or node.name in plan["excluded"]:
            assert all(t not in prod or prod[t].op_type != "DequantizeLinear" for t in node.input), node.name
    zero_points = [i for i in q.graph.initializer if i.name.endswith("_zero_point")]
    assert zero_points and all(i.data_type == onnx.TensorProto.INT8 for i in zero_points)
    assert plan["check"]["held_out"]["min_cosine"] > 0.99


def test_fp16_keeps_the_plan_fp32_and_runs(zoo_onnx, tmp_path):
    result = apply_precision(zoo_onnx("vit_tiny"), "fp16", "trt", SMALL, tmp_path)
    plan = result.plan
    assert "onnxconverter-common" in plan["converter"] and result.calibration_table is None
    ops = {e["op"] for e in plan["kept_fp32"].values()}
    assert {"Softmax", "LayerNormalization", "MatMul"} <= ops
    types = {i.data_type for i in result.model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types  # the projections' weights really are FP16
    assert result.model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert plan["check"]["seeded"]["min_cosine"] > 0.999 and plan["check"]["held_out"]["min_cosine"] > 0.999
    assert result.calibration_info["method"] == "minmax"  # the FP16 range check's table


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference evaluator's own overflow, asserted below
def test_fp16_range_check_keeps_overflowing_tensors_fp32(tmp_path):
    """An unshifted softmax, exp(5x) / Σ exp(5x), overflows FP16 (max 65504) for x > 2.2."""
    from onnx.reference import ReferenceEvaluator

    nodes = [
        onnx.helper.make_node("Mul", ["x", "five"], ["s"], name="scale"),
        onnx.helper.make_node("Exp", ["s"], ["e"], name="exp"),
        onnx.helper.make_node("ReduceSum", ["e", "axis"], ["z"], keepdims=1, name="sum"),
        onnx.helper.make_node("Div", ["e", "z"], ["y"], name="normalise"),
    ]
    inits = [const("five", 5.0), onnx.numpy_helper.from_array(np.array([1], np.int64), "axis")]
    model = make_model(nodes, [tensor("x", ["n", 6])], [tensor("y", ["n", 6])], inits)
    path = save(model, tmp_path / "exp.onnx")
    opts = {**SMALL, "source": "synthetic"}
    result = apply_precision(path, "fp16", "ort", opts, tmp_path / "w")
    kept = result.plan["kept_fp32"]
    assert {"exp", "sum", "normalise"} <= set(kept) and kept["exp"]["category"] == "fp16_range"
    assert "e" in result.plan["fp16_range"]["tensors"]
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    want = np.exp(5 * x) / np.exp(5 * x).sum(axis=1, keepdims=True)
    # ONNX Runtime's CPU kernels widen FP16 internally; the reference evaluator computes in FP16 for real
    for out in (session(result.model).run(None, {"x": x})[0], ReferenceEvaluator(result.model).run(None, {"x": x})[0]):
        assert np.isfinite(out).all() and np.allclose(out, want, atol=2e-3)
    unchecked = apply_precision(path, "fp16", "ort", {**opts, "fp16_range_check": False}, tmp_path / "w2")
    assert "exp" not in unchecked.plan["kept_fp32"] and unchecked.calibration_info is None
    assert not np.isfinite(ReferenceEvaluator(unchecked.model).run(None, {"x": x})[0]).all()  # the trap


def test_synthetic_data_is_flagged_everywhere(tiny_onnx, tmp_path):
    result = apply_precision(tiny_onnx, "int8", "ort", {**SMALL, "source": "synthetic"}, tmp_path)
    assert result.calibration_info["synthetic"] is True and "SYNTHETIC" in result.calibration_info["source"]
    assert any("SYNTHETIC" in n for n in result.notes)
    assert json.loads(result.calibration_table.read_text())["data"]["synthetic"] is True


def test_save_writes_model_plan_and_table(tiny_onnx, tmp_path):
    result = apply_precision(tiny_onnx, "int8", "trt", SMALL, tmp_path / "w")
    written = result.save(tmp_path / "out" / "tiny.int8.onnx")
    assert set(written) == {"onnx", "plan", "calibration"}
    assert all(p.is_file() for p in written.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written.values())
    onnx.checker.check_model(onnx.load(str(written["onnx"])))


def _nothing_written(work, cache):
    assert not work.exists() or not any(work.iterdir()), list(work.iterdir())
    assert not cache.exists() or not any(cache.iterdir())


@pytest.mark.parametrize(
    ("precision", "style", "options", "fragment"),
    [
        ("int4", "ort", {}, "unknown precision 'int4'"),
        ("fp32", "ort", {}, "choose fp16 or int8"),
        ("int8", "cuda", {}, "unknown backend style 'cuda'"),
        ("int8", "ort", {"method": "magic"}, "unknown calibration method"),
    ],
)
def test_bad_arguments(tiny_onnx, tmp_path, private_cache, precision, style, options, fragment):
    with pytest.raises(UserError, match=fragment):
        apply_precision(tiny_onnx, precision, style, options, tmp_path / "w")
    _nothing_written(tmp_path / "w", private_cache)


def test_bad_calibration_data_writes_nothing(tiny_onnx, tmp_path, private_cache):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no images"):
        apply_precision(tiny_onnx, "int8", "ort", {"source": str(tmp_path / "empty")}, tmp_path / "w")
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "imgs" / "ok.png")
    (tmp_path / "imgs" / "bad.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(UserError, match=r"cannot read calibration image .*bad\.png"):
        apply_precision(tiny_onnx, "int8", "ort", {"source": str(tmp_path / "imgs")}, tmp_path / "w")
    np.save(tmp_path / "wrong.npy", np.zeros((4, 3, 8, 8), np.float32))
    with pytest.raises(UserError, match="axis 2 of the model input is fixed at 16"):
        apply_precision(tiny_onnx, "int8", "ort", {"source": str(tmp_path / "wrong.npy")}, tmp_path / "w")
    with pytest.raises(UserError, match="ONNX file not found"):
        apply_precision(tmp_path / "missing.onnx", "int8", "ort", {}, tmp_path / "w")
    (tmp_path / "corrupt.onnx").write_bytes(tiny_onnx.read_bytes()[:100])
    with pytest.raises(UserError, match="not a readable ONNX model"):
        apply_precision(tmp_path / "corrupt.onnx", "int8", "ort", {}, tmp_path / "w")
    _nothing_written(tmp_path / "w", private_cache)


def test_quantize_gates_on_request(zoo_onnx, tmp_path):
    result = apply_precision(zoo_onnx("se_resnet"), "int8", "ort", {**SMALL, "quantize_gates": True}, tmp_path)
    assert not any(e["category"] == "sigmoid_gate" for e in result.plan["excluded"].values())
    assert any(n.endswith("attn/Mul") for n in result.plan["quantized"])
    assert any("quantize_gates" in n for n in result.notes) and result.plan["check"]["held_out"]["min_cosine"] > 0.99


def test_plugin_form_model_after_export_in_the_same_process(tmp_path):
    """Exporting a plugin-form model registers attnx schemas (attnx::AffineGridSample ...), which used to
    break `import onnx.reference` inside onnxruntime.quantization; a fresh process shows the real order."""
    import subprocess
    import sys

    code = f"""
import warnings; warnings.filterwarnings("ignore")
from pathlib import Path
from attnx.deploy.apis.pipeline import export_model, full_input_shape, prepare_model
from attnx.exporters.export import ExportOptions
from attnx.calibration.precision import apply_precision
p = prepare_model("stn_classifier")
r, _ = export_model(p, Path(r"{tmp_path}") / "stn.onnx", ExportOptions(input_shape=full_input_shape(p, None)),
                    target="trt10", plugins="trt")
res = apply_precision(r.path, "int8", "ort", {{"count": 8, "eval_count": 4}}, Path(r"{tmp_path}") / "w")
kept = [k for k, v in res.plan["excluded"].items() if v["op"] == "AffineGridSample"]
print(len(kept), res.plan["check"]["held_out"]["min_cosine"] > 0.99)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["1", "True"]
