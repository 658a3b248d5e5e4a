"""Inputs for parity runs: seeded random data, or the user's own ``.npy`` / ``.npz`` files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from attnx.core.errors import UserError, warn
from attnx.deploy.backends.base import TensorSpec


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` (or comma-separated) → ``(1, 3, 224, 224)``."""
    parts = text.replace(",", "x").lower().split("x")
    try:
        shape = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        raise UserError(f"bad shape '{text}': write it as NxCxHxW, e.g. 1x3x224x224") from None
    if not shape or any(d <= 0 for d in shape):
        raise UserError(f"bad shape '{text}': every dimension must be a positive integer, e.g. 1x3x224x224")
    return shape


def seeded_inputs(specs: list[TensorSpec], shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Standard-normal float inputs (like normalised images), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in specs:
        shape = shapes[spec.name]
        if np.issubdtype(spec.dtype, np.floating):
            feed[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            feed[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
    return feed


def load_inputs(path: Path, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Read inputs from ``.npy`` (single-input models) or ``.npz`` (arrays named as the model's inputs)."""
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        elif path.suffix == ".npy":
            if len(specs) != 1:
                names = ", ".join(s.name for s in specs)
                raise UserError(f"{path} holds one array but the model has {len(specs)} inputs ({names}): use .npz")
            arrays = {specs[0].name: np.load(path, allow_pickle=False)}
        else:
            raise UserError(f"unsupported input file '{path.name}': give a .npy or .npz file")
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read inputs from {path}: {exc}") from None
    missing = [s.name for s in specs if s.name not in arrays]
    if missing:
        raise UserError(f"{path} lacks the model input(s) {missing}; it holds {sorted(arrays)}")
    feed = {}
    for spec in specs:
        arr = arrays[spec.name]
        check_dtype(spec, arr.dtype, source=str(path))  # before the shape: a wrong kind of data is the problem
        check_shape(spec, arr.shape, source=str(path))
        feed[spec.name] = arr.astype(spec.dtype, copy=False)
    return feed


def check_dtype(spec: TensorSpec, dtype: np.dtype, source: str) -> None:
    """Refuse data that is not numbers; say so (one line on stderr) when numbers are converted to the model's type."""
    want = np.dtype(spec.dtype)
    if dtype.kind not in "biuf":  # strings, objects, complex, dates...
        raise UserError(f"input '{spec.name}' from {source} holds {dtype} values, not numbers; the model takes "
                        f"{want}: save a numeric array (e.g. np.save(path, x.astype(np.{want})))")  # fmt: skip
    if dtype != want:
        how = "rounded to" if want.kind == "f" and dtype.kind == "f" and dtype.itemsize > want.itemsize else "cast to"
        warn(f"input '{spec.name}' from {source} is {dtype}; {how} the model's {want} "
             f"(save it as {want} to silence this)")  # fmt: skip


def check_shape(spec: TensorSpec, shape: tuple[int, ...], source: str) -> None:
    """Raise a UserError if ``shape`` cannot feed ``spec`` (rank, or a static dimension, differs)."""
    if len(shape) != len(spec.shape):
        raise UserError(
            f"input '{spec.name}' from {source} has rank {len(shape)} {tuple(shape)}, the model wants rank "
            f"{len(spec.shape)} {_fmt(spec.shape)}"
        )
    for axis, (got, want) in enumerate(zip(shape, spec.shape)):
        if isinstance(want, int) and got != want:
            raise UserError(
                f"input '{spec.name}' from {source} has shape {tuple(shape)}, but axis {axis} of the model's "
                f"input is fixed at {want} {_fmt(spec.shape)}; re-export with a dynamic axis or fix the data"
            )


def _fmt(shape: tuple[int | str | None, ...]) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"
