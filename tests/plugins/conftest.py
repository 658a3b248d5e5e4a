"""Shared setup for the plugin tests.

Triton chooses interpreter or compiler per process when kernels are decorated: set
TRITON_INTERPRET=1 here, before any test module imports triton, so the kernels run on CPU tensors.
AOT compilation runs in a subprocess without it (see test_aot.py).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict

import pytest

if "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"

# (op, backend, dtype) -> largest |difference| from the NumPy reference seen in the grid
ERRORS: dict[tuple[str, str, str], float] = defaultdict(float)


def record(op: str, backend: str, dtype: str, err: float) -> None:
    key = (op, backend, dtype)
    ERRORS[key] = max(ERRORS[key], float(err))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU with TensorRT (skipped elsewhere)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ERRORS:
        return
    tr = terminalreporter
    tr.section("attnx plugin grid: max |x - reference|")
    tr.write_line(f"{'op':<18}{'backend':<14}{'dtype':<9}max abs error")
    for (op, backend, dtype), err in sorted(ERRORS.items()):
        tr.write_line(f"{op:<18}{backend:<14}{dtype:<9}{err:.3g}")
