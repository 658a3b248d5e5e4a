"""Convolutional Block Attention Module (CBAM): channel attention, then spatial attention.

Woo, Park, Lee, Kweon (2018), "CBAM: Convolutional Block Attention Module", ECCV 2018.

For a feature map F (C × H × W), paper eqs. 1–3:

    F'  = M_c(F) ⊗ F
    F'' = M_s(F') ⊗ F'

    M_c(F) = σ(MLP(AvgPool(F)) + MLP(MaxPool(F)))       pools over H, W; MLP shared: C → C/r → C
           = σ(W₁(W₀(F^c_avg)) + W₁(W₀(F^c_max)))        (ReLU after W₀)
    M_s(F) = σ(f^{7×7}([AvgPool(F); MaxPool(F)]))        pools over channels → 2 × H × W map

⊗ is element-wise multiplication with broadcasting (M_c is C × 1 × 1, M_s is 1 × H × W). As in the
authors' code, the MLP's linear layers have biases and the 7×7 conv (no bias) is followed by a
BatchNorm; the reduction ratio r is 16.

Shapes: x (N, C, H, W) → (N, C, H, W), any N, H, W ≥ 1.
"""

from __future__ import annotations

import torch
from torch import nn


class CBAMChannelAttention(nn.Module):
    """M_c: shared MLP over the average- and max-pooled channel descriptors, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the gate M_c(x), shaped (N, C, 1, 1)."""
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))  # (N, C)
        return torch.sigmoid(logits)[:, :, None, None]


class CBAMSpatialAttention(nn.Module):
    """M_s: k×k conv over the channel-wise [mean; max] maps, sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)  # in the authors' code (BasicConv), not in eq. 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the gate M_s(x), shaped (N, 1, H, W)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (N, 2, H, W)
        return torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """CBAM: channel attention then spatial attention, applied sequentially (the paper's best order).

    Woo, Park, Lee, Kweon, ECCV 2018, arXiv:1807.06521.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = CBAMChannelAttention(channels, reduction)
        self.spatial = CBAMSpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → F'' = M_s(F')·F' with F' = M_c(x)·x; the same shape and dtype."""
        x = x * self.channel(x)  # F'
        return x * self.spatial(x)  # F''
