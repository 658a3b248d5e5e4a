"""Save and load a parity run's inputs and outputs (``.npz``) so it can be reproduced elsewhere.

One file holds every case of a run (e.g. batch 1 and batch 3): the inputs, and the outputs of each
backend under a role name ("reference", "candidate", ...). A JSON header (``__attnx_io__``) describes
the cases, the model and the backends. No pickles: the file loads with ``allow_pickle=False``.

    case0/input/<input name>
    case0/output/<role>/<output name>
    __attnx_io__            JSON: format, version, model, backends by role, cases (labels, names)

``replay`` compares a fresh backend against the outputs stored for a role: the same numbers on another
machine, without PyTorch there.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.core.files import atomic_path
from attnx.deploy.parity.compare import compare
from attnx.deploy.parity.inputs import check_shape

if TYPE_CHECKING:
    from attnx.deploy.backends.base import TensorSpec
    from attnx.deploy.parity.compare import Tolerance
    from attnx.deploy.parity.report import ParityCase

FORMAT = "attnx-parity-io"
VERSION = 1
_HEADER = "__attnx_io__"
_ROLE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class IOCase:
    """One case of a parity run: its ``label``, the inputs (name → array) and each role's outputs (role → output
    name → array).
    """

    label: str  # e.g. "batch 3"
    inputs: dict[str, np.ndarray]
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # role → output name → array


@dataclass
class SavedIO:
    """A file read by :func:`load_io`: its JSON header less the cases (``meta``: format, version, model, backends by
    role, created) and its cases.
    """

    meta: dict[str, Any]
    cases: list[IOCase]

    @property
    def roles(self) -> list[str]:
        """The roles with stored outputs in any case (e.g. "candidate", "reference"), sorted."""
        return sorted({r for c in self.cases for r in c.outputs})

    def feeds(self) -> list[tuple[str, dict[str, np.ndarray]]]:
        """The cases' inputs as (label, input name → array), as a parity run takes them."""
        return [(c.label, c.inputs) for c in self.cases]


def save_io(path: str | Path, cases: Sequence[IOCase], meta: dict[str, Any] | None = None) -> Path:
    """Write ``cases`` to ``path`` (.npz) atomically; ``meta`` (model, backends by role, ...) goes in the header."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"parity inputs/outputs are saved as .npz: name the file like {path.with_suffix('.npz')}")
    if not cases:
        raise UserError("nothing to save: the parity run has no cases")
    arrays: dict[str, np.ndarray] = {}
    described = []
    for i, case in enumerate(cases):
        for name, arr in case.inputs.items():
            arrays[f"case{i}/input/{name}"] = np.asarray(arr)
        for role, outs in case.outputs.items():
            if not _ROLE.match(role):
                raise UserError(f"role name '{role}' may hold only letters, digits, '_', '.', '-'")
            for name, arr in outs.items():
                arrays[f"case{i}/output/{role}/{name}"] = np.asarray(arr)
        described.append({"label": case.label, "inputs": list(case.inputs),
                          "outputs": {r: list(o) for r, o in case.outputs.items()}})  # fmt: skip
    header = {
        **(meta or {}), "format": FORMAT, "version": VERSION, "cases": described,  # meta cannot mislabel the file
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    arrays[_HEADER] = np.array(json.dumps(header))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]
    return path


def load_io(path: str | Path) -> SavedIO:
    """Read a file written by ``save_io``; a clear error for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"parity I/O file not found: {path} (write one with `attnx parity --save-io`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if _HEADER not in data.files:
                raise UserError(f"{path} is not an attnx parity I/O file (no {_HEADER} header): "
                                "write one with `attnx parity --save-io`")  # fmt: skip
            header = json.loads(str(data[_HEADER]))
            arrays = {k: data[k] for k in data.files if k != _HEADER}
    except UserError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path} (corrupt or truncated?): {exc}") from None
    if header.get("format") != FORMAT:
        raise UserError(f"{path} is not an attnx parity I/O file (format {header.get('format')!r})")
    if header.get("version", 0) > VERSION:
        raise UserError(f"{path} has format version {header['version']}, newer than this attnx reads: upgrade attnx")
    cases = []
    try:
        for i, desc in enumerate(header["cases"]):
            inputs = {n: arrays[f"case{i}/input/{n}"] for n in desc["inputs"]}
            outputs = {r: {n: arrays[f"case{i}/output/{r}/{n}"] for n in names} for r, names in desc["outputs"].items()}
            cases.append(IOCase(desc["label"], inputs, outputs))
    except KeyError as exc:
        raise UserError(f"{path} is incomplete: array {exc} is missing; save the run again") from None
    return SavedIO({k: v for k, v in header.items() if k != "cases"}, cases)


def check_io_inputs(
    saved: SavedIO | Sequence[tuple[str, dict[str, np.ndarray]]], specs: Sequence[TensorSpec],
    source: str = "the saved inputs",
) -> None:  # fmt: skip
    """Raise a UserError unless every case's inputs can feed a model with these input specs.

    ``saved`` is a loaded file, or its ``feeds()`` (label, input name → array) as a parity run takes them;
    each case must hold every input of ``specs``, at a shape ``check_shape`` accepts and the spec's dtype.
    """
    want = [s.name for s in specs]
    for label, inputs in saved.feeds() if isinstance(saved, SavedIO) else saved:
        missing = [n for n in want if n not in inputs]
        if missing:
            raise UserError(f"{source} (case '{label}') lack the model input(s) {missing}; they hold "
                            f"{sorted(inputs)}: save inputs from a run of this model")  # fmt: skip
        for spec in specs:
            arr = inputs[spec.name]
            check_shape(spec, tuple(arr.shape), source=f"{source} (case '{label}')")
            if arr.dtype != spec.dtype:
                raise UserError(f"input '{spec.name}' in {source} is {arr.dtype}, the model wants {spec.dtype}")


def replay(
    saved: SavedIO, infer: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], tolerance: Tolerance,
    against: str = "reference",
) -> list[ParityCase]:  # fmt: skip
    """Run ``infer`` on every saved case and compare it with the outputs stored for role ``against``."""
    if against not in saved.roles:
        raise UserError(f"the saved run has no outputs for '{against}'; it has {saved.roles}")
    cases = []
    for case in saved.cases:
        ref = case.outputs.get(against)
        if ref is None:
            raise UserError(f"case '{case.label}' of the saved run has no '{against}' outputs")
        fresh = infer(case.inputs)
        for name, arr in ref.items():
            if name in fresh and tuple(fresh[name].shape) != tuple(arr.shape):
                raise UserError(f"output '{name}' has shape {tuple(fresh[name].shape)} here but "
                                f"{tuple(arr.shape)} in the saved run: is this the same model?")  # fmt: skip
        shapes = {k: tuple(v.shape) for k, v in case.inputs.items()}
        cases.append(compare(ref, fresh, tolerance, case.label, shapes))
    return cases
