"""Loading checkpoints into models: safetensors, or ``torch.load(weights_only=True)``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from attnx.core.errors import UserError

if TYPE_CHECKING:
    from torch import nn


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, as lowercase hex (read in 1 MiB chunks). Raises OSError if unreadable."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _last_line(text: str) -> str:
    """The line of torch's long refusal that says what it met (e.g. 'Unsupported operand 110')."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Check the documentation")]
    return (lines[-1] if lines else "unreadable")[:160]


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a state dict (strictly) from ``path`` into ``model``; user errors name the file and the fix."""
    import pickle

    import torch

    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch refused an object that is not tensors (loading it runs code)
        import re

        if not re.search(r"unsupported\s+global|GLOBAL\s", str(exc), re.IGNORECASE):  # not a pickle of objects
            raise UserError(f"cannot read weights from {path} (corrupt or not a checkpoint?): torch's "
                            f"weights-only reader rejected it ({_last_line(str(exc))})") from None  # fmt: skip
        found = re.search(r"unsupported\s+global:?\s+(?:GLOBAL\s+)?([\w.]+)", str(exc), re.IGNORECASE)
        what = f" ({found.group(1)})" if found else ""
        raise UserError(
            f"{path} holds Python objects besides tensors{what}, which attnx refuses to load: loading them can run "
            "any code. Only if you trust its source: load it yourself (torch.load(..., weights_only=False)) and "
            "save its state dict as .safetensors or with torch.save(model.state_dict())"
        ) from None
    except Exception as exc:  # corrupt or foreign files raise many types; one line names it
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read weights from {path} (corrupt or not a checkpoint?): {first[:200]}") from None
    # Common checkpoint wrappers: {"state_dict": ...} or {"model": ...}
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    own = model.state_dict()
    wrong_shape = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong_shape:
        k = wrong_shape[0]
        raise UserError(
            f"weights in {path} do not fit the model: {len(wrong_shape)} tensor(s) of another shape, e.g. "
            f"'{k}' {tuple(state[k].shape)} vs {tuple(own[k].shape)}; check the model name, --config, --num-classes"
        )
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"weights in {path} do not fit the model: {len(result.missing_keys)} missing "
            f"(e.g. {result.missing_keys[:2]}), {len(result.unexpected_keys)} unexpected "
            f"(e.g. {result.unexpected_keys[:2]}); check the model name and --config"
        )
