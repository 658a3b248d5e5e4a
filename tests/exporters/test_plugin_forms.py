"""Whole-model export in each plugin form (none / trt / auto) and fp32 ONNX Runtime parity for each."""

import onnx
import pytest

from attnx.core.errors import UserError
from attnx.deploy.apis.pipeline import export_model, prepare_model, run_parity
from attnx.deploy.parity.compare import POLICIES
from attnx.exporters.export import ExportOptions, choose_plugin_ops, read_metadata
from attnx.exporters.init import wake_zero_parameters

pytest.importorskip("onnxruntime_extensions")

# model -> the attnx op it contains in plugin form
MODELS = {"stn_classifier": "AffineGridSample", "ea_seg": "DoubleNorm"}


def attnx_nodes(path):
    return sorted(n.op_type for n in onnx.load(str(path)).graph.node if n.domain == "attnx")


@pytest.mark.parametrize(
    ("plugins", "target", "custom"),
    [("none", "trt10", False), ("trt", "trt10", True), ("auto", "trt8.6", True), ("auto", "ort", False)],
)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_plugin_forms_export_and_match_torch(name, plugins, target, custom, tmp_path):
    prepared = prepare_model(name)
    wake_zero_parameters(prepared.model)  # the STN's last layer starts at zero: make θ non-trivial
    shape = (2, *prepared.entry.sample_shape)
    result, report = export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=shape), target, plugins)
    assert attnx_nodes(result.path) == ([MODELS[name]] if custom else [])
    assert read_metadata(result.path)["attnx.plugins"] == plugins
    assert any(note.startswith(f"{MODELS[name]}: ") for note in report.notes), report.notes
    if custom:
        assert [r.op_type for r in report.plugins] == [MODELS[name]]
    parity = run_parity(prepared, result.path, POLICIES["fp32"], batches=[1, 3])
    assert parity.passed, [o.failures for c in parity.cases for o in c.outputs]
    assert max(o.max_abs for c in parity.cases for o in c.outputs) <= 1e-4


def test_auto_chooses_per_op_and_target():
    chosen, reasons = choose_plugin_ops("auto", "trt8.4")
    assert chosen == {"GridSample", "AffineGridSample", "DoubleNorm"}
    assert "predates" in reasons["GridSample"]
    chosen, reasons = choose_plugin_ops("auto", "trt10")
    assert chosen == {"AffineGridSample", "DoubleNorm"}
    assert "natively" in reasons["GridSample"]
    assert choose_plugin_ops("auto", "ort")[0] == frozenset()
    assert choose_plugin_ops("none", "trt8.4")[0] == frozenset()


def test_bad_plugin_requests(tmp_path):
    with pytest.raises(UserError, match="unknown --plugins 'all'"):
        choose_plugin_ops("all", "trt10")
    prepared = prepare_model("ea_seg")
    options = ExportOptions(input_shape=(1, 3, 64, 64), exporter="dynamo")
    with pytest.raises(UserError, match="needs --exporter torchscript"):
        export_model(prepared, tmp_path / "m.onnx", options, "trt10", "trt")
    assert not list(tmp_path.iterdir())
