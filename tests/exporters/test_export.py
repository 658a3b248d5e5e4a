"""Export options, weights, op reports, error messages and atomic writes, on a small fixture model."""

import json

import numpy as np
import onnx
import pytest
import torch

from attnx.core.errors import UserError
from attnx.deploy.apis.pipeline import export_model, prepare_from_onnx, prepare_model, run_parity
from attnx.deploy.parity.compare import POLICIES
from attnx.exporters.export import SUPPORTED_OPSETS, ExportOptions, export_onnx, read_metadata
from attnx.exporters.registry import canonical_name, check_name_from_file, get_entry, is_zoo_name, resolve_model, zoo
from tests.fixtures import tiny_net

SHAPE = (1, 3, 16, 16)


@pytest.mark.parametrize("opset", SUPPORTED_OPSETS)
def test_every_supported_opset_exports_and_matches(opset, tmp_path):
    prepared = prepare_model("tests.fixtures:tiny_net")
    result, _ = export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=SHAPE, opset=opset))
    assert result.opset == opset
    proto = onnx.load(str(result.path))
    onnx.checker.check_model(proto)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert run_parity(prepared, result.path, POLICIES["fp32"], input_shape=SHAPE).passed


@pytest.mark.parametrize("opset", [15, 24])
def test_unsupported_opset_is_a_user_error(opset, tmp_path):
    with pytest.raises(UserError, match=f"opset {opset} is not supported"):
        export_onnx(tiny_net(), tmp_path / "m.onnx", ExportOptions(input_shape=SHAPE, opset=opset))


def test_static_batch_export_has_fixed_batch(tmp_path):
    prepared = prepare_model("tests.fixtures:tiny_net")
    options = ExportOptions(input_shape=(2, 3, 16, 16), dynamic_batch=False)
    result, _ = export_model(prepared, tmp_path / "m.onnx", options)
    dim0 = onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_value == 2
    report = run_parity(prepared, result.path, POLICIES["fp32"], batches=[1, 3])
    assert [c.label for c in report.cases] == ["batch 2"]  # a static model runs only its own batch


def test_dynamic_hw_runs_other_sizes(tmp_path):
    prepared = prepare_model("tests.fixtures:tiny_net")
    result, _ = export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=SHAPE, dynamic_hw=True))
    for shape in [(1, 3, 9, 23), (2, 3, 40, 12)]:
        assert run_parity(prepared, result.path, POLICIES["fp32"], batches=[shape[0]], input_shape=shape).passed


@pytest.mark.slow
def test_dynamo_exporter(tmp_path):
    prepared = prepare_model("cbam_resnet")
    entry = prepared.entry
    options = ExportOptions(input_shape=(1, *entry.sample_shape), exporter="dynamo", opset=18)
    result, report = export_model(prepared, tmp_path / "m.onnx", options)
    assert result.exporter == "dynamo" and report.node_count > 0
    assert run_parity(prepared, result.path, POLICIES["fp32"], batches=[1, 3]).passed


def test_metadata_lets_parity_rebuild_the_reference(tmp_path):
    prepared = prepare_model("eca_resnet")
    result, _ = export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=(1, 3, 64, 64)))
    meta = read_metadata(result.path)
    assert meta["attnx.model"] == "eca_resnet"
    rebuilt = prepare_from_onnx(result.path, None, None, None)
    assert rebuilt.spec == "eca_resnet"
    assert run_parity(rebuilt, result.path, POLICIES["fp32"]).passed


def test_op_report_is_saved_beside_the_model(tmp_path):
    prepared = prepare_model("vit_tiny")
    result, report = export_model(prepared, tmp_path / "vit.onnx", ExportOptions(input_shape=(1, 3, 32, 32)), "trt8.6")
    data = json.loads((tmp_path / "vit.report.json").read_text())
    assert data["target"] == "trt8.6" and data["node_count"] == report.node_count
    hist = {r["op_type"]: r["count"] for r in data["ops"]}
    assert hist["Softmax"] == 4  # one per transformer block (tiny: depth 4)
    assert sum(hist.values()) == len(onnx.load(str(result.path)).graph.node)
    assert all(r["status"] in {"ok", "restricted", "unsupported", "plugin"} for r in data["ops"])


def test_op_report_flags_opset_beyond_target(tmp_path):
    prepared = prepare_model("tests.fixtures:tiny_net")
    _, report = export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=SHAPE, opset=20), "trt8.6")
    assert report.blocking, "TensorRT 8.6 parses up to opset 17: an opset-20 model must be flagged"


