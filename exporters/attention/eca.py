"""Efficient Channel Attention (ECA): SE without dimensionality reduction, a 1-D conv across channels.

Wang, Wu, Zhu, Li, Zuo, Hu (2020), "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020.

With y = GAP(χ) ∈ ℝ^C the global average pool (paper eqs. 7, 12):

    ω = σ(C1D_k(y)),    i.e.  ω_i = σ(Σ_{j=1..k} w^j · y_{i + j − (k+1)/2})   (zero outside 1..C)
    out_c = ω_c · χ_c

The kernel size k adapts to the channel count C (eq. 12):

    k = ψ(C) = | log₂(C)/γ + b/γ |_odd,    γ = 2, b = 1

where |t|_odd is "the nearest odd number of t"; as in the authors' code, t is truncated to an
integer and an even result is moved up by one (so t = 4 → 5, t = 4.5 → 5, t = 3.5 → 3).
The 1-D conv has no bias and one weight vector shared by all channels (k parameters in all).

Shapes: x (N, C, H, W) → (N, C, H, W), any N, H, W ≥ 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ψ(C) of paper eq. 12: the odd 1-D kernel size for ``channels`` channels."""
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """The ECA module: GAP, k-tap 1-D conv over the channel axis (zero padded), sigmoid gate.

    Wang, Wu, Zhu, Li, Zuo, Hu, CVPR 2020, arXiv:1910.03151.
    """

    def __init__(self, channels: int, k_size: int | None = None, gamma: float = 2.0, b: float = 1.0) -> None:
        super().__init__()
        k = eca_kernel_size(channels, gamma, b) if k_size is None else k_size
        if k % 2 == 0:
            raise ValueError(f"ECA kernel size must be odd, got {k}")
        self.k_size = k
        # One input/output "channel": the C channel descriptors are the 1-D signal's positions.
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → x · σ(C1D_k(GAP(x))) per channel; the same shape and dtype."""
        y = x.mean(dim=(2, 3)).unsqueeze(1)  # (N, 1, C)
        w = torch.sigmoid(self.conv(y))  # (N, 1, C)
        return x * w.squeeze(1)[:, :, None, None]
