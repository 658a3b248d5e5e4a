"""The runner interface: declared capabilities, the one ORT session factory, pooled runners, Engine on top."""

import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from attnx.core.errors import UserError
from attnx.deploy.backends.base import CapabilityError, TensorSpec
from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner
from attnx.deploy.backends.onnxrt.session import make_session
from attnx.deploy.backends.torch.runner import TorchRunner


def relu_net() -> onnx.ModelProto:
    """x → Relu (r) → Neg (y)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Neg", ["r"], ["y"], name="neg")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_capability_not_declared_is_a_clear_error():
    import torch

    runner = TorchRunner(torch.nn.ReLU(), [TensorSpec("x", np.dtype("float32"), (None, 4))], ["y"])
    assert not runner.capabilities.mark_outputs
    with pytest.raises(CapabilityError, match="torch backend cannot expose intermediate tensors"):
        runner.infer_with_outputs({"x": np.zeros((1, 4), np.float32)}, ["r"])
    with pytest.raises(CapabilityError, match="time runs on the device"):
        runner.infer_timed({"x": np.zeros((1, 4), np.float32)})
    x = np.array([[-1, 2, -3, 4]], np.float32)
    np.testing.assert_array_equal(runner.infer({"x": x})["y"], np.maximum(x, 0))


def test_onnxrt_runner_takes_bytes_pools_sessions_and_marks_outputs(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    with OnnxrtRunner(relu_net().SerializeToString(), pool_size=2) as runner:
        assert runner.capabilities.mark_outputs
        assert [s.name for s in runner.input_specs()] == ["x"] and runner.output_names() == ["y"]
        assert runner.input_specs()[0].is_dynamic(0)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(5):
                    np.testing.assert_array_equal(runner.infer({"x": x})["y"], -np.maximum(x, 0))
            except BaseException as exc:  # re-raised in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        values = runner.infer_with_outputs({"x": x}, ["r"])
        assert set(values) == {"y", "r"}
        np.testing.assert_array_equal(values["r"], np.maximum(x, 0))
        with pytest.raises(UserError, match="rejects the inputs"):
            runner.infer_with_outputs({"x": np.zeros((3, 5), np.float32)}, ["r"])
    with pytest.raises(UserError, match="ONNX file not found"), OnnxrtRunner(tmp_path / "missing.onnx"):
        pass


def test_session_factory_options_and_errors(tmp_path):
    import onnxruntime as ort

    session = make_session(relu_net(), threads=1, optimize=False,
                           session_config={"session.x64quantprecision": "1"})  # fmt: skip
    assert [o.name for o in session.get_outputs()] == ["y"]
    # U8U8: ORT switches INT8 kernels while optimising, so the factory keeps optimisation on
    assert session.get_session_options().graph_optimization_level != ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = make_session(relu_net(), optimize=False)
    assert plain.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    optimized = tmp_path / "opt.onnx"
    make_session(relu_net(), optimize="extended", optimized_path=optimized)
    assert onnx.load(str(optimized)).graph.output[0].name == "y"
    with pytest.raises(UserError, match="unknown ORT optimisation level 'fast'"):
        make_session(relu_net(), optimize="fast")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(UserError, match=r"cannot load .*bad.onnx: ONNX Runtime"):
        make_session(bad, custom_ops=False)


def test_engine_runs_through_its_public_runner(tmp_path):
    from attnx.deploy.apis.build import io_specs
    from attnx.deploy.bundle.engine import Engine
    from attnx.deploy.bundle.manifest import BundleWriter, Manifest

    model = relu_net()
    inputs, outputs = io_specs(model, 4, None)
    with BundleWriter(tmp_path / "b") as writer:
        onnx.save(model, str(writer.path("model.onnx")))
        onnx.save(model, str(writer.path("engine.onnx")))
        bundle = writer.commit(
            Manifest(
                backend="ort",
                precision="fp32",
                source={},
                opset=17,
                inputs=inputs,
                outputs=outputs,
                files={"onnx": "model.onnx", "engine": "engine.onnx"},
            )
        )
    x = np.ones((2, 4), np.float32)
    with Engine.load(bundle, pool_size=2) as engine:
        assert isinstance(engine.runner, OnnxrtRunner) and not engine.runner.capabilities.device_tensors
        assert engine.info["kernels"] == "float kernels"
        np.testing.assert_array_equal(engine(x)["y"], -x)
        assert set(engine.runner.infer_with_outputs({"x": x}, ["r"])) == {"y", "r"}
