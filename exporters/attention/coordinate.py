"""Coordinate Attention (CA): channel attention factorised into two direction-aware 1-D gates.

Hou, Zhou, Feng (2021), "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021.

For input x (C × H × W), paper eqs. 4–9:

    z^h_c(h) = 1/W · Σ_{0≤i<W} x_c(h, i)                  (pool along W: one value per row h)
    z^w_c(w) = 1/H · Σ_{0≤j<H} x_c(j, w)                  (pool along H: one value per column w)
    f   = δ(F₁([z^h, z^w])),      f ∈ ℝ^{C/r × (H + W)}  (F₁: shared 1×1 conv, then BN, δ = h-swish)
    f^h, f^w = split(f) along the spatial axis            (H and W positions)
    g^h = σ(F_h(f^h)),   g^w = σ(F_w(f^w))                (F_h, F_w: 1×1 convs C/r → C)
    y_c(i, j) = x_c(i, j) × g^h_c(i) × g^w_c(j)

h-swish(t) = t · ReLU6(t + 3) / 6. The reduction is r = 32 with at least 8 middle channels
(C/r is max(8, C // 32)), as in the authors' code. All three 1×1 convs have biases.

Shapes: x (N, C, H, W) → (N, C, H, W), any N, H, W ≥ 1.
"""

from __future__ import annotations

import torch
from torch import nn


class CoordinateAttention(nn.Module):
    """The CA block: directional average pools, shared 1×1 transform, per-direction sigmoid gates.

    Hou, Zhou, Feng, CVPR 2021, arXiv:2103.02907.
    """

    def __init__(self, channels: int, reduction: int = 32, min_mid: int = 8) -> None:
        super().__init__()
        mid = max(min_mid, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mid, kernel_size=1)  # F₁
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(mid, channels, kernel_size=1)  # F_h
        self.conv_w = nn.Conv2d(mid, channels, kernel_size=1)  # F_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → x · g^h · g^w (gates (N, C, H, 1) and (N, C, 1, W)); the same shape and dtype."""
        h = x.shape[2]  # traced as a shape value, so the split point follows H in a dynamic export
        z_h = x.mean(dim=3, keepdim=True)  # (N, C, H, 1)
        z_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (N, C, W, 1): columns laid out along dim 2
        # One transform over the concatenation, as in the paper (BN statistics are shared in training).
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))  # (N, C/r, H + W, 1)
        f_h, f_w = f[:, :, :h], f[:, :, h:]
        g_h = torch.sigmoid(self.conv_h(f_h))  # (N, C, H, 1)
        g_w = torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))  # (N, C, 1, W)
        return x * g_h * g_w
