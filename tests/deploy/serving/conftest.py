"""Bundles and running servers for the serving tests.

``tiny`` is built by ``build_bundle`` from the tiny_net fixture (one FP32 image input, batch axis 0).
``multi`` (FP32 + INT64 inputs and outputs) and ``static`` (fixed batch of 2) are small hand-written ONNX
graphs put into bundles with the bundle writer; ORT runs the ONNX itself as their engine.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from attnx.deploy.apis.build import BuildOptions, build_bundle, io_specs
from attnx.deploy.bundle.manifest import BundleWriter, Manifest, cpu_device, library_versions


def write_onnx_bundle(model: onnx.ModelProto, dest: Path) -> Path:
    """A CPU ORT bundle whose engine is ``model`` as it is (no optimisation pass)."""
    with BundleWriter(dest) as writer:
        onnx.save(model, str(writer.path("model.onnx")))
        onnx.save(model, str(writer.path("engine.onnx")))
        inputs, outputs = io_specs(model, max_batch=8, opt_shape=None)
        manifest = Manifest(
            backend="ort", precision="fp32", source={"model": model.graph.name, "reference": "onnxruntime fp32"},
            opset=17, inputs=inputs, outputs=outputs, files={"onnx": "model.onnx", "engine": "engine.onnx"},
            libraries=library_versions(), device=cpu_device(), build={"providers": ["CPUExecutionProvider"]},
        )  # fmt: skip
        return writer.commit(manifest)


def multi_model() -> onnx.ModelProto:
    """y = 2x + float(k), z = k + 1 over a batch axis: two inputs, two outputs, FP32 and INT64."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    z = helper.make_tensor_value_info("z", TensorProto.INT64, ["batch", 4])
    consts = [
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x2", "kf"], ["y"]),
        helper.make_node("Add", ["k", "one"], ["z"]),
    ]
    graph = helper.make_graph(nodes, "multi", [x, k], [y, z], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def static_model() -> onnx.ModelProto:
    """y = x + 1 with a fixed shape [2, 3]: no batch axis, so no batching."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "static", [x], [y], [one])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serving-bundles")
    options = BuildOptions(backend="ort", precision="fp32", input_shape=(1, 3, 16, 16))
    tiny = build_bundle("tests.fixtures:tiny_net", root / "tiny", options).bundle
    return {
        "tiny": tiny,
        "multi": write_onnx_bundle(multi_model(), root / "multi"),
        "static": write_onnx_bundle(static_model(), root / "static"),
    }


@contextlib.contextmanager
def running_server(bundle_args: list[str], **options: Any) -> Iterator[tuple[str, Any]]:
    """A server on 127.0.0.1 (a free port) in a background thread; yields ("127.0.0.1:PORT", server)."""
    from attnx.deploy.serving.cli import bind, make_server

    server = make_server(bundle_args, **options)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def expected(bundle: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs computed in-process by the Engine, the reference every served response is checked against."""
    from attnx.deploy.bundle.engine import Engine

    with Engine.load(bundle) as engine:
        return engine(feed)
