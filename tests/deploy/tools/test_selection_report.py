"""The CPU selection report on a tiny model: the chosen bundle timed beside every direct configuration."""

from __future__ import annotations

import pytest

from attnx.deploy.tools import selection_report


@pytest.mark.slow
def test_report_times_the_chosen_bundle_beside_every_direct_configuration(tmp_path):
    pytest.importorskip("openvino")
    report = selection_report.report_model("se_resnet", None, threads=1, iterations=3, folder=tmp_path,
                                           eval_count=4)  # fmt: skip
    direct = [r for r in report["rows"] if r["target"].startswith("direct")]
    assert [(r["backend"], r["precision"]) for r in direct] == list(selection_report.DIRECT)
    # ORT fp32 is the parity reference of the direct runs: it matches itself exactly.
    assert direct[0]["parity"]["passed"] and direct[0]["parity"]["cosine"] == pytest.approx(1.0)
    chosen = report["rows"][-1]
    assert chosen["target"] == "attnx best bundle" and chosen["p50_ms"] > 0
    assert (chosen["backend"], chosen["precision"]) == (report["chosen"]["backend"], report["chosen"]["precision"])
    assert report["chosen_over_best_direct"] == pytest.approx(chosen["p50_ms"] / min(
        r["p50_ms"] for r in direct if r["parity"]["passed"]), rel=1e-2)  # fmt: skip
    assert all(0 < r["gflops_per_s"] and 0 < r["peak_fraction"] for r in report["rows"])
    table = selection_report.markdown([report])
    assert table.count("\n") == 2 and "se_resnet (tiny)" in table
