"""Which bundles to serve and what their manifests allow: ``NAME=PATH`` arguments, the batch axis, profile limits.

Shared by the server (:mod:`attnx.deploy.serving.models`), the Triton repository writer
(:mod:`attnx.deploy.serving.triton_repo`) and the Kubernetes manifests (:mod:`attnx.deploy.serving.k8s`),
so none of them imports another for these.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from attnx.core.errors import UserError
from attnx.deploy.bundle.manifest import Manifest

# Model names become URL path segments and Triton repository folder names: keep them plain.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def parse_bundle_args(args: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """``PATH`` or ``NAME=PATH`` → (name, path); the name defaults to the bundle folder's name."""
    if not args:
        raise UserError("give at least one bundle folder (made by `attnx build`)")
    pairs: list[tuple[str, Path]] = []
    for arg in args:
        text = str(arg)
        name, sep, rest = text.partition("=")
        if sep and NAME_RE.match(name) and not Path(text).exists():
            path = Path(rest)
        else:
            name, path = Path(text).resolve().name, Path(text)
        if not NAME_RE.match(name):
            raise UserError(
                f"model name {name!r} (from {text}) is not usable in URLs and Triton repositories: use letters, "
                "digits, '_', '.', '-', or name it explicitly as NAME=PATH"
            )  # fmt: skip
        pairs.append((name, path))
    return pairs


def has_batch_axis(manifest: Manifest) -> bool:
    """True when every input and output has a dynamic axis 0: requests can be stacked and split along it."""
    return all(s.shape and isinstance(s.shape[0], str) for s in [*manifest.inputs, *manifest.outputs])


def profile_max_batch(manifest: Manifest) -> int | None:
    """The largest axis-0 size the engine's profiles accept (None: unbounded)."""
    limits = [int(s.profile["max"][0]) for s in manifest.inputs if s.profile]
    return min(limits) if limits else None
