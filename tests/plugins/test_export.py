"""PyTorch -> plugin-form ONNX -> onnx.checker -> ONNX Runtime (plugins/ort.py), and the error paths."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import attnx.exporters.ops as ops
from attnx.plugins.export_hooks import CUSTOM_OPSETS, torch_function
from attnx.plugins.registry import register_onnx_schemas
from attnx.plugins.spec import SpecError
from attnx.plugins.trt_onnx import to_trt_plugin_form
from tests.plugins.models import plugin_model

pytest.importorskip("onnxruntime_extensions")
from attnx.deploy.backends.onnxrt.session import make_session  # noqa: E402
from attnx.plugins.ort import to_ort_form  # noqa: E402

ALL = {"GridSample", "AffineGridSample", "DoubleNorm"}


class Tiny(torch.nn.Module):
    """An STN step, a sampling step and External Attention's normalisation, as zoo models call them."""

    def forward(self, x: torch.Tensor, grid: torch.Tensor, theta: torch.Tensor, attn: torch.Tensor):
        y = ops.grid_sample(x, grid, "bicubic", "reflection", True)
        z = ops.affine_grid_sample(x, theta, (5, 6), "bilinear", "border", False)
        w = ops.affine_grid_sample(x, theta, None, "nearest", "zeros", True)
        return y, z, w, ops.double_norm(attn, 1e-6)


def _inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 9, generator=g)
    grid = torch.rand(2, 4, 5, 2, generator=g) * 2.4 - 1.2
    theta = torch.eye(2, 3).expand(2, 2, 3) + 0.3 * torch.randn(2, 2, 3, generator=g)
    attn = torch.randn(2, 10, 4, generator=g) * 3
    return x, grid, theta, attn


def _export(path: Path, names: set[str] = ALL) -> onnx.ModelProto:
    with ops.plugin_ops(names), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Tiny(),
            _inputs(),
            str(path),
            dynamo=False,
            opset_version=17,
            custom_opsets=CUSTOM_OPSETS,
            input_names=["x", "grid", "theta", "attn"],
            output_names=["y", "z", "w", "a"],
        )
    return onnx.load(str(path))


def test_export_check_and_run_in_ort(tmp_path: Path) -> None:
    model = _export(tmp_path / "tiny.onnx")
    kinds = [(n.domain, n.op_type) for n in model.graph.node]
    assert kinds.count(("attnx", "AffineGridSample")) == 2
    assert ("attnx", "GridSample") in kinds and ("attnx", "DoubleNorm") in kinds
    assert not any(n.op_type in ("GridSample", "AffineGrid") and n.domain == "" for n in model.graph.node)
    register_onnx_schemas()
    onnx.checker.check_model(model, full_check=True)

    feeds = {k: v.numpy() for k, v in zip(["x", "grid", "theta", "attn"], _inputs())}
    got = make_session(model).run(None, feeds)
    want = Tiny()(*_inputs())
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), atol=1e-5, rtol=1e-5)


def test_only_named_ops_become_custom_nodes(tmp_path: Path) -> None:
    model = _export(tmp_path / "dn.onnx", {"DoubleNorm"})
    custom = [n.op_type for n in model.graph.node if n.domain == "attnx"]
    assert custom == ["DoubleNorm"]


def test_fp16_plugin_form_runs_with_fp32_compute() -> None:
    a = (np.random.default_rng(1).standard_normal((2, 40, 8)) * 4).astype(np.float16)
    m = plugin_model("DoubleNorm", {"eps": 1e-9}, [a])
    rewritten = to_ort_form(m)
    assert [n.op_type for n in rewritten.graph.node] == ["Cast", "attnx_DoubleNorm", "Cast"]
    out = make_session(m).run(None, {"attn": a})[0]
    assert out.dtype == np.float16
    want = ops.double_norm(torch.from_numpy(a.astype(np.float32))).numpy().astype(np.float16)
    np.testing.assert_array_equal(out, want)


