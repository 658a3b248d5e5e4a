"""NumPy reference for attnx::DoubleNorm (matches attnx.exporters.ops.double_norm)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def double_norm(attn: npt.NDArray[np.floating], eps: float = 1e-9) -> npt.NDArray[np.floating]:
    """softmax over axis 1 (pixels), then divide by eps + sum over axis 2 (memory slots).

    Computed in float32 whatever the input dtype (the FP32-accumulation contract), returned in it.
    """
    a = np.asarray(attn, np.float32)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    out: npt.NDArray[np.floating] = s / (np.float32(eps) + s.sum(axis=2, keepdims=True))
    return out.astype(attn.dtype)
