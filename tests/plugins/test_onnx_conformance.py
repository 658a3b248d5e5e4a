"""The GridSample conformance cases shipped in the onnx package, against the reference and the kernel.

The cases use ONNX's opset-20 mode names (linear, cubic). 5-D (volumetric) cases are outside
attnx::GridSample (4-D only) and are skipped with that reason.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from onnx import helper

from attnx.plugins.grid_sample.reference import grid_sample

FROM_ONNX_MODE = {
    "linear": "bilinear",
    "bilinear": "bilinear",
    "nearest": "nearest",
    "cubic": "bicubic",
    "bicubic": "bicubic",
}


def _cases() -> list[Any]:
    # Importing only the GridSample case module is ~50x faster than collect_testcases(), which
    # imports every op's cases; fall back to it if onnx's internals change.
    import onnx.backend.test.case.node as node_cases

    try:
        node_cases._TargetOpType = "GridSample"  # type: ignore[attr-defined]
        importlib.import_module("onnx.backend.test.case.node.gridsample")
        cases = [c for c in node_cases._NodeTestCases if c.model.graph.node[0].op_type == "GridSample"]  # type: ignore[attr-defined]
    except (AttributeError, ImportError):
        cases = []
    return cases or node_cases.collect_testcases("GridSample")


CASES = _cases()


def _attrs(case: Any) -> dict[str, Any]:
    node = case.model.graph.node[0]
    a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
    mode = a.get("mode", b"linear")
    pad = a.get("padding_mode", b"zeros")
    return {
        "mode": FROM_ONNX_MODE[mode.decode() if isinstance(mode, bytes) else mode],
        "padding_mode": pad.decode() if isinstance(pad, bytes) else pad,
        "align_corners": int(a.get("align_corners", 0)),
    }


def test_cases_found() -> None:
    assert len(CASES) >= 14, [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reference_and_kernel(case: Any) -> None:
    (inputs, outputs), *_ = case.data_sets
    x, grid = inputs
    if x.ndim != 4:
        pytest.skip("volumetric (5-D) GridSample: attnx::GridSample is 4-D only")
    attrs = _attrs(case)
    expected = outputs[0]
    ref = grid_sample(x, grid, **attrs)
    np.testing.assert_allclose(ref, expected, rtol=case.rtol, atol=max(case.atol, 1e-6), err_msg=case.name)

    pytest.importorskip("triton")
    import torch

    from attnx.plugins.grid_sample import kernel

    y = kernel.run(torch.from_numpy(x), torch.from_numpy(grid), **attrs).numpy()
    np.testing.assert_allclose(y, expected, rtol=case.rtol, atol=max(case.atol, 1e-6), err_msg=case.name)
