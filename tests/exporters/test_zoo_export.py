"""Every zoo model: forward shapes, export through the dynamic batch axis, and fp32 ONNX Runtime parity.

Issue bar: max abs error ≤ 1e-4 on seeded inputs at batch 1 and 3.
"""

import numpy as np
import pytest
import torch

from attnx.deploy.apis.pipeline import export_model, prepare_model, run_parity
from attnx.deploy.parity.compare import POLICIES
from attnx.exporters.export import ExportOptions
from attnx.exporters.init import wake_zero_parameters
from attnx.exporters.registry import zoo

MODELS = sorted(zoo())
MAX_ABS = 1e-4


def test_zoo_covers_every_family_the_issue_names():
    families = {
        "seresnet", "cbam_resnet", "bam_resnet", "ecaresnet", "coordatt_resnet", "epsanet", "scnet",
        "danet_seg", "external_attention_seg", "stn_classifier", "vit_tiny", "mobilevitv2", "rest", "coordatt_c2f_neck",
    }  # fmt: skip
    assert families <= set(MODELS), f"missing: {families - set(MODELS)}"


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_follow_the_batch(name):
    entry = zoo()[name]
    model = entry.build().eval()
    with torch.no_grad():
        outs = [model(torch.randn(b, *entry.sample_shape)) for b in (1, 3)]
    for b, out in zip((1, 3), outs):
        tensors = out if isinstance(out, (tuple, list)) else [out]
        assert all(t.shape[0] == b and torch.isfinite(t).all() for t in tensors)


@pytest.mark.parametrize("name", MODELS)
def test_export_and_ort_parity(name, tmp_path):
    entry = zoo()[name]
    prepared = prepare_model(name)
    wake_zero_parameters(prepared.model)  # exercise branches whose gates start at zero
    options = ExportOptions(input_shape=(2, *entry.sample_shape), dynamic_batch=True, dynamic_hw=entry.dynamic_hw)
    result, report = export_model(prepared, tmp_path / f"{name}.onnx", options)
    assert result.path.is_file() and report.node_count > 0
    assert (tmp_path / f"{name}.report.json").is_file()

    parity = run_parity(prepared, result.path, POLICIES["fp32"], batches=[1, 3])
    labels = [c.label for c in parity.cases]
    if entry.dynamic_hw:  # a dynamic H/W is a claim: parity checks the export size and at least one other
        hw = "x".join(map(str, entry.sample_shape))
        assert labels[:2] == [f"{hw} batch 1", f"{hw} batch 3"] and len(labels) >= 4, labels
        assert len({label.split()[0] for label in labels}) >= 2, labels
    else:
        assert labels == ["batch 1", "batch 3"]
    for case in parity.cases:
        for out in case.outputs:
            assert out.max_abs <= MAX_ABS, f"{name} {case.label} {out.name}: max abs {out.max_abs:.2e}"
    assert parity.passed, [o.failures for c in parity.cases for o in c.outputs]

    if entry.dynamic_hw:  # the same file at another spatial size
        c, h, w = entry.sample_shape
        other = run_parity(prepared, result.path, POLICIES["fp32"], batches=[2], input_shape=(2, c, h + 32, w + 64))
        assert other.passed, [o.failures for c in other.cases for o in c.outputs]
        assert other.cases[0].input_shapes["input"] == (2, c, h + 32, w + 64)


def test_seeded_inputs_are_reproducible(tmp_path):
    from attnx.deploy.backends.base import TensorSpec
    from attnx.deploy.parity.inputs import seeded_inputs

    spec = TensorSpec("input", np.dtype(np.float32), ("batch", 3, 8, 8))
    a = seeded_inputs([spec], {"input": (2, 3, 8, 8)}, seed=7)["input"]
    b = seeded_inputs([spec], {"input": (2, 3, 8, 8)}, seed=7)["input"]
    c = seeded_inputs([spec], {"input": (2, 3, 8, 8)}, seed=8)["input"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
