"""The CLI through typer's runner: happy paths, exit codes, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.helpers import REPO_ROOT, assert_user_error, invoke

TINY = "tests.fixtures:tiny_net"


def perturbed_copy(onnx_path, dest):
    """``onnx_path`` with 0.05 added to its first conv weight: a model that fails fp32 parity."""
    proto = onnx.load(str(onnx_path))
    init = next(i for i in proto.graph.initializer if numpy_helper.to_array(i).ndim == 4)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.05, init.name))
    onnx.save(proto, str(dest))
    return dest


def test_help_is_fast_and_does_not_import_heavy_libraries():
    heavy = "('torch', 'onnx', 'onnxruntime', 'tensorrt')"
    code = f"import sys, attnx.deploy.cli.main; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_zoo_lists_every_model_with_costs(tmp_path):
    result = invoke("zoo", "--json", tmp_path / "zoo.json")
    assert result.exit_code == 0, result.output
    models = json.loads((tmp_path / "zoo.json").read_text())["models"]
    assert {"seresnet", "vit_tiny", "external_attention_seg"} <= {m["name"] for m in models}
    assert {"se_resnet", "ea_seg"} <= {a for m in models for a in m["aliases"]}  # old names stay as aliases
    assert all(m["params_m"] > 0 and m["gmacs"] > 0 for m in models)


def test_export_writes_model_and_report(exported):
    assert exported.is_file() and exported.with_name("tiny.report.json").is_file()
    onnx.checker.check_model(onnx.load(str(exported)))


def test_parity_on_an_attnx_onnx_file(exported, tmp_path):
    result = invoke("parity", exported, "--model", TINY, "--json", tmp_path / "p.json")  # not a zoo name: named here
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["passed"] and [c["label"] for c in data["cases"]] == ["batch 1", "batch 3"]
    assert data["cases"][0]["outputs"][0]["max_abs"] < 1e-4


def test_parity_on_a_zoo_name():
    result = invoke("parity", "se_resnet", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert "parity passed" in result.output


def test_parity_failure_exits_1(exported, tmp_path):
    broken = perturbed_copy(exported, tmp_path / "broken.onnx")
    result = invoke("parity", broken, "--model", TINY, "--json", tmp_path / "p.json")
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and not json.loads((tmp_path / "p.json").read_text())["passed"]


def test_parity_with_user_inputs(exported, tmp_path):
    np.savez(tmp_path / "in.npz", input=np.random.default_rng(1).standard_normal((5, 3, 16, 16)).astype(np.float32))
    result = invoke("parity", exported, "--model", TINY, "--inputs", tmp_path / "in.npz", "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    cases = json.loads((tmp_path / "p.json").read_text())["cases"]
    assert [c["input_shapes"]["input"] for c in cases] == [[5, 3, 16, 16]]


def test_run_stops_after_parity_when_asked(tmp_path):
    result = invoke("run", "eca_resnet", "-o", tmp_path / "out", "--batch", "1", "--precisions", "")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"model.onnx", "model.report.json", "parity.json"}


def test_run_whole_pipeline_with_trained_weights(tmp_path):

    weights = REPO_ROOT / "weights" / "digits" / "stn_classifier.safetensors"
    result = invoke("run", "stn_classifier", "-o", tmp_path / "out", "--weights", weights, "--precisions",
                    "fp32,int8", "--iterations", "5", "--calib", "count=16",
                    "--calib", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert {"model.onnx", "parity.json", "bundles", "accuracy.json", "bench.json", "bench.md"} <= {
        p.name for p in out.iterdir()}  # fmt: skip
    acc = {r["precision"]: r["top1"] for r in json.loads((out / "accuracy.json").read_text())["results"]}
    assert acc["fp32"] > 90 and abs(acc["int8"] - acc["fp32"]) <= 2  # trained: real accuracy, int8 close


# --- bad input: exit 2, one line -------------------------------------------------------------------


def test_unknown_model_suggests_close_names(tmp_path):
    assert_user_error(invoke("export", "se_resnt", "-o", tmp_path / "m.onnx"), "unknown model 'se_resnt'", "se_resnet")


def test_missing_onnx_file(tmp_path):
    assert_user_error(invoke("parity", tmp_path / "nope.onnx"), "ONNX file not found")


def test_corrupt_onnx_file(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    assert_user_error(invoke("parity", bad), "corrupt")


def test_truncated_onnx_file(exported, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    assert_user_error(invoke("parity", cut))


def test_onnx_not_from_attnx_needs_model(tmp_path, exported):
    proto = onnx.load(str(exported))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    assert_user_error(invoke("parity", plain), "--model")
    assert invoke("parity", plain, "--model", TINY).exit_code == 0


def test_shape_the_model_rejects(tmp_path):
    assert_user_error(
        invoke("export", TINY, "-o", tmp_path / "m.onnx", "--input-shape", "1x5x16x16"), "rejects input shape"
    )
    assert not (tmp_path / "m.onnx").exists()


def test_fixed_size_model_rejects_other_size(tmp_path):
    assert_user_error(invoke("export", "vit_tiny", "-o", tmp_path / "m.onnx", "--input-shape", "1x3x48x48"), "fixed")


def test_op_that_cannot_be_exported(tmp_path):
    result = invoke("export", "tests.fixtures:unexportable_net", "-o", tmp_path / "m.onnx", "--input-shape", "1x3x8x8")
    assert_user_error(result, "linalg_svdvals", "head.spectral")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--opset", "12"], "opset 12 is not supported"),
        (["--target", "trt7"], "unknown target 'trt7'"),
        (["--input-shape", "1xthreex16"], "bad shape"),
        (["--exporter", "fx"], "unknown exporter 'fx'"),
        (["--config", "huge"], "no config 'huge'"),
        (["--weights", "/nonexistent/w.pt"], "weights file not found"),
    ],
)
def test_bad_export_options(args, fragment, tmp_path):
    assert_user_error(invoke("export", "se_resnet", "-o", tmp_path / "m.onnx", *args), fragment)


def test_bad_parity_inputs(exported, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 15, 16), dtype=np.float32))
    assert_user_error(invoke("parity", exported, "--model", TINY, "--inputs", tmp_path / "wrong.npy"), "axis 2")
    assert_user_error(invoke("parity", exported, "--model", TINY, "--inputs", tmp_path / "none.npz"),
                      "input file not found")  # fmt: skip
    assert_user_error(invoke("parity", exported, "--precision", "fp8"), "unknown precision policy")
    assert_user_error(invoke("parity", exported, "--batch", "0"), "bad --batch")


def test_build_writes_a_bundle(tmp_path):
    result = invoke("build", TINY, "-o", tmp_path / "bundle", "--backend", "ort", "--input-shape", "1x3x16x16")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["parity"]["passed"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--precision", "fp4"], "unknown precision 'fp4'"),
        (["--backend", "tpu"], "unknown backend 'tpu'"),
        (["--max-batch", "0"], "--max-batch"),
    ],
)
def test_bad_build_options(args, fragment, tmp_path):
    assert_user_error(invoke("build", TINY, "-o", tmp_path / "b", *args), fragment)
    assert not list(tmp_path.iterdir())


def test_parity_of_a_bundle_with_io_junit_and_layerwise(tmp_path):
    import xml.etree.ElementTree as ET

    bundle = tmp_path / "b"
    assert invoke("build", TINY, "-o", bundle, "--backend", "ort", "--input-shape", "1x3x16x16").exit_code == 0
    result = invoke("parity", bundle, "--save-io", tmp_path / "io.npz", "--junit", tmp_path / "j.xml",
                    "--layerwise", "--json", tmp_path / "p.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["candidate"].startswith("ort fp32 bundle") and data["layerwise"]["checks"]
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert int(root.get("tests", 0)) >= 2 and int(root.get("failures", 0)) == 0
    replay = invoke("parity", bundle, "--load-io", tmp_path / "io.npz", "--json", tmp_path / "r.json")
    assert replay.exit_code == 0, replay.output
    assert json.loads((tmp_path / "r.json").read_text())["input_source"] == "saved inputs (--load-io)"


def test_failing_parity_runs_the_layerwise_search(exported, tmp_path):
    broken = perturbed_copy(exported, tmp_path / "broken.onnx")
    result = invoke("parity", broken, "--model", TINY, "--json", tmp_path / "p.json")
    assert result.exit_code == 1
    assert "layerwise" in json.loads((tmp_path / "p.json").read_text())


def test_error_statistic_policy(exported, tmp_path):
    result = invoke("parity", exported, "--model", TINY, "--check-error-stat", "quantile", "--error-quantile", "0.9",
                    "--json", tmp_path / "p.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "p.json").read_text())["cases"][0]["outputs"][0]
    assert out["error_stat"]["stat"] == "quantile" and out["error_stat"]["passed"]
    assert_user_error(invoke("parity", exported, "--check-error-stat", "p42"), "unknown --check-error-stat")


def test_not_a_bundle_folder(tmp_path):
    assert_user_error(invoke("parity", tmp_path), "not an attnx bundle")


def test_bench_and_check_gate(tmp_path):
    bundle = tmp_path / "b"
    assert invoke("build", TINY, "-o", bundle, "--backend", "ort", "--input-shape", "1x3x16x16").exit_code == 0
    bench = invoke("bench", bundle, "--model", TINY, "--batch", "1,2", "--iterations", "10", "--warmup", "2",
                   "--json", tmp_path / "bench.json", "--markdown", tmp_path / "bench.md")  # fmt: skip
    assert bench.exit_code == 0, bench.output
    configs = json.loads((tmp_path / "bench.json").read_text())["configs"]
    assert {(c["target"], c["batch"]) for c in configs} >= {("torch eager", 1), ("ort fp32", 2)}
    assert invoke("parity", bundle, "--json", tmp_path / "p.json").exit_code == 0
    args = ["check", "--baseline", tmp_path / "base.json", "--parity", tmp_path / "p.json"]
    assert invoke(*args, "--update-baseline").exit_code == 0
    assert invoke(*args).exit_code == 0
    worse = json.loads((tmp_path / "p.json").read_text())
    worse["cases"][0]["outputs"][0]["cosine"] = 0.9  # an injected accuracy drop
    worse["cases"][0]["outputs"][0]["passed"] = False
    worse["cases"][0]["outputs"][0]["failures"] = ["cosine 0.900000 < 0.99999"]
    worse["cases"][0]["passed"] = worse["passed"] = False
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    failed = invoke("check", "--baseline", tmp_path / "base.json", "--parity", tmp_path / "worse.json")
    assert failed.exit_code == 1, failed.output


def test_bench_and_check_bad_input(tmp_path):
    assert_user_error(invoke("bench"), "give bundle folders")
    assert_user_error(invoke("check", "--baseline", tmp_path / "b.json"), "give fresh results")
    (tmp_path / "p.json").write_text("{}")
    assert_user_error(invoke("check", "--baseline", tmp_path / "missing.json", "--parity", tmp_path / "p.json"),
                      "not an attnx parity report")  # fmt: skip


def test_precision_command_writes_model_plan_and_table(exported, tmp_path):
    out = tmp_path / "int8.onnx"
    result = invoke("precision", exported, "-o", out, "--precision", "int8", "--calib", "source=synthetic",
                    "--calib", "count=8", "--calib", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "int8.plan.json").is_file() and (tmp_path / "int8.calibration.json").is_file()
    assert "SYNTHETIC" in result.output  # synthetic calibration data is flagged
    types = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= types
    assert_user_error(invoke("precision", exported, "-o", out, "--precision", "int4"), "unknown --precision")
    assert_user_error(invoke("precision", tmp_path / "nope.onnx", "-o", out, "--precision", "fp16"), "not found")


def test_int8_build_is_judged_on_held_out_calibration_data(tmp_path):
    bundle = tmp_path / "b"
    result = invoke("build", TINY, "-o", bundle, "--backend", "ort", "--input-shape", "1x3x16x16", "--precision",
                    "int8", "--calib", "source=synthetic", "--calib", "count=16",
                    "--calib", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert result.exit_code in (0, 1), result.output  # 1 = built but outside the int8 policy
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["files"]["calibration"] == "calibration.json" and manifest["files"]["reference"] == "reference.onnx"
    assert manifest["calibration"]["synthetic"] is True
    assert manifest["parity"]["input_source"].startswith("held-out samples recorded by the build")
    assert manifest["parity_inputs"]["kind"] == "held_out"
    assert manifest["parity_inputs"]["calibration"]["source"] == "synthetic"
    assert "check_inputs" not in manifest["build"]
    assert_user_error(invoke("build", TINY, "-o", tmp_path / "c", "--precision", "int8", "--calib", "sorce=x"),
                      "sorce")  # fmt: skip


def test_openvino_bundle_builds_and_runs(tmp_path):
    pytest.importorskip("openvino")
    bundle = tmp_path / "ov"
    result = invoke("build", TINY, "-o", bundle, "--backend", "openvino", "--input-shape", "1x3x16x16")
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["backend"] == "openvino" and manifest["parity"]["passed"]
    assert manifest["libraries"]["openvino"]
    assert invoke("parity", bundle).exit_code == 0
    assert_user_error(invoke("build", "ea_seg", "-o", tmp_path / "ea", "--backend", "openvino", "--plugins", "trt"),
                      "cannot run attnx custom ops")  # fmt: skip