def test_unexportable_op_names_module_and_op(tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(UserError) as info:
        export_model(prepare_model("tests.fixtures:unexportable_net"), out, ExportOptions(input_shape=(1, 3, 8, 8)))
    msg = str(info.value)
    assert "linalg_svdvals" in msg and "head.spectral" in msg and "_SpectralHead" in msg
    assert not out.exists() and not list(tmp_path.iterdir()), "nothing half-written may remain"


def test_rejected_shape_is_a_user_error(tmp_path):
    prepared = prepare_model("tests.fixtures:tiny_net")
    with pytest.raises(UserError, match="rejects input shape 1x5x16x16"):
        export_model(prepared, tmp_path / "m.onnx", ExportOptions(input_shape=(1, 5, 16, 16)))


def test_weights_round_trip_safetensors_and_torch(tmp_path):
    from safetensors.torch import save_file

    model = tiny_net()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pt")
    x = torch.randn(2, 3, 16, 16)
    for name in ("w.safetensors", "w.pt"):
        loaded = prepare_model("tests.fixtures:tiny_net", weights=tmp_path / name).model
        assert torch.allclose(loaded(x), model(x))


def test_bad_weights_are_user_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or not a checkpoint"):
        prepare_model("tests.fixtures:tiny_net", weights=tmp_path / "junk.pt")
    with pytest.raises(UserError, match="weights file not found"):
        prepare_model("tests.fixtures:tiny_net", weights=tmp_path / "missing.pt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="do not fit the model"):
        prepare_model("tests.fixtures:tiny_net", weights=tmp_path / "other.pt")


def test_model_specs_resolve():
    assert resolve_model("seresnet").entry.name == "seresnet"
    assert type(resolve_model("tests.fixtures:tiny_net").model).__name__ == "TinyNet"
    with pytest.raises(UserError, match="did you mean 'cbam_resnet'"):
        resolve_model("cbam_resnt")
    with pytest.raises(UserError, match="not a torch.nn.Module"):
        resolve_model("tests.fixtures:not_a_module")
    with pytest.raises(UserError, match="cannot import"):
        resolve_model("no_such_pkg.mod:fn")
    with pytest.raises(UserError, match="has no config 'huge'"):
        resolve_model("se_resnet", config="huge")


OLD_NAMES = {
    "se_resnet": "seresnet", "eca_resnet": "ecaresnet", "ca_resnet": "coordatt_resnet", "psa_resnet": "epsanet",
    "scconv_resnet": "scnet", "ea_seg": "external_attention_seg", "ca_c2f_neck": "coordatt_c2f_neck",
}  # fmt: skip


@pytest.mark.parametrize("old,new", sorted(OLD_NAMES.items()))
def test_old_zoo_names_resolve_to_the_same_builder(old, new):
    entries = zoo()
    assert new in list(entries) and old not in list(entries)  # listed once, by the primary name
    assert old in entries and entries[old] is entries[new] and old in entries[new].aliases
    assert get_entry(old) is get_entry(new) and canonical_name(old) == new and is_zoo_name(old)
    check_name_from_file(old, "model.onnx metadata")  # files written by older versions still resolve
    resolved = resolve_model(old)
    assert resolved.entry is entries[new] and resolved.spec == old
    assert resolved.sample_shape == entries[new].sample_shape
    assert entries[new].input_shape_for(None, batch=2) == (2, *entries[new].sample_shape)


def test_unknown_name_suggests_primary_names_and_aliases():
    with pytest.raises(UserError, match="did you mean 'seresnet'"):
        resolve_model("seresnt")
    with pytest.raises(UserError, match="unknown model"):
        canonical_name("no_such_model")


def test_hub_specs_need_their_package():
    pytest.importorskip("numpy")
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install timm"):
            resolve_model("timm:resnet18")
    else:
        assert resolve_model("timm:resnet18").model is not None


def test_inputs_from_files(tmp_path):
    from attnx.deploy.backends.base import TensorSpec
    from attnx.deploy.parity.inputs import load_inputs

    spec = TensorSpec("input", np.dtype(np.float32), ("batch", 3, 16, 16))
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 16, 16)))
    assert load_inputs(tmp_path / "x.npy", [spec])["input"].dtype == np.float32
    np.savez(tmp_path / "wrong.npz", other=np.zeros((2, 3, 16, 16)))
    with pytest.raises(UserError, match="lacks the model input"):
        load_inputs(tmp_path / "wrong.npz", [spec])
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 15, 16)))
    with pytest.raises(UserError, match="axis 2 of the model's input is fixed at 16"):
        load_inputs(tmp_path / "bad.npy", [spec])
