"""The cases of issue 14 (tests/cases/*.py, copies of ../shared/cases): each kind of fault has its right outcome
(a verified dynamic export, a clear refusal, or a correct FP16 bundle), and a model that makes ONNX Runtime
fail at run time gives one line and exit 2 from every command, never a traceback."""

import onnx
import pytest
from typer.testing import CliRunner

from attnx.deploy.apis.pipeline import prepare_model
from attnx.deploy.cli.main import app
from attnx.exporters.export import ExportOptions, export_onnx, read_metadata

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert "Traceback" not in result.output, result.output
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_a_baked_mask_is_refused_naming_the_node_and_the_fix(tmp_path):
    out = tmp_path / "m.onnx"
    result = invoke("export", "tests.cases.shifted_window_mask:build", "-o", out, "--input-shape", "1x3x16x16",
                    "--dynamic-hw")  # fmt: skip
    assert_one_line_error(result, "torchscript", "dynamo", "Reshape", "in module 'block'", "keeps a size fixed",
                          "static shape")  # fmt: skip
    assert not out.exists()  # a refused graph is never written


def test_a_baked_token_count_falls_back_to_dynamo_which_is_dynamic(tmp_path):
    out = tmp_path / "m.onnx"
    result = invoke("export", "tests.cases.pixel_mhsa:build", "-o", out, "--input-shape", "1x3x16x16", "--dynamic-hw")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "kept dynamo" in text and "torchscript refused" in text and "in module 'attn.mha'" in text
    assert read_metadata(out)["attnx.checked_shapes"].count("x3x") == 2
    result = invoke("parity", out, "--model", "tests.cases.pixel_mhsa:build", "--input-shape", "1x3x24x40")
    assert result.exit_code == 0, result.output
    result = invoke("parity", out, "--model", "tests.cases.pixel_mhsa:build")  # dynamic H/W: two sizes by default
    assert result.exit_code == 0 and "16x16 batch" in result.output and "24x20 batch" in result.output, result.output


def test_an_unexportable_op_keeps_its_whole_reason_the_module_and_the_option_that_works(tmp_path):
    result = invoke("export", "tests.cases.pyramid_pool_gate:build", "-o", tmp_path / "m.onnx", "--input-shape",
                    "1x3x20x20", "--exporter", "torchscript")  # fmt: skip
    assert_one_line_error(result, "aten::adaptive_avg_pool2d", "in module 'pools.1'",
                          "output size that are not factor of input size.", "--exporter dynamo exports it")  # fmt: skip
    result = invoke("export", "tests.cases.pyramid_pool_gate:build", "-o", tmp_path / "m.onnx", "--input-shape",
                    "1x3x20x20")  # fmt: skip
    assert result.exit_code == 0 and "kept dynamo" in result.output, result.output
    assert result.stderr.strip() == ""  # dynamo's chatter stays off stderr


def test_input_shape_alone_is_enough_for_run_and_calibration(tmp_path):
    result = invoke("run", "tests.cases.coarse_spatial_gate:build", "-o", tmp_path / "out", "--input-shape",
                    "1x3x32x32", "--dynamic-hw", "--precisions", "")  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("build", tmp_path / "out" / "model.onnx", "-o", tmp_path / "b", "--precision", "int8",
                    "--backend", "ort", "--input-shape", "1x3x32x32", "--calib", "count=8")  # fmt: skip
    assert result.exit_code in (0, 1), result.output  # built (its parity verdict is its own business)
    assert "pass a calibration input_shape" not in result.output


def test_fp16_of_a_dynamic_graph_with_shape_arithmetic(tmp_path):
    out = tmp_path / "m.onnx"
    result = invoke("export", "tests.cases.energy_attention:build", "-o", out, "--input-shape", "1x3x16x16",
                    "--dynamic-hw")  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("build", out, "-o", tmp_path / "b", "--precision", "fp16", "--backend", "ort", "--input-shape",
                    "1x3x16x16", "--model", "tests.cases.energy_attention:build")  # fmt: skip
    assert result.exit_code == 0, result.output
    baked = onnx.load(str(next((tmp_path / "b").glob("*.onnx"))))
    onnx.checker.check_model(baked)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A graph that claims dynamic H/W but fails in ONNX Runtime at any other size (exported without the check)."""
    folder = tmp_path_factory.mktemp("broken")
    prepared = prepare_model("tests.cases.shifted_window_mask:build")
    options = ExportOptions(input_shape=(1, 3, 16, 16), dynamic_hw=True, exporter="torchscript", verify=False)
    export_onnx(prepared.model, folder / "m.onnx", options, metadata=prepared.metadata())
    return folder / "m.onnx"


def test_every_command_reports_an_onnx_runtime_failure_in_one_line(broken, tmp_path):
    model = ("--model", "tests.cases.shifted_window_mask:build")
    assert_one_line_error(invoke("parity", broken, *model, "--input-shape", "1x3x20x20"),
                          "ONNX Runtime failed running node", "(Reshape)", "requested shape")  # fmt: skip
    assert_one_line_error(invoke("build", broken, "-o", tmp_path / "b", "--backend", "ort", "--input-shape",
                                 "1x3x20x20", *model), "(Reshape)")  # fmt: skip
    assert_one_line_error(invoke("precision", broken, "-o", tmp_path / "p.onnx", "--precision", "int8",
                                 "--input-shape", "1x3x20x20", "--calib", "count=4"), "(Reshape)")  # fmt: skip
    built = invoke("build", broken, "-o", tmp_path / "ok", "--backend", "ort", "--input-shape", "1x3x16x16", *model)
    assert built.exit_code == 0, built.output
    assert_one_line_error(invoke("bench", tmp_path / "ok", "--no-torch", "--iterations", "1", "--warmup", "0",
                                 "--input-shape", "1x3x20x20"), "(Reshape)")  # fmt: skip
    assert_one_line_error(invoke("parity", tmp_path / "ok", *model, "--seeded", "--input-shape", "1x3x20x20"),
                          "(Reshape)")  # fmt: skip
    assert_one_line_error(invoke("export", "tests.cases.shifted_window_mask:build", "-o", tmp_path / "e.onnx",
                                 "--input-shape", "1x3x16x16", "--dynamic-hw", "--exporter", "torchscript"),
                          "(Reshape)")  # fmt: skip
    assert_one_line_error(invoke("run", "tests.cases.shifted_window_mask:build", "-o", tmp_path / "r",
                                 "--input-shape", "1x3x16x16", "--dynamic-hw", "--exporter", "torchscript"),
                          "(Reshape)")  # fmt: skip
