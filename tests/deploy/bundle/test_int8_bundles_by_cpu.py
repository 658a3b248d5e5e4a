"""INT8 bundles record the CPU they were verified on, are guarded where they run, and `attnx parity BUNDLE`
re-checks them on the build's own held-out inputs. Detection is forced, so both branches run on any CPU."""

import dataclasses
import json
import logging

import pytest

from attnx.core import cpu
from attnx.deploy.apis.build import BuildOptions, build_bundle
from attnx.deploy.apis.parity import run_bundle_parity
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import load_manifest
from attnx.deploy.bundle.runtime import int8_path

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)


def _build(tmp_path, name: str, target: str):  # type: ignore[no-untyped-def]
    calib = {"source": "digits", "count": 16, "eval_count": 16, "cache_dir": str(tmp_path / "cache"),
             "cpu_target": target}  # fmt: skip
    return build_bundle(TINY, tmp_path / name, BuildOptions(backend="ort", precision="int8", input_shape=SHAPE,
                                                            calibration=calib))  # fmt: skip


@pytest.fixture
def avx2_only(monkeypatch):
    monkeypatch.setenv(cpu.ENV_FEATURES, "avx2,fma")
    monkeypatch.delenv(cpu.ENV_U8U8, raising=False)


def test_native_on_a_cpu_without_vnni_builds_saturation_safe(tmp_path, avx2_only):
    result = _build(tmp_path, "b", "native")
    record = json.loads((result.bundle / "manifest.json").read_text())["cpu"]
    assert record["recipe"] == {**record["recipe"], "target": "native", "weight_bits": 7, "saturation_safe": True}
    assert record["saturation"]["safe"] and record["saturation"]["worst"]["pair_sum"] <= 32767
    assert record["verified_on"]["flags"] == ["avx2", "fma"] and record["verified_on"]["u8s8_saturates"]
    with Engine.load(result.bundle) as engine:
        assert "7-bit weights cannot saturate" in engine.info["kernels"]


def test_a_vnni_bundle_on_a_cpu_without_vnni_warns_and_runs_u8u8(tmp_path, avx2_only, monkeypatch, caplog):
    result = _build(tmp_path, "v", "vnni")  # full 8-bit weights, verified here through U8U8
    manifest = load_manifest(result.bundle)
    assert manifest.cpu["recipe"]["weight_bits"] == 8 and not manifest.cpu["saturation"]["safe"]
    assert "U8U8" in manifest.cpu["check_kernels"]
    with caplog.at_level(logging.WARNING, logger="attnx.cpu"):
        assert int8_path(result.bundle, manifest).u8u8 and not caplog.records  # same kind of CPU: no warning
    # the same bundle as if it had been verified on a VNNI machine: one warning line, and the U8U8 path
    vnni = cpu.parse_override("avx512_vnni").to_dict()
    moved = dataclasses.replace(manifest, cpu={**manifest.cpu, "verified_on": vnni})
    with caplog.at_level(logging.WARNING, logger="attnx.cpu"):
        path = int8_path(result.bundle, moved)
    assert path.u8u8 and len(caplog.records) == 1 and "avx512_vnni" in caplog.records[0].getMessage()
    monkeypatch.setenv(cpu.ENV_U8U8, "off")
    assert not int8_path(result.bundle, moved).u8u8


def test_parity_of_a_bundle_reproduces_the_build_verdict_on_the_same_inputs(tmp_path, avx2_only):
    result = _build(tmp_path, "b", "native")
    built = result.manifest.parity
    assert result.manifest.parity_inputs["kind"] == "held_out"
    assert built["input_source"].startswith("held-out samples recorded by the build: scikit-learn digits, test split")
    report, _ = run_bundle_parity(result.bundle)
    assert report.input_source == built["input_source"] and report.passed == built["passed"]
    got = report.cases[0].outputs[0]
    want = built["cases"][0]["outputs"][0]
    assert got.cosine == pytest.approx(want["cosine"], abs=1e-6)
    notes: list[str] = []
    seeded, _ = run_bundle_parity(result.bundle, seeded=True, notes=notes)
    assert seeded.input_source.startswith("seeded random") and any("not comparable" in n for n in notes)


@pytest.mark.parametrize(("flags", "overflow_fix"),
                         [("avx2,fma", "enable"), ("avx2,fma,avx512f,avx512_vnni", "disable")])  # fmt: skip
def test_openvino_int8_is_nncf_with_the_overflow_fix_by_cpu(tmp_path, monkeypatch, flags, overflow_fix):
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    monkeypatch.setenv(cpu.ENV_FEATURES, flags)
    calib = {"source": "digits", "count": 16, "eval_count": 16, "cache_dir": str(tmp_path / "cache")}
    result = build_bundle(TINY, tmp_path / "ov", BuildOptions(backend="openvino", precision="int8", input_shape=SHAPE,
                                                              calibration=calib), model_spec=TINY)  # fmt: skip
    m = result.manifest
    assert m.files["engine"] == "model.xml" and {"model.xml", "model.bin"} <= set(m.sha256)
    assert m.precision_plan["style"] == "openvino" and m.precision_plan["nncf"]["overflow_fix"] == overflow_fix
    assert m.precision_plan["counts"]["fake_quantize"] > 0
    assert m.cpu["saturation"]["safe"] is (overflow_fix == "enable")
    assert m.parity_inputs["kind"] == "held_out"
    if overflow_fix == "enable":  # safe on any CPU; without the fix only a real VNNI CPU is sure to pass
        assert result.parity.passed
    report, _ = run_bundle_parity(result.bundle, model_spec=TINY)
    assert report.cases[0].outputs[0].cosine == pytest.approx(m.parity["cases"][0]["outputs"][0]["cosine"], abs=1e-6)
