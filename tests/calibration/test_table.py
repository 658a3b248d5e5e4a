"""Calibration tables: range methods, collection through ONNX Runtime, and the on-disk cache."""

import json

import numpy as np
import pytest
from onnx import helper

from attnx.calibration.data import CalibrationData
from attnx.calibration.graph import GraphIndex, graph_sha256, name_nodes
from attnx.calibration.table import (
    NUM_BINS,
    CalibrationTable,
    cache_path,
    cached_or_collect,
    collect_ranges,
    entropy_threshold,
    percentile_threshold,
)
from attnx.core.errors import UserError
from tests.calibration.conftest import const, make_model, tensor


def hist_of(x: np.ndarray):
    a = np.abs(x)
    bound = float(a.max())
    return np.bincount(np.minimum((a * NUM_BINS / bound).astype(int), NUM_BINS - 1), minlength=NUM_BINS), bound


def test_percentile_and_entropy_thresholds():
    rng = np.random.default_rng(0)
    uniform, ub = hist_of(rng.uniform(-1, 1, 200_000))
    assert percentile_threshold(uniform, ub, 100.0) == pytest.approx(ub)
    assert percentile_threshold(uniform, ub, 90.0) == pytest.approx(0.9, abs=0.01)
    assert entropy_threshold(uniform, ub) == pytest.approx(ub, rel=0.01)  # nothing to clip in a uniform
    gauss, gb = hist_of(np.r_[rng.standard_normal(200_000), 40.0])  # one far outlier
    assert gb == 40.0
    assert 3.0 < percentile_threshold(gauss, gb, 99.99) < 4.5
    assert 2.5 < entropy_threshold(gauss, gb) < 6.0  # clipped far below the outlier


def scaled_model():
    """x → Relu → ×3 → y: ranges are known in closed form."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "k"], ["y"], name="mul"),
    ]
    model = make_model(nodes, [tensor("x", ["n", 4])], [tensor("y", ["n", 4])], [const("k", 3.0)])
    name_nodes(model)
    return model, GraphIndex.build(model, {"x": (1, 4)})


def data(seed=0, n=12):
    x = np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)
    return CalibrationData({"x": x}, f"test data seed {seed}", synthetic=True)


def test_minmax_ranges_are_the_observed_extremes():
    model, index = scaled_model()
    d = data()
    ranges, notes = collect_ranges(model, index, d, "minmax", None, batch_size=5)
    x = d.arrays["x"]
    assert set(ranges) == {"x", "r", "y"} and not notes
    assert ranges["x"].min == pytest.approx(x.min()) and ranges["x"].max == pytest.approx(x.max())
    assert ranges["r"].lo == 0.0 and ranges["y"].hi == pytest.approx(3 * x.max(), rel=1e-6)
    clipped, _ = collect_ranges(model, index, d, "percentile", 90.0, batch_size=5)
    assert clipped["y"].hi < ranges["y"].hi and clipped["y"].max == ranges["y"].max  # observed kept, range clipped


def test_table_is_cached_keyed_by_model_data_and_method(tmp_path):
    model, index = scaled_model()
    sha = graph_sha256(model)
    first, hit, _ = cached_or_collect(model, index, data(), "minmax", None, sha, tmp_path, 4)
    assert not hit and cache_path(tmp_path, first.key).is_file()
    again, hit, _ = cached_or_collect(model, index, data(), "minmax", None, sha, tmp_path, 4)
    assert hit and again.key == first.key and again.to_dict() == first.to_dict()
    other_data, hit, _ = cached_or_collect(model, index, data(seed=1), "minmax", None, sha, tmp_path, 4)
    other_method, hit2, _ = cached_or_collect(model, index, data(), "percentile", 99.0, sha, tmp_path, 4)
    assert not hit and not hit2 and len({first.key, other_data.key, other_method.key}) == 3
    assert len(list(tmp_path.glob("*.json"))) == 3 and not list(tmp_path.glob(".*"))  # no temp files left


def test_corrupt_cache_file_is_recollected(tmp_path):
    model, index = scaled_model()
    sha = graph_sha256(model)
    table, _, _ = cached_or_collect(model, index, data(), "minmax", None, sha, tmp_path, 4)
    path = cache_path(tmp_path, table.key)
    path.write_text(path.read_text()[:50])  # truncated by a crash elsewhere
    again, hit, notes = cached_or_collect(model, index, data(), "minmax", None, sha, tmp_path, 4)
    assert not hit and any("unreadable" in n for n in notes)
    assert json.loads(path.read_text())["key"] == table.key  # rewritten whole


def test_table_file_round_trip_and_bad_file(tmp_path):
    model, index = scaled_model()
    table, _, _ = cached_or_collect(model, index, data(), "minmax", None, graph_sha256(model), None, 4)
    table.save(tmp_path / "t.json")
    loaded = CalibrationTable.load(tmp_path / "t.json")
    assert loaded.to_dict() == table.to_dict() and loaded.data["synthetic"] is True
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(UserError, match="not a readable attnx calibration table"):
        CalibrationTable.load(tmp_path / "bad.json")


def test_graph_hash_ignores_metadata_but_not_weights():
    model, _ = scaled_model()
    sha = graph_sha256(model)
    model.metadata_props.add(key="attnx.weights", value="/somewhere/else.pt")
    assert graph_sha256(model) == sha
    model.graph.initializer[0].CopyFrom(const("k", 4.0))
    assert graph_sha256(model) != sha


def test_data_the_model_rejects_is_a_user_error():
    model, index = scaled_model()
    bad = CalibrationData({"x": np.zeros((2, 5), np.float32)}, "wrong width", synthetic=True)
    with pytest.raises(UserError, match=r"rejects calibration data \(x 2x5\)"):
        collect_ranges(model, index, bad, "minmax", None, batch_size=2)


def test_progress_bar_goes_to_stderr(capsys):
    model, index = scaled_model()
    ranges, _ = collect_ranges(model, index, data(), "entropy", None, batch_size=4, progress=True)
    assert set(ranges) == {"x", "r", "y"}
    assert capsys.readouterr().out == ""  # nothing on stdout: it may carry JSON
