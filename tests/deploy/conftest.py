"""Artefacts several deploy test folders read: the tiny test model exported once, built into an ORT bundle once,
and a private copy of that bundle for a test to tamper with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attnx.deploy.apis.build import BuildOptions, build_bundle
from tests.helpers import invoke

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    """``tiny.onnx`` (and its ``tiny.report.json``) from ``attnx export`` at 1x3x16x16; read-only for tests."""
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = invoke("export", TINY, "-o", out, "--input-shape", "x".join(map(str, SHAPE)))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """An fp32 ORT bundle of the tiny model; read-only for tests (tamper with :func:`bundle`)."""
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    build_bundle(TINY, out, BuildOptions(backend="ort", input_shape=SHAPE))
    return out


@pytest.fixture
def bundle(built, tmp_path) -> Path:
    """A private copy of :func:`built`, to tamper with."""
    return Path(shutil.copytree(built, tmp_path / "b"))
