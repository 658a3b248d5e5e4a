"""scikit-learn's handwritten digits (1,797 real 8×8 images, shipped inside the package: no download),
upsampled to a model's input size — the real data attnx trains and checks its zoo classifiers on.
"""

from __future__ import annotations

import numpy as np

SPLIT_SEED = 0
TEST_FRACTION = 0.25
# Mean and std of the digit pixels scaled to [0, 1] (fixed, so every consumer normalises alike).
MEAN, STD = 0.3051, 0.3821


def load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) float32 in [0, 1], labels (N,) int64) for ``split`` "train" or "test" (stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, data.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=data.target
    )
    return (x_train, y_train.astype(np.int64)) if split == "train" else (x_test, y_test.astype(np.int64))


def to_model_input(images: np.ndarray, sample_shape: tuple[int, int, int]) -> np.ndarray:
    """(N, 8, 8) float32 in [0, 1] → (N, C, H, W) float32 for ``sample_shape`` (C, H, W), no batch.

    Bilinear upsampling to H×W, the channel replicated C times, normalised with ``MEAN`` and ``STD``.
    """
    import torch
    import torch.nn.functional as F

    c, h, w = sample_shape
    x = torch.from_numpy(images)[:, None]
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    x = ((x - MEAN) / STD).expand(-1, c, -1, -1)
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def digits(split: str, sample_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The digits ``split`` ("train" or "test") as model inputs and labels.

    Returns (inputs (N, C, H, W) float32, labels (N,) int64) for ``sample_shape`` (C, H, W), no batch.
    Raises ValueError for another split.
    """
    images, labels = load_digits_split(split)
    return to_model_input(images, sample_shape), labels