# --- malformed nodes: a clear error at export, at ORT load and at TensorRT conversion ------------------


def test_export_errors() -> None:
    x = torch.zeros(1, 2, 5, 5)
    with pytest.raises(SpecError, match=r"attnx::GridSample \(node 'export'\): unsupported mode 'bilinar'"):
        torch_function("GridSample")(x, torch.zeros(1, 3, 3, 2), "bilinar", "zeros", False)
    with pytest.raises(SpecError, match="input 'grid' must be 4-D"):
        torch_function("GridSample")(x, torch.zeros(3, 3, 2), "bilinear", "zeros", False)
    with pytest.raises(SpecError, match="theta must be N x 2 x 3"):
        torch_function("AffineGridSample")(x, torch.zeros(1, 3, 3), None, "bilinear", "zeros", False)
    with pytest.raises(SpecError, match="input 'attn' must be 3-D"):
        torch_function("DoubleNorm")(x, 1e-9)
    with pytest.raises(SpecError, match="unknown attnx op"):
        torch_function("Softmax2")


def test_export_error_through_exporter_ops(tmp_path: Path) -> None:
    class Bad(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return ops.grid_sample(x, x[:, :2].permute(0, 2, 3, 1), "cubic", "zeros", False)

    with ops.plugin_ops({"GridSample"}), pytest.raises(SpecError, match="unsupported mode 'cubic'"):
        torch.onnx.export(
            Bad(),
            (torch.zeros(1, 2, 4, 4),),
            str(tmp_path / "bad.onnx"),
            dynamo=False,
            opset_version=17,
            custom_opsets=CUSTOM_OPSETS,
        )


MALFORMED = [
    ({"mode": "bilinear"}, [(2, 3, 5, 7), (2, 4, 6, 2)], "missing required attribute 'align_corners'"),
    ({"align_corners": 0}, [(3, 5, 7), (2, 4, 6, 2)], "input 'X' must be 4-D"),
    ({"align_corners": 0, "mode": "area"}, [(2, 3, 5, 7), (2, 4, 6, 2)], "unsupported mode 'area'"),
    ({"align_corners": 0}, [(2, 3, 5, 7), (2, 4, 6, 3)], "grid's last dimension must be 2"),
]


@pytest.mark.parametrize("attrs,shapes,message", MALFORMED, ids=["missing-attr", "rank", "mode", "grid-dim"])
def test_ort_load_errors(attrs: dict, shapes: list, message: str) -> None:
    m = plugin_model("GridSample", attrs, [np.zeros(s, np.float32) for s in shapes])
    with pytest.raises(SpecError, match=rf"attnx::GridSample \(node 'GridSample_0'\): {message}"):
        make_session(m)


@pytest.mark.parametrize("attrs,shapes,message", MALFORMED, ids=["missing-attr", "rank", "mode", "grid-dim"])
def test_trt_form_errors(attrs: dict, shapes: list, message: str) -> None:
    m = plugin_model("GridSample", attrs, [np.zeros(s, np.float32) for s in shapes])
    with pytest.raises(SpecError, match=message):
        to_trt_plugin_form(m)


def test_trt_plugin_form(tmp_path: Path) -> None:
    trt_model = to_trt_plugin_form(_export(tmp_path / "tiny.onnx"))
    nodes = [n for n in trt_model.graph.node if n.domain == "attnx"]
    assert sorted({n.op_type for n in nodes}) == ["AffineGridSamplePlugin", "DoubleNormPlugin", "GridSamplePlugin"]
    for n in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["plugin_namespace"] == b"attnx" and attrs["aot"] == 1
    affine = next(n for n in nodes if n.op_type == "AffineGridSamplePlugin")
    # Every attribute written out, in the order the TensorRT plugin declares them.
    assert [a.name for a in affine.attribute] == [
        "out_h",
        "out_w",
        "mode",
        "padding_mode",
        "align_corners",
        "plugin_namespace",
        "aot",
    ]
