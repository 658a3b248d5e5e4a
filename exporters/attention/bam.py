"""Bottleneck Attention Module (BAM): parallel channel and spatial branches, one residual gate.

Park, Woo, Lee, Kweon (2018), "BAM: Bottleneck Attention Module", BMVC 2018.

For a feature map F (C × H × W), paper eqs. 1–4:

    F' = F + F ⊗ M(F),        M(F) = σ(M_c(F) + M_s(F))

    M_c(F) = BN(MLP(AvgPool(F))) = BN(W₁(W₀ AvgPool(F) + b₀) + b₁),   W₀: C → C/r,  W₁: C/r → C
    M_s(F) = BN(f₃^{1×1}(f₂^{3×3}(f₁^{3×3}(f₀^{1×1}(F)))))            C → C/r → C/r → C/r → 1

M_c (C × 1 × 1) and M_s (1 × H × W) are broadcast to C × H × W before the sum. f₁, f₂ are dilated
3×3 convs (dilation d = 4), r = 16. The normalisation layers follow the authors' released code,
which puts BatchNorm + ReLU after each hidden layer of both branches (rather than one BN at each
branch's end); the branches are combined by the sum of eq. 2, as in the paper (the released code
multiplies them instead).

BAM sits at the network's bottlenecks, i.e. at the end of each stage, before the down-sampling.

Shapes: x (N, C, H, W) → (N, C, H, W), any N, H, W ≥ 1.
"""

from __future__ import annotations

import torch
from torch import nn


class BAMChannelGate(nn.Module):
    """M_c: global average pool, MLP C → C/r → C with BN + ReLU on the hidden layer."""

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns M_c(x), shaped (N, C, 1, 1) (logits, before the sigmoid)."""
        return self.mlp(x.mean(dim=(2, 3)))[:, :, None, None]


class BAMSpatialGate(nn.Module):
    """M_s: 1×1 reduce, ``num_dilated`` dilated 3×3 convs, 1×1 to one map."""

    def __init__(
        self, channels: int, reduction: int = 16, dilation: int = 4, num_dilated: int = 2, min_hidden: int = 1
    ) -> None:
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
        for _ in range(num_dilated):
            # padding = dilation keeps H × W for a dilated 3×3 kernel (effective size 2d + 1)
            layers += [
                nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(hidden, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns M_s(x), shaped (N, 1, H, W) (logits, before the sigmoid)."""
        return self.body(x)


class BAM(nn.Module):
    """BAM: F' = F + F · σ(M_c(F) + M_s(F)), the two branch outputs broadcast-summed to C × H × W.

    Park, Woo, Lee, Kweon, BMVC 2018, arXiv:1807.06514.
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4) -> None:
        super().__init__()
        self.channel = BAMChannelGate(channels, reduction)
        self.spatial = BAMSpatialGate(channels, reduction, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → x + x·σ(M_c(x) + M_s(x)), the same shape and dtype."""
        gate = torch.sigmoid(self.channel(x) + self.spatial(x))  # (N, C, 1, 1) + (N, 1, H, W) → (N, C, H, W)
        return x + x * gate
