"""Squeeze-and-Excitation (SE) channel attention.

Hu, Shen, Albanie, Sun, Wu (2018), "Squeeze-and-Excitation Networks", CVPR 2018 (TPAMI 2020).

For U = (u_1 … u_C), each u_c of size H × W (paper eqs. 2–4):

    squeeze:     z_c = F_sq(u_c) = 1/(H·W) · Σ_{i=1..H} Σ_{j=1..W} u_c(i, j)
    excitation:  s = F_ex(z, W) = σ(W₂ · δ(W₁ · z)),   W₁ ∈ ℝ^{(C/r) × C},  W₂ ∈ ℝ^{C × (C/r)}
    scale:       x̃_c = s_c · u_c

δ is ReLU, σ the logistic sigmoid, r the reduction ratio (16 in the paper). As in the authors' Caffe
models, both fully-connected layers carry a bias.

Shapes: x (N, C, H, W) → (N, C, H, W), any N, H, W ≥ 1.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """The SE block: global average pool, bottleneck MLP (C → C/r → C), sigmoid gate per channel.

    Squeeze-and-Excitation, Hu et al. 2018, arXiv:1709.01507.
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)  # W₁
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)  # W₂

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → x · σ(W₂ δ(W₁ GAP(x))) per channel; the same shape and dtype."""
        z = x.mean(dim=(2, 3))  # squeeze: (N, C)
        s = torch.sigmoid(self.fc2(self.relu(self.fc1(z))))  # excitation: (N, C)
        return x * s[:, :, None, None]  # scale: broadcast over H, W
