"""Sensitivity mode: measured per-node effects, exclusions worst-first, and the budget it reports."""

from attnx.calibration.precision import apply_precision

SMALL = {"count": 16, "eval_count": 8, "batch_size": 8}


def test_lax_budget_excludes_nothing(tiny_onnx, tmp_path):
    result = apply_precision(tiny_onnx, "int8", "trt", {**SMALL, "sensitivity": {"min_cosine": 0.5}}, tmp_path)
    sens = result.plan["sensitivity"]
    assert sens["held"] and sens["excluded"] == [] and sens["effects"] == [] and sens["quantize_runs"] == 1
    assert sens["initial"] == sens["final"]


def test_strict_budget_measures_every_node_and_excludes_worst_first(tiny_onnx, tmp_path):
    budget = {"min_cosine": 1.0, "max_excluded": 2}  # exact agreement: unreachable with a quantized node left
    result = apply_precision(tiny_onnx, "int8", "trt", {**SMALL, "sensitivity": budget}, tmp_path / "a")
    sens = result.plan["sensitivity"]
    plain = apply_precision(tiny_onnx, "int8", "trt", SMALL, tmp_path / "b").plan
    assert {e["node"] for e in sens["effects"]} == set(plain["quantized"])  # each quantized node measured alone
    losses = [e["cosine_loss"] for e in sens["effects"]]
    assert losses == sorted(losses, reverse=True) and losses[0] > 0
    excluded = [e["node"] for e in sens["excluded"]]
    assert excluded == [e["node"] for e in sens["effects"][: len(excluded)]] and 1 <= len(excluded) <= 2
    assert not sens["held"] and any("budget not met" in n for n in result.notes)
    for node in excluded:
        assert result.plan["excluded"][node]["category"] == "sensitivity" and node not in result.plan["quantized"]
    assert sens["final"]["min_cosine"] >= sens["initial"]["min_cosine"] - 1e-6
    assert sens["quantize_runs"] == 1 + len(sens["effects"]) + len(excluded)


def test_budget_that_can_be_met_stops_early(zoo_onnx, tmp_path):
    plain = apply_precision(zoo_onnx("se_resnet"), "int8", "ort", SMALL, tmp_path / "a").plan
    cos = plain["check"]["held_out"]["min_cosine"]
    target = 1 - (1 - cos) / 3  # a third of the plain error: one or more exclusions needed, most nodes stay int8
    result = apply_precision(zoo_onnx("se_resnet"), "int8", "ort", {**SMALL, "sensitivity": {"min_cosine": target}},
                             tmp_path / "b")  # fmt: skip
    sens = result.plan["sensitivity"]
    assert sens["held"] and sens["final"]["min_cosine"] >= target
    assert 1 <= len(sens["excluded"]) <= len(plain["quantized"]) // 2
    assert len(result.plan["quantized"]) > len(sens["excluded"])
