"""Pyramid Split Attention (PSA), the building block of EPSANet.

Zhang, Zu, Lu, Zou, Meng (2021), "EPSANet: An Efficient Pyramid Squeeze Attention Block on
Convolutional Neural Network", arXiv:2105.14447 (ACCV 2022).

With S branches (S = 4: kernels k_i = 3, 5, 7, 9 with groups G_i = 1, 4, 8, 16), paper eqs. 5–12:

    F_i     = Conv(k_i × k_i, G_i)(X),          i = 0 … S−1      each C → C' = C/S channels
    Z_i     = SEWeight(F_i) = σ(W₁ δ(W₀ GAP(F_i)))                  (C' → C'/r → C', r = 16)
    att_i   = Softmax(Z_i) = exp(Z_i) / Σ_{j=0..S−1} exp(Z_j)      (per channel, across the S branches)
    Y_i     = F_i ⊙ att_i
    Out     = Cat([Y_0, Y_1, …, Y_{S−1}])

One SEWeight module (1×1 convs with biases) is shared by all branches, as in the authors' code; the
branch convs have no bias. (The released code concatenates the branches in reverse order, which is
only a fixed channel permutation; here they follow eq. 12.)

Shapes: x (N, C_in, H, W) → (N, C_out, ⌈H/s⌉, ⌈W/s⌉) for stride s, any N, H, W ≥ 1; C_out divisible by
S, and C_in and C_out/S divisible by each group count.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SEWeight(nn.Module):
    """SE weight of one branch: σ(W₁ δ(W₀ GAP(x))), shaped (N, C, 1, 1) (no rescaling of x here)."""

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → the weight σ(W₁ δ(W₀ GAP(x))), (N, C, 1, 1), same dtype."""
        return torch.sigmoid(self.fc2(self.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))


class PyramidSplitAttention(nn.Module):
    """The PSA module: multi-scale group convs, a shared SE weight per branch, softmax across branches.

    Zhang, Zu, Lu, Zou, Meng 2021 (EPSANet), arXiv:2105.14447.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernels: Sequence[int] = (3, 5, 7, 9),
        groups: Sequence[int] = (1, 4, 8, 16),
        reduction: int = 16,
    ) -> None:
        super().__init__()
        if len(kernels) != len(groups):
            raise ValueError(f"PSA needs one group count per kernel, got {kernels} and {groups}")
        branches = len(kernels)
        if out_channels % branches:
            raise ValueError(f"PSA out_channels ({out_channels}) must be divisible by the {branches} branches")
        split = out_channels // branches
        for k, g in zip(kernels, groups, strict=True):
            if in_channels % g or split % g:
                raise ValueError(f"PSA branch k={k}: {g} groups must divide {in_channels} and {split} channels")
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, split, k, stride=stride, padding=k // 2, groups=g, bias=False)
            for k, g in zip(kernels, groups, strict=True)
        )
        self.se = SEWeight(split, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → Cat[F_i ⊙ att_i], (N, C_out, ⌈H/s⌉, ⌈W/s⌉) for stride s, same dtype."""
        feats = [conv(x) for conv in self.convs]  # F_i: (N, C', H', W') each
        z = torch.stack([self.se(f) for f in feats], dim=1)  # (N, S, C', 1, 1)
        att = torch.softmax(z, dim=1)  # across branches, per channel
        return torch.cat([f * att[:, i] for i, f in enumerate(feats)], dim=1)  # (N, S·C', H', W')
