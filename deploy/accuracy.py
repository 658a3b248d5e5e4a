"""Top-1 accuracy of bundles (or PyTorch models) on real images: scikit-learn's digits test split.

    attnx accuracy BUNDLE [BUNDLE...]            # one line per bundle
    python -m attnx.deploy.tools.accuracy_report             # every zoo classifier × fp32 / fp16 / int8 (README table)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.bundle.engine import Engine
from attnx.exporters.digits import digits

DATASETS = ("digits",)


@dataclass
class Accuracy:
    """Top-1 of one bundle: ``name`` (the bundle folder's name), ``top1`` in percent [0, 100], ``correct`` of
    ``samples`` test images."""

    name: str
    top1: float  # percent
    correct: int
    samples: int


def evaluate_bundle(bundle: Path, dataset: str = "digits", batch_size: int = 8, threads: int | None = None,
                    allow_failed_parity: bool = False) -> Accuracy:  # fmt: skip
    """Top-1 of a classifier bundle on ``dataset``'s test split, fed in batches within the bundle's profile.

    The digits test split is upsampled to the bundle's fixed (C, H, W) and normalised as the zoo was
    trained; a static batch is padded with zeros (padding predictions dropped). The first output must be
    (N, classes) logits or probabilities.

    Args:
        bundle: the bundle folder.
        dataset: "digits" (``DATASETS``).
        batch_size: samples per run, capped by the profile's max batch; a static batch axis wins.
        threads: CPU intra-op threads (backend default when None).
        allow_failed_parity: run a bundle whose build-time parity check failed.

    Raises:
        UserError: an unknown dataset; the bundle cannot be loaded (``Engine.load``); its input is not a
            fixed C×H×W image or its first output is not rank 2.
    """
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset '{dataset}': choose one of {', '.join(DATASETS)}")
    with Engine.load(bundle, threads=threads, allow_failed_parity=allow_failed_parity) as engine:
        spec = engine.inputs[0]
        if len(spec.shape) != 4 or not all(isinstance(d, int) for d in spec.shape[1:]):
            raise UserError(f"{bundle} takes input {spec.shape}: accuracy needs a fixed C×H×W image input")
        out = engine.outputs[0]
        c, h, w = (int(d) for d in spec.shape[1:])
        x, y = digits("test", (c, h, w))
        if spec.profile:
            batch_size = min(batch_size, spec.profile["max"][0])
        if not isinstance(spec.shape[0], str):
            batch_size = int(spec.shape[0])
        preds = []
        for i in range(0, len(x), batch_size):
            chunk = x[i : i + batch_size]
            if len(chunk) < batch_size and not isinstance(spec.shape[0], str):
                chunk = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            logits = engine({spec.name: chunk.astype(spec.dtype)})[out.name]
            if logits.ndim != 2:
                raise UserError(f"{bundle} outputs {out.name} of rank {logits.ndim}: not a classifier")
            preds.append(np.argmax(logits, axis=1)[: len(x) - i])
    pred = np.concatenate(preds)[: len(y)]
    correct = int((pred == y).sum())
    return Accuracy(bundle.name, 100.0 * correct / len(y), correct, len(y))
