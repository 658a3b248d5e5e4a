"""Shared fixtures: tiny exported models, a private calibration cache, small hand-built graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

_EXPORTS: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Every test calibrates into its own cache: never ~/.cache, never another test's tables."""
    root = tmp_path / "attnx-cache"
    monkeypatch.setenv("ATTNX_CACHE", str(root))
    return root / "calibration"


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory):
    """zoo_onnx(name) → path of the tiny zoo model exported once per session (opset 17, dynamic batch)."""
    folder = tmp_path_factory.mktemp("zoo")

    def get(name: str, plugins: str = "none") -> Path:
        key = f"{name}-{plugins}"
        if key not in _EXPORTS:
            from attnx.deploy.apis.pipeline import export_model, full_input_shape, prepare_model
            from attnx.exporters.export import ExportOptions

            prepared = prepare_model(name)
            opts = ExportOptions(input_shape=full_input_shape(prepared, None), dynamic_batch=True)
            target = "trt10" if plugins != "none" else "ort"
            result, _ = export_model(prepared, folder / f"{key}.onnx", opts, target=target, plugins=plugins)
            _EXPORTS[key] = result.path
        return _EXPORTS[key]

    return get


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """tests.fixtures:tiny_net (conv + sigmoid gate + linear head), 3×16×16, dynamic batch."""
    from attnx.deploy.apis.pipeline import export_model, prepare_model
    from attnx.exporters.export import ExportOptions

    out = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    result, _ = export_model(prepare_model("tests.fixtures:tiny_net"), out, ExportOptions(input_shape=(1, 3, 16, 16)))
    return result.path


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 17, domains=()) -> onnx.ModelProto:
    """A checked model from helper-made parts (IR 10: what ONNX Runtime 1.31 reads)."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, 1) for d in domains]]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    if not domains:
        onnx.checker.check_model(model)
    return model


def tensor(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None if shape is None else list(shape))


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def attention_model(seq: int = 16, dim: int = 8, seed: int = 0) -> onnx.ModelProto:
    """x → q, k, v projections → softmax(q·kᵀ·s) · v → projection: one single-head attention block."""
    rng = np.random.default_rng(seed)
    w = {n: const(n, rng.standard_normal((dim, dim)) / np.sqrt(dim)) for n in ("wq", "wk", "wv", "wo")}
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k_proj"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="v_proj"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="k_t"),
        helper.make_node("MatMul", ["q", "kt"], ["logits"], name="qk"),
        helper.make_node("Mul", ["logits", "scale"], ["scaled"], name="scale_mul"),
        helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["probs", "v"], ["ctx"], name="av"),
        helper.make_node("MatMul", ["ctx", "wo"], ["y"], name="out_proj"),
    ]
    inits = [*w.values(), const("scale", 1 / np.sqrt(dim))]
    return make_model(nodes, [tensor("x", ["N", seq, dim])], [tensor("y", ["N", seq, dim])], inits)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path
