"""TensorRT builds (attnx/deploy/backends/tensorrt/builder.py).

Without a GPU: option validation, profiles, atomic files, and the whole build flow against fakes of
tensorrt and cuda-python (tests/fakes/tensorrt.py): what reaches the builder config, parser errors
named by node, timing-cache reuse, the attnx plugin rewrite, and a fake plan that the TensorRT runtime
then loads from a bundle. The ``gpu`` tests build real engines for zoo models (fp32 and fp16-baked)
and compare them with ONNX Runtime; they skip here with the reason.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from attnx.core.device import gpu_status
from attnx.core.errors import UserError
from attnx.deploy.apis.build import io_specs
from attnx.deploy.backends.tensorrt.builder import (
    TrtBuildOptions,
    atomic_write,
    build_trt_engine,
    match_network_inputs,
    profile_shapes,
)
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import BundleWriter, IOSpec, Manifest
from tests.fakes.tensorrt import CACHE_MAGIC, FAKE_STATE, FakeBuilder, FakeCudart, fake_tensorrt, installed


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Any:
    with installed(monkeypatch) as cud:
        yield cud


def tiny_onnx(path: Path, op: str = "Relu", batch: str | int = "batch") -> Path:
    node = helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}_1")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 4, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def specs(path: Path, max_batch: int = 8) -> tuple[list[IOSpec], list[IOSpec]]:
    return io_specs(onnx.load(str(path)), max_batch, None)


# -- options -----------------------------------------------------------------------------------------------


def test_default_options() -> None:
    opts = TrtBuildOptions.from_dict({})
    assert opts == TrtBuildOptions()
    assert json.loads(json.dumps(opts.to_dict()))["hardware_compatibility"] == "none"


def test_options_are_normalised(tmp_path: Path) -> None:
    lib = tmp_path / "libp.so"
    lib.write_bytes(b"")
    opts = TrtBuildOptions.from_dict(
        {
            "workspace_mib": 512,
            "timing_cache": str(tmp_path / "c" / "trt.cache"),
            "optimization_level": 0,
            "version_compatible": True,
            "exclude_lean_runtime": True,
            "hardware_compatibility": "Ampere-Plus",
            "plugin_library": str(lib),
            "builder_threads": 4,
        }
    )
    assert opts.hardware_compatibility == "ampere+"
    assert opts.plugin_libraries == (lib.resolve(),) and opts.optimization_level == 0
    assert opts.timing_cache == tmp_path / "c" / "trt.cache"
    assert TrtBuildOptions.from_dict({"hardware_compatibility": "same_compute_capability"}).hardware_compatibility == (
        "same_compute_capability"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"workspace": 10}, r"unknown TensorRT option 'workspace' \(did you mean workspace_mib\?\)"),
        ({"workspace_mib": 0}, "workspace_mib must be a positive integer, got 0"),
        ({"workspace_mib": "1G"}, "workspace_mib must be a positive integer, got '1G'"),
        ({"workspace_mib": True}, "workspace_mib must be a positive integer, got True"),
        ({"optimization_level": 6}, "optimization_level must be an integer 0–5, got 6"),
        ({"optimization_level": -1}, "optimization_level must be an integer 0–5, got -1"),
        ({"version_compatible": "yes"}, "version_compatible must be true or false, got 'yes'"),
        ({"exclude_lean_runtime": True}, "exclude_lean_runtime applies only with version_compatible"),
        ({"hardware_compatibility": "turing"}, "must be one of none, ampere\\+, same_compute_capability, got 'turing'"),
        ({"plugin_libraries": ["/nope/libx.so"]}, "TensorRT plugin library not found: /nope/libx.so"),
        ({"builder_threads": 0}, "builder_threads must be a positive integer"),
        ({"timing_cache": 3}, "timing_cache must be a file path, got 3"),
        ({"plugin_library": "a", "plugin_libraries": "b"}, "given twice"),
    ],
)
def test_bad_options_are_one_line_user_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message) as exc:
        TrtBuildOptions.from_dict(options)
    assert "\n" not in str(exc.value)


def test_timing_cache_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a folder: give a file path"):
        TrtBuildOptions.from_dict({"timing_cache": tmp_path})


# -- profiles ----------------------------------------------------------------------------------------------


def test_profile_from_io_specs(tmp_path: Path) -> None:
    inputs, _ = specs(tiny_onnx(tmp_path / "m.onnx"), max_batch=6)
    assert profile_shapes(inputs) == {"x": ([1, 3, 4, 4], [1, 3, 4, 4], [6, 3, 4, 4])}
    static = [IOSpec("x", "float32", [2, 3, 4, 4])]
    assert profile_shapes(static) == {"x": ([2, 3, 4, 4], [2, 3, 4, 4], [2, 3, 4, 4])}


@pytest.mark.parametrize(
    "spec, message",
    [
        (IOSpec("x", "float32", ["batch", 3]), r"input 'x' has dynamic axes \[0\] .* no min/opt/max profile"),
        (IOSpec("x", "float32", ["b", 3], {"min": [1, 3], "max": [4, 3]}), "profile lacks opt"),
        (
            IOSpec("x", "float32", ["b", 3], {"min": [2, 3], "opt": [1, 3], "max": [4, 3]}),
            "min ≤ opt ≤ max, got 2, 1, 4",
        ),
        (IOSpec("x", "float32", ["b", 3], {"min": [1, 2], "opt": [1, 3], "max": [4, 3]}), "axis 1 is fixed at 3"),
        (IOSpec("x", "float32", ["b", 3], {"min": [1], "opt": [1], "max": [4]}), "has rank 1, the input 2"),
        (IOSpec("x", "float32", ["b", 3], {"min": [0, 3], "opt": [1, 3], "max": [4, 3]}), "has an axis < 1"),
    ],
)
def test_bad_profiles(spec: IOSpec, message: str) -> None:
    with pytest.raises(UserError, match=message):
        profile_shapes([spec])


def test_profile_must_fit_the_network() -> None:
    shapes = {"x": ([1, 3], [2, 3], [4, 3])}
    assert match_network_inputs({"x": [-1, 3]}, shapes) is True
    with pytest.raises(UserError, match="do not match the bundle's input specs"):
        match_network_inputs({"image": [-1, 3]}, shapes)
    with pytest.raises(UserError, match="axis 1 is 5 in the ONNX model but 3..3 in the profile"):
        match_network_inputs({"x": [-1, 5]}, shapes)
    with pytest.raises(UserError, match="rank 3 in the network but 2"):
        match_network_inputs({"x": [-1, 3, 1]}, shapes)
    assert match_network_inputs({"x": [2, 3]}, {"x": ([2, 3], [2, 3], [2, 3])}) is False


# -- files -------------------------------------------------------------------------------------------------


def test_atomic_write_replaces_or_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "trt.cache"
    atomic_write(target, b"one")
    atomic_write(target, memoryview(b"two"))
    assert target.read_bytes() == b"two"

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"three")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["trt.cache"]  # no temporary left behind


# -- the build flow, on fakes ------------------------------------------------------------------------------


def test_build_applies_options_and_records_facts(fakes: FakeCudart, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "model.onnx")
    inputs, _ = specs(model)
    plan = tmp_path / "out" / "engine.plan"
    options = {
        "workspace_mib": 64,
        "optimization_level": 2,
        "builder_threads": 2,
        "hardware_compatibility": "ampere+",
        "version_compatible": True,
        "timing_cache": str(tmp_path / "caches" / "trt.cache"),
    }
    info = build_trt_engine(model, plan, inputs, options)
    b: FakeBuilder = FAKE_STATE["builders"][-1]
    trt = sys.modules["tensorrt"]
    assert b.config.pool_limits == {trt.MemoryPoolType.WORKSPACE: 64 << 20}
    assert b.config.builder_optimization_level == 2 and b.max_threads == 2
    assert b.config.hardware_compatibility_level == trt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert b.config.flags == {trt.BuilderFlag.VERSION_COMPATIBLE}
    assert b.network.flags == 0  # TensorRT 11: always strongly typed, the flag is deprecated
    assert b.config.profiles[0].shapes == {"x": ([1, 3, 4, 4], [1, 3, 4, 4], [8, 3, 4, 4])}
    assert plan.is_file() and info["plan_bytes"] == plan.stat().st_size
    assert [p.name for p in plan.parent.iterdir()] == ["engine.plan"]
    json.dumps(info)  # JSON-able, as attnx.deploy.apis.build stores it in the manifest
    assert info["device"] == {
        "kind": "cuda",
        "index": 0,
        "name": "Fake RTX A6000",
        "compute_capability": "8.6",
        "sm": "sm_86",
        "memory_mib": 48 << 10,
        "driver_version": "13.0",
        "cuda_runtime_version": "12.9",
    }
    assert info["tensorrt_version"] == "11.4.0.106" and info["strongly_typed"] is True
    assert info["version_compatible"] is True and info["hardware_compatibility"] == "ampere+"
    assert info["profile"] == {"x": {"min": [1, 3, 4, 4], "opt": [1, 3, 4, 4], "max": [8, 3, 4, 4]}}
    assert info["timing_cache"]["reused"] is False and info["build_seconds"] >= 0


def test_tensorrt_10_gets_the_strongly_typed_flag(
    fakes: FakeCudart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.13.0.35", cudart=fakes))
    model = tiny_onnx(tmp_path / "model.onnx")
    info = build_trt_engine(model, tmp_path / "engine.plan", specs(model)[0], {})
    assert FAKE_STATE["builders"][-1].network.flags == 1 << 1
    assert info["network_flags"] == ["STRONGLY_TYPED"]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("8.6.1.6", cudart=fakes))
    with pytest.raises(UserError, match="TensorRT 8.6.1.6 is too old"):
        build_trt_engine(model, tmp_path / "engine.plan", specs(model)[0], {})


def test_timing_cache_is_reused_and_saved_atomically(fakes: FakeCudart, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "model.onnx")
    inputs, _ = specs(model)
    cache = tmp_path / "trt.cache"
    first = build_trt_engine(model, tmp_path / "a.plan", inputs, {"timing_cache": cache})
    assert first["timing_cache"]["reused"] is False and cache.read_bytes().startswith(CACHE_MAGIC)
    size = cache.stat().st_size
    second = build_trt_engine(model, tmp_path / "b.plan", inputs, {"timing_cache": cache})
    assert second["timing_cache"] == {
        "path": str(cache),
        "loaded_bytes": size,
        "reused": True,
        "saved_bytes": cache.stat().st_size,
    }
    assert cache.stat().st_size > size  # the fake adds an entry per build
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.plan", "b.plan", "model.onnx", "trt.cache"]

    cache.write_bytes(CACHE_MAGIC + b'["other-gpu tactic"]')
    third = build_trt_engine(model, tmp_path / "c.plan", inputs, {"timing_cache": cache})
    assert third["timing_cache"]["reused"] is False
    assert any("from another TensorRT/GPU" in n for n in third["build_notes"])
    cache.write_bytes(b"\x00garbage")
    fourth = build_trt_engine(model, tmp_path / "d.plan", inputs, {"timing_cache": cache})
    assert fourth["timing_cache"]["reused"] is False and cache.read_bytes().startswith(CACHE_MAGIC)


def test_parser_errors_name_the_nodes(fakes: FakeCudart, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "model.onnx", op="Unique")
    plan = tmp_path / "engine.plan"
    with pytest.raises(UserError) as exc:
        build_trt_engine(model, plan, specs(model)[0], {})
    msg = str(exc.value)
    assert msg.startswith(
        "TensorRT's ONNX parser rejected model.onnx: node 'unique_1' (Unique): No importer registered for op: Unique"
    )
    assert "\n" not in msg and not plan.exists()


def test_failed_build_names_tensorrts_error_and_writes_nothing(fakes: FakeCudart, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "model.onnx")
    FAKE_STATE["build_fails"] = True
    with pytest.raises(UserError, match=r"could not build an engine from model.onnx: .*insufficient workspace"):
        build_trt_engine(model, tmp_path / "out" / "engine.plan", specs(model)[0], {"timing_cache": tmp_path / "c"})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "c").exists()


def test_profile_and_model_disagree(fakes: FakeCudart, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "model.onnx")
    wrong = [
        IOSpec("image", "float32", ["batch", 3, 4, 4], {"min": [1, 3, 4, 4], "opt": [1, 3, 4, 4], "max": [2, 3, 4, 4]})
    ]
    with pytest.raises(
        UserError, match=r"the ONNX model's inputs \['x'\] do not match the bundle's input specs \['image'\]"
    ):
        build_trt_engine(model, tmp_path / "engine.plan", wrong, {})


def test_corrupt_onnx_is_named(fakes: FakeCudart, tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07\x12garbage")
    with pytest.raises(UserError, match="is not a readable ONNX model"):
        build_trt_engine(bad, tmp_path / "engine.plan", [IOSpec("x", "float32", [1, 3])], {})


def test_attnx_plugin_nodes_are_rewritten_for_the_parser(
    fakes: FakeCudart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.plugins.models import plugin_model

    path = tmp_path / "dn.onnx"
    onnx.save(plugin_model("DoubleNorm", {"eps": 1e-9}, [np.zeros((2, 5, 7), np.float32)]), str(path))
    inputs = [IOSpec("attn", "float32", [2, 5, 7])]
    import attnx.plugins.trt_onnx  # noqa: F401 - pure ONNX, no tensorrt needed

    fake_plugins = type(sys)("attnx.plugins.trt")
    fake_plugins.register_plugins = lambda: ["attnx::DoubleNormPlugin"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "attnx.plugins.trt", fake_plugins)
    seen: dict[str, str | None] = {}
    real_build = FakeBuilder.build_serialized_network

    def build(self: FakeBuilder, network: Any, config: Any) -> bytes | None:
        seen["arch"] = os.environ.get("ATTNX_CUDA_ARCH")
        return real_build(self, network, config)

    monkeypatch.setattr(FakeBuilder, "build_serialized_network", build)
    monkeypatch.delenv("ATTNX_CUDA_ARCH", raising=False)
    info = build_trt_engine(path, tmp_path / "engine.plan", inputs, {"hardware_compatibility": "ampere+"})
    node = FAKE_STATE["parsed"][-1].graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "DoubleNormPlugin" and attrs["plugin_namespace"] == b"attnx" and attrs["aot"] == 1
    assert info["attnx_plugins"] == ["attnx::DoubleNormPlugin"] and info["plugin_kernel_arch"] == "sm_80"
    assert seen["arch"] == "80" and "ATTNX_CUDA_ARCH" not in os.environ  # set for the build only
    assert info["profile"] is None  # static input: no optimization profile

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.8.0.43", cudart=fakes))
    with pytest.raises(
        UserError, match=r"attnx plugins \['DoubleNorm'\], which need TensorRT ≥ 10.9 \(this is 10.8.0.43\)"
    ):
        build_trt_engine(path, tmp_path / "engine.plan", inputs, {})


def test_ampere_plus_needs_an_ampere_build_gpu(fakes: FakeCudart, tmp_path: Path) -> None:
    fakes.cc = (7, 5)
    model = tiny_onnx(tmp_path / "model.onnx")
    with pytest.raises(UserError, match="ampere\\+ needs a build GPU of compute capability ≥ 8.0; this is sm_75"):
        build_trt_engine(model, tmp_path / "engine.plan", specs(model)[0], {"hardware_compatibility": "ampere+"})


def test_built_plan_loads_through_a_bundle(fakes: FakeCudart, tmp_path: Path) -> None:
    """The facts build_trt_engine returns are the ones TrtRunner checks (as attnx.deploy.apis.build stores them)."""
    model = tiny_onnx(tmp_path / "model.onnx")
    inputs, outputs = specs(model)
    with BundleWriter(tmp_path / "bundle") as w:
        info = build_trt_engine(model, w.path("engine.plan"), inputs, {"workspace_mib": 32})
        device = info.pop("device")
        manifest = Manifest(
            backend="trt", precision="fp32", source={"model": "tiny"}, opset=17, inputs=inputs, outputs=outputs,
            files={"engine": "engine.plan"}, device=device, build={"max_batch": 8, **info},
        )  # fmt: skip
        bundle = w.commit(manifest)
    x = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    with Engine.load(bundle) as engine:
        np.testing.assert_allclose(engine(x)["y"], 2 * x + 1)  # the fake plan computes 2x + 1
    fakes.cc = (8, 9)
    with pytest.raises(
        UserError, match="built with TensorRT 11.4.0.106 for sm_86; this is TensorRT 11.4.0.106 on sm_89"
    ):
        Engine.load(bundle)


# -- on a GPU ----------------------------------------------------------------------------------------------

GPU_OK, GPU_WHY = gpu_status()


def _export(name: str, plugins: str, path: Path) -> Path:
    from attnx.deploy.apis.pipeline import export_model, full_input_shape, prepare_model
    from attnx.exporters.export import ExportOptions

    prepared = prepare_model(name)
    shape = full_input_shape(prepared, None)
    result, _ = export_model(prepared, path, ExportOptions(input_shape=shape, dynamic_batch=True), "trt10", plugins)
    return Path(result.path)


def _fp16(src: Path, dst: Path) -> Path:
    f16 = pytest.importorskip("onnxconverter_common.float16")
    model = f16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst


@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"needs an NVIDIA GPU with TensorRT: {GPU_WHY}")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name, plugins", [("cbam_resnet", "none"), ("vit_tiny", "none"), ("stn_classifier", "trt")])
def test_gpu_engine_matches_onnxruntime(tmp_path: Path, name: str, plugins: str, precision: str) -> None:
    from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner
    from attnx.deploy.parity.compare import compare, policy

    fp32 = _export(name, plugins, tmp_path / "fp32.onnx")
    built_from = fp32 if precision == "fp32" else _fp16(fp32, tmp_path / "fp16.onnx")
    inputs, outputs = io_specs(onnx.load(str(built_from)), 4, None)
    with BundleWriter(tmp_path / "bundle") as w:
        info = build_trt_engine(built_from, w.path("engine.plan"), inputs, {"timing_cache": tmp_path / "trt.cache"})
        device = info.pop("device")
        manifest = Manifest(
            backend="trt", precision=precision, source={"model": name}, opset=17, inputs=inputs, outputs=outputs,
            files={"engine": "engine.plan"}, device=device, build=info,
        )  # fmt: skip
        bundle = w.commit(manifest)
    assert device["kind"] == "cuda" and info["strongly_typed"]
    ort = OnnxrtRunner(fp32)
    ort.activate()
    try:
        with Engine.load(bundle, pool_size=2) as engine:
            for b in (1, 3):
                shape = (b, *[int(d) for d in inputs[0].shape[1:]])
                x = {inputs[0].name: np.random.default_rng(b).standard_normal(shape).astype(np.float32)}
                case = compare(
                    ort.infer(x), engine(x), policy(precision), f"batch {b}", {k: v.shape for k, v in x.items()}
                )
                assert case.passed, case
    finally:
        ort.deactivate()
