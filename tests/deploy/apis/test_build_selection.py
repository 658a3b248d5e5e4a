"""`--backend auto` / `--precision best`: candidates built, timed side by side, the fastest passing one kept."""

import json

import pytest

from attnx.core.errors import UserError
from attnx.deploy.apis.build import BuildOptions, build_bundle, cpu_candidates

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)


def build_best(tmp_path):
    """``precision="best"`` on ORT for the tiny model, written to ``tmp_path / "best"``."""
    calibration = {"source": "synthetic", "count": 16, "cache_dir": str(tmp_path / "c")}
    options = BuildOptions(backend="ort", precision="best", input_shape=SHAPE, calibration=calibration)
    return build_bundle(TINY, tmp_path / "best", options)


def test_best_precision_keeps_the_fastest_passing_candidate(tmp_path):
    result = build_best(tmp_path)
    selection = json.loads((tmp_path / "best" / "manifest.json").read_text())["build"]["selection"]
    rows = {(c["backend"], c["precision"]): c for c in selection["candidates"]}
    assert set(rows) == {("ort", "fp32"), ("ort", "fp16"), ("ort", "int8")}
    passing = [c for c in rows.values() if c["parity_passed"]]
    fastest = min(passing, key=lambda c: c["p50_ms"])
    assert selection["chosen"] == {"backend": fastest["backend"], "precision": fastest["precision"]}
    assert (result.manifest.backend, result.manifest.precision) == (fastest["backend"], fastest["precision"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "c"], "no candidate folders left behind"


def test_auto_on_a_cpu_compares_onnxruntime_and_openvino(tmp_path):
    pytest.importorskip("openvino")
    result = build_bundle(TINY, tmp_path / "auto", BuildOptions(backend="auto", input_shape=SHAPE))
    selection = result.manifest.build["selection"]
    assert {(c["backend"], c["precision"]) for c in selection["candidates"]} == {("ort", "fp32"), ("openvino", "fp32")}
    assert result.manifest.backend == selection["chosen"]["backend"]


def test_openvino_missing_degrades_to_onnxruntime_with_a_notice(monkeypatch):
    import attnx.deploy.backends.openvino.runner as ov

    monkeypatch.setattr(ov, "openvino_available", lambda: (False, "openvino is not installed: pip install openvino"))
    pairs, notes = cpu_candidates(BuildOptions(backend="auto", precision="best"))
    assert {b for b, _ in pairs} == {"ort"} and "no OpenVINO candidate" in notes[0]


def test_no_bf16_candidate_without_bf16(monkeypatch):
    pytest.importorskip("openvino")
    import attnx.deploy.backends.openvino.runner as ov

    monkeypatch.setattr(ov, "bf16_supported", lambda: (False, "this CPU lists no BF16 capability"))
    pairs, notes = cpu_candidates(BuildOptions(backend="auto", precision="best"))
    assert ("openvino", "bf16") not in pairs and any("no bf16 candidate" in n for n in notes)


def test_bf16_needs_openvino(tmp_path):
    with pytest.raises(UserError, match="bf16 runs through OpenVINO"):
        build_bundle(TINY, tmp_path / "x", BuildOptions(backend="ort", precision="bf16", input_shape=SHAPE))


def test_best_records_a_candidate_that_fails_to_build_and_goes_on(tmp_path, monkeypatch):
    """One candidate failing to build (OpenVINO refusing a graph, say) is recorded, not fatal."""
    import attnx.deploy.apis.build as build

    real = build._assemble

    def assemble(prepared, fp32_path, writer, options, backend, work):  # type: ignore[no-untyped-def]
        if options.precision == "fp16":
            raise UserError("fp16 engine cannot be compiled here (injected)")
        return real(prepared, fp32_path, writer, options, backend, work)

    monkeypatch.setattr(build, "_assemble", assemble)
    result = build_best(tmp_path)
    rows = {(c["backend"], c["precision"]): c for c in result.manifest.build["selection"]["candidates"]}
    assert "injected" in rows[("ort", "fp16")]["build_error"] and not rows[("ort", "fp16")]["parity_passed"]
    assert result.manifest.precision in ("fp32", "int8")
    assert any("ort/fp16 failed to build" in n for n in result.manifest.build["selection"]["notes"])
