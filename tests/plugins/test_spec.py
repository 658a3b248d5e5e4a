"""The specs, the registry, and the ONNX schemas derived from them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from attnx.plugins import spec as spec_mod
from attnx.plugins.registry import OPS, get, plugin_needed, register_onnx_schemas
from attnx.plugins.spec import SpecError
from tests.plugins.models import plugin_model


def test_registry() -> None:
    assert set(OPS) == {"GridSample", "AffineGridSample", "DoubleNorm"}
    for s in OPS.values():
        assert s.domain == "attnx" and s.version == 1
        assert s.trt_plugin_id == f"attnx::{s.name}Plugin"


def test_plugin_needed() -> None:
    assert plugin_needed("GridSample", (8, 4))
    assert not plugin_needed("GridSample", (8, 5))
    assert not plugin_needed("GridSample", (11, 4))
    assert plugin_needed("AffineGridSample", (11, 4))
    assert plugin_needed("DoubleNorm", (11, 4))
    with pytest.raises(SpecError, match="unknown attnx op 'Nope'"):
        plugin_needed("Nope", (10, 0))


def test_resolve_attrs() -> None:
    gs = get("GridSample")
    assert gs.resolve_attrs({"align_corners": True}) == {
        "mode": "bilinear",
        "padding_mode": "zeros",
        "align_corners": 1,
    }
    assert list(get("AffineGridSample").resolve_attrs({"align_corners": 0})) == [
        "out_h",
        "out_w",
        "mode",
        "padding_mode",
        "align_corners",
    ]
    cases = {
        "missing required attribute 'align_corners'": {},
        "unsupported mode 'bilinearr'; allowed: 'bilinear', 'nearest', 'bicubic'": {
            "align_corners": 0,
            "mode": "bilinearr",
        },
        "unsupported align_corners 2": {"align_corners": 2},
        "unknown attribute 'foo'": {"align_corners": 0, "foo": 1},
        "must be a string": {"align_corners": 0, "mode": 3},
    }
    for message, attrs in cases.items():
        with pytest.raises(SpecError, match=message):
            gs.resolve_attrs(attrs, "n0")
    with pytest.raises(SpecError, match="eps must be >= 0"):
        get("DoubleNorm").resolve_attrs({"eps": -1.0})
    with pytest.raises(SpecError, match="out_h must be >= 0"):
        get("AffineGridSample").resolve_attrs({"align_corners": 0, "out_h": -2})


def test_spec_error_is_one_line_user_error() -> None:
    from attnx.core.errors import UserError

    with pytest.raises(UserError) as e:
        get("GridSample").infer_shapes([(1, 2, 3), (1, 4, 4, 2)], {"align_corners": 0}, "gs_node")
    assert str(e.value) == "attnx::GridSample (node 'gs_node'): input 'X' must be 4-D (N, C, H, W), got rank 3"


def test_shape_functions() -> None:
    assert get("GridSample").infer_shapes([(2, 3, 5, 7), ("N", 4, 6, 2)], {"align_corners": 0}) == [(2, 3, 4, 6)]
    with pytest.raises(SpecError, match="grid's last dimension must be 2"):
        get("GridSample").infer_shapes([(2, 3, 5, 7), (2, 4, 6, 3)], {"align_corners": 0})
    ags = get("AffineGridSample")
    assert ags.infer_shapes([(2, 3, "H", 7), (2, 2, 3)], {"align_corners": 0}) == [(2, 3, "H", 7)]
    assert ags.infer_shapes([(2, 3, 5, 7), (2, 2, 3)], {"align_corners": 0, "out_h": 9}) == [(2, 3, 9, 7)]
    with pytest.raises(SpecError, match="theta must be N x 2 x 3"):
        ags.infer_shapes([(2, 3, 5, 7), (2, 3, 3)], {"align_corners": 0})


def _infer(model: onnx.ModelProto) -> list[int | str]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
    out = inferred.graph.output[0].type.tensor_type
    return [d.dim_value or d.dim_param for d in out.shape.dim]


def test_onnx_schemas_checker_and_shape_inference() -> None:
    register_onnx_schemas()
    register_onnx_schemas()  # idempotent
    x = np.zeros((2, 3, 5, 7), np.float32)
    m = plugin_model("AffineGridSample", {"align_corners": 1, "out_w": 11}, [x, np.zeros((2, 2, 3), np.float32)])
    onnx.checker.check_model(m, full_check=True)
    assert _infer(m) == [2, 3, 5, 11]
    # Symbolic dims pass through the spec's shape function.
    node = helper.make_node("GridSample", ["X", "grid"], ["Y"], domain="attnx", align_corners=0)
    types = {
        "X": helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, ["N", 3, 5, 7]),
        "grid": helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, ["N", "Ho", 6, 2]),
    }
    out = onnx.shape_inference.infer_node_outputs(
        onnx.defs.get_schema("GridSample", 1, "attnx"), node, types, opset_imports=[helper.make_opsetid("attnx", 1)]
    )["Y"].tensor_type
    assert [d.dim_value or d.dim_param for d in out.shape.dim] == ["N", 3, "Ho", 6]
    assert out.elem_type == onnx.TensorProto.FLOAT
    m = plugin_model("DoubleNorm", {}, [np.zeros((2, 9, 4), np.float16)])
    onnx.checker.check_model(m, full_check=True)
    assert _infer(m) == [2, 9, 4]


@pytest.mark.parametrize(
    "attrs,shapes,message",
    [
        ({"mode": "bilinear"}, [(2, 3, 5, 7), (2, 4, 6, 2)], "Required attribute 'align_corners' is missing"),
        ({"align_corners": 0}, [(3, 5, 7), (2, 4, 6, 2)], "input 'X' must be 4-D"),
        ({"align_corners": 0, "mode": "trilinear"}, [(2, 3, 5, 7), (2, 4, 6, 2)], "unsupported mode 'trilinear'"),
    ],
)
def test_onnx_rejects_malformed_nodes(attrs: dict, shapes: list, message: str) -> None:
    register_onnx_schemas()
    m = plugin_model("GridSample", attrs, [np.zeros(s, np.float32) for s in shapes])
    with pytest.raises(Exception, match=message):
        onnx.checker.check_model(m, full_check=True)


def test_int_input_type_rejected() -> None:
    register_onnx_schemas()
    m = plugin_model("DoubleNorm", {}, [np.zeros((2, 9, 4), np.int32)])
    with pytest.raises(Exception, match="not allowed"):
        onnx.shape_inference.infer_shapes(m, strict_mode=True)


def test_importing_plugins_is_light() -> None:
    code = (
        "import sys, plugins, attnx.plugins.registry, attnx.deploy.tools.plugin_readme; attnx.plugins.registry.OPS; "
        "heavy = [m for m in ('onnx', 'onnxruntime', 'torch', 'triton', 'tensorrt') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_schema_is_built_from_spec() -> None:
    s = spec_mod.onnx_schema(get("AffineGridSample"))
    assert [i.name for i in s.inputs] == ["X", "theta"]
    assert s.attributes["align_corners"].required
    assert helper.get_attribute_value(s.attributes["mode"].default_value) == b"bilinear"
