"""Layer-wise search against the true reference (issue 14, kind 5): PyTorch module outputs against the ONNX
tensors they map to; never "all tensors agree" while the outputs differ; an engine's exposed intermediates are
trusted only where they reproduce the engine's own outputs."""

import sys
from functools import partial

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import helper

from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner
from attnx.deploy.parity.compare import POLICIES
from attnx.deploy.parity.layerwise import layerwise_compare
from attnx.deploy.parity.layerwise_torch import layerwise_torch, node_module_path
from attnx.exporters.export import ExportOptions, export_onnx
from tests.helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests" / "cases"))

FP32 = POLICIES["fp32"]


@pytest.fixture(scope="module")
def baked_window(tmp_path_factory):
    """shifted_window_mask exported with --dynamic-hw by TorchScript without the dynamic-axis check: the
    attention mask of 16×16 is baked into the graph, which runs at 24×32 and computes other numbers."""
    import shifted_window_mask

    path = tmp_path_factory.mktemp("lw") / "m.onnx"
    export_onnx(shifted_window_mask.build(), path, ExportOptions(input_shape=(1, 3, 16, 16), dynamic_hw=True,
                                                                  exporter="torchscript", verify=False))  # fmt: skip
    return shifted_window_mask.build(), path


def _x(h, w, seed=0):
    return {"input": np.random.default_rng(seed).standard_normal((1, 3, h, w)).astype(np.float32)}


def test_baked_mask_divergence_is_located_against_pytorch(baked_window):
    model, path = baked_window
    feed = _x(24, 32)
    # The graph against itself (what the search did before) finds nothing: the export is faithfully wrong.
    assert layerwise_compare(path, path, feed, FP32, candidate_optimize="all").first_divergence is None
    report = layerwise_torch(model, path, feed, FP32)
    first = report.first_divergence
    assert first is not None and first.node == "block.proj" and first.op_type == "Linear"
    assert first.onnx_node.startswith("/block/proj/")
    assert report.last_agreeing.node == "block.qkv"  # stem, norm and qkv agree: the mask lies between
    assert not report.passed and report.outputs_agree is False
    text = report.summary()
    assert "module 'block.proj'" in text and "agree within" not in text
    assert any("'/block/Add' (Add)" in n for n in report.notes)  # the Add of the baked mask is named


def test_export_shape_agrees_everywhere(baked_window):
    model, path = baked_window
    report = layerwise_torch(model, path, _x(16, 16), FP32)
    assert report.passed and report.outputs_agree is True
    assert [c.node for c in report.checks] == ["stem", "block.norm", "block.qkv", "block.proj", "block", "head"]


def test_no_scope_means_no_mapping_and_says_the_outputs_differ(baked_window, tmp_path):
    model, path = baked_window
    proto = onnx.load(str(path))
    for i, node in enumerate(proto.graph.node):
        node.name = f"node_{i}"  # as the dynamo exporter writes them (no module scope)
    report = layerwise_torch(model, proto, _x(24, 32), FP32)
    assert not report.checks and not report.passed
    assert "no PyTorch module output" in report.summary() and "outputs differ" in report.summary()


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x) * 2.0  # root-scope node: maps to no module


def test_unmapped_tail_is_named_not_all_agree(tmp_path):
    path = tmp_path / "s.onnx"
    export_onnx(_Scaled().eval(), path, ExportOptions(input_shape=(1, 3, 8, 8), verify=False, simplify=False))
    proto = onnx.load(str(path))
    mul = next(n for n in proto.graph.node if n.op_type == "Mul")
    const = {i.name for i in proto.graph.initializer}
    scale = next(t for t in mul.input if t in const or not t.endswith("Conv_output_0"))
    for init in proto.graph.initializer:
        if init.name == scale:
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(2.1, dtype=np.float32), scale))
    for node in proto.graph.node:
        if scale in node.output and node.op_type == "Constant":
            node.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.array(2.1, dtype=np.float32)))
    report = layerwise_torch(_Scaled().eval(), proto, {"input": _x(8, 8)["input"]}, FP32)
    assert [c.node for c in report.checks] == ["conv"] and report.checks[0].passed
    assert report.first_divergence is None and report.outputs_agree is False and not report.passed
    assert "after the last mapped tensor" in report.summary()


def test_node_module_path():
    assert node_module_path(helper.make_node("Conv", [], [], name="/layer1/layer1.0/conv1/Conv")) == "layer1.0.conv1"
    assert node_module_path(helper.make_node("Add", [], [], name="/blocks.0/attn/Add_2")) == "blocks.0.attn"
    node = helper.make_node("Add", [], [], name="node_Add_3")
    assert node_module_path(node) is None
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'block', 'block.attn']")
    assert node_module_path(node) == "block.attn"


# --- engine intermediates: trusted only where they reproduce the engine's own outputs -----------------------


def _gated():
    from tests.deploy.parity.test_layerwise import gated_net

    return gated_net()


@pytest.fixture
def feed():
    return {"x": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}


def test_zeros_returned_for_an_exposed_intermediate_are_not_reported(feed):
    """OpenVINO returns zeros for some exposed intermediates (a MaxPool of an INT8 bundle) while computing the
    outputs right: that tensor does not reproduce the engine's outputs, so it is no divergence."""

    class Runner(OnnxrtRunner):
        def infer_with_outputs(self, f, names):
            values = super().infer_with_outputs(f, names)
            if "r1" in values:
                values["r1"] = np.zeros_like(values["r1"])
            return values

    report = layerwise_compare(_gated(), _gated(), feed, FP32, candidate_runner=partial(Runner, optimize=False))
    assert [c.tensor for c in report.untrusted] == ["r1"]
    assert report.first_divergence is None and "first divergence" not in report.summary()
    assert "not trusted" in report.summary() and not report.passed


def test_exposure_that_changes_the_outputs_is_said(feed):
    class Runner(OnnxrtRunner):
        def infer_with_outputs(self, f, names):
            values = super().infer_with_outputs(f, names)
            if names:  # the exposed run computes other outputs than the normal one
                values["y"] = values["y"] * 0.5
            return values

    report = layerwise_compare(_gated(), _gated(), feed, FP32, candidate_runner=partial(Runner, optimize=False))
    assert report.first_divergence is None and not report.passed
    assert "computes other final outputs when its intermediates are exposed" in report.summary()


def test_a_real_engine_divergence_is_still_found(feed):
    from tests.deploy.parity.test_layerwise import perturb_weight

    bad = perturb_weight(_gated(), "w2", 1.05)
    report = layerwise_compare(_gated(), bad, feed, FP32,
                               candidate_runner=partial(OnnxrtRunner, optimize=False))  # fmt: skip
    assert report.first_divergence.tensor == "c2" and report.first_divergence.trusted


def test_parity_cli_searches_against_pytorch(baked_window, tmp_path):
    import json

    from tests.helpers import invoke

    _, path = baked_window
    result = invoke("parity", path, "--model", "shifted_window_mask:build", "--input-shape", "1x3x24x32",
                    "--batch", "1", "--json", tmp_path / "p.json")  # fmt: skip
    assert result.exit_code == 1, result.output
    lw = json.loads((tmp_path / "p.json").read_text())["layerwise"]
    assert lw["reference_kind"] == "pytorch" and lw["first_divergence"]["node"] == "block.proj", lw["summary"]
