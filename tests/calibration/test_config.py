"""Calibration options: defaults, parsing, and one-line errors naming the bad key."""

from pathlib import Path

import pytest

from attnx.calibration.config import Budget, CalibrationConfig, default_cache_dir
from attnx.core.errors import UserError


def test_defaults_are_real_data_and_percentile():
    cfg = CalibrationConfig.from_dict({})
    assert (cfg.source, cfg.method, cfg.count, cfg.batch_size) == ("digits", "percentile", 64, 8)
    assert cfg.sensitivity is None and cfg.cache


def test_cache_dir_follows_attnx_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNX_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "calibration"
    assert CalibrationConfig.from_dict({}).cache_dir == tmp_path / "c" / "calibration"
    monkeypatch.delenv("ATTNX_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "attnx" / "calibration"


def test_values_are_parsed_from_cli_style_strings():
    cfg = CalibrationConfig.from_dict(
        {"count": "16", "input_shape": "1x3x32x48", "crop": "32x48", "mean": "0.5,0.5,0.5", "cache": "no",
         "exclude": "a,b", "sensitivity": {"min_cosine": 0.995}, "method": "ENTROPY"}
    )  # fmt: skip
    assert cfg.count == 16 and cfg.sample_shape == (3, 32, 48) and cfg.crop == (32, 48)
    assert cfg.mean == (0.5, 0.5, 0.5) and cfg.cache is False and cfg.exclude == ("a", "b")
    assert cfg.sensitivity == Budget(min_cosine=0.995) and cfg.method == "entropy"
    assert CalibrationConfig.from_dict({"sensitivity": True}).sensitivity == Budget()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"sauce": "digits"}, "unknown calibration option(s) sauce"),
        ({"method": "kl"}, "unknown calibration method 'kl'"),
        ({"percentile": 20}, "percentile must be in (50, 100]"),
        ({"count": 0}, "count must be ≥ 1"),
        ({"batch_size": "many"}, "batch_size must be an integer"),
        ({"input_shape": "3x224"}, "bad calibration input_shape"),
        ({"std": [0.2, 0]}, "std must be positive"),
        ({"layout": "chw"}, "unknown layout 'chw'"),
        ({"sensitivity": {"min_cos": 0.9}}, "unknown sensitivity key(s) min_cos"),
        ({"sensitivity": "sometimes"}, "sensitivity must be true or a budget dict"),
        ({"source": "  "}, "empty calibration source"),
    ],
)
def test_bad_options_are_one_line_user_errors(options, fragment):
    with pytest.raises(UserError) as err:
        CalibrationConfig.from_dict(options)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_to_dict_is_json_able():
    import json

    json.dumps(CalibrationConfig.from_dict({"sensitivity": True, "exclude": ["n"]}).to_dict())


def test_cli_key_value_options():
    from attnx.calibration.config import parse_cli_options

    opts = parse_cli_options(["source=photos", "count=32", 'sensitivity={"min_cosine": 0.995}', 'exclude=["a"]'])
    assert opts == {"source": "photos", "count": "32", "sensitivity": {"min_cosine": 0.995}, "exclude": ["a"]}
    cfg = CalibrationConfig.from_dict(opts)
    assert cfg.count == 32 and cfg.sensitivity == Budget(min_cosine=0.995) and cfg.exclude == ("a",)
    for bad, fragment in [("count", "write KEY=VALUE"), ("colour=red", "unknown calibration option 'colour'"),
                          ("sensitivity={min", "bad JSON in --calib sensitivity")]:  # fmt: skip
        with pytest.raises(UserError, match=fragment):
            parse_cli_options([bad])
