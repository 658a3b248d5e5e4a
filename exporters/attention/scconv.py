"""Self-Calibrated Convolution (SC-Conv), the building block of SCNet.

Liu, Hou, Cheng, Wang, Feng (2020), "Improving Convolutional Networks with Self-Calibrated
Convolutions", CVPR 2020.

The input X (C × H × W) is split in two halves X₁, X₂ along the channels, and the block's filters
into four groups K₁ … K₄ (each a 3×3 conv C/2 → C/2). Paper eqs. 1–4, for the self-calibrated half:

    T₁  = AvgPool_r(X₁)                          (down-sampling, kernel = stride = r = 4)
    X₁' = Up(F₂(T₁)) = Up(T₁ ∗ K₂)               (nearest up-sampling back to X₁'s size)
    Y₁' = F₃(X₁) · σ(X₁ + X₁')                   (F₃(X₁) = X₁ ∗ K₃: calibrated by the gate)
    Y₁  = F₄(Y₁') = Y₁' ∗ K₄

and for the other half, a plain convolution Y₂ = F₁(X₂) = X₂ ∗ K₁. The output is Y = [Y₁, Y₂].
As in the authors' code each Kᵢ is followed by BatchNorm, K₁ and K₄ also by ReLU, and a stride
goes to K₁ and K₄ (K₃ runs at the input resolution).

Our down-sampling uses ``ceil_mode`` so that maps whose H or W is not a multiple of r (or smaller
than r) keep their border pixels and still give at least one pooled pixel; the result is the same as
the authors' (floor-mode) pooling whenever H and W are multiples of r.

Shapes: x (N, C, H, W) → (N, C_out, ⌈H/s⌉, ⌈W/s⌉) for stride s, any N, H, W ≥ 1; C and C_out even.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3x3_bn(cin: int, cout: int, stride: int = 1, relu: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SelfCalibration(nn.Module):
    """The self-calibrated path (eqs. 1–4): X₁ (N, C, H, W) → Y₁ (N, C, H/s, W/s)."""

    def __init__(self, channels: int, stride: int = 1, pooling_r: int = 4) -> None:
        super().__init__()
        # count_include_pad=False: with ceil_mode, partial border windows average only the real pixels
        self.pool = nn.AvgPool2d(pooling_r, stride=pooling_r, ceil_mode=True, count_include_pad=False)
        self.k2 = _conv3x3_bn(channels, channels)
        self.k3 = _conv3x3_bn(channels, channels)
        self.k4 = _conv3x3_bn(channels, channels, stride=stride, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """X₁ (N, C, H, W) float → Y₁ = K₄(K₃(X₁) · σ(X₁ + X₁')), (N, C, ⌈H/s⌉, ⌈W/s⌉) for stride s, same dtype."""
        # The target size comes from x's shape, so a dynamic-H/W export resizes to the actual input.
        up = F.interpolate(self.k2(self.pool(x)), size=x.shape[-2:], mode="nearest")  # X₁'
        calibrated = self.k3(x) * torch.sigmoid(x + up)  # Y₁'
        return self.k4(calibrated)  # Y₁


class SCConv(nn.Module):
    """A self-calibrated convolution: half the channels through K₁, half through the self-calibration.

    Liu, Hou, Cheng, Wang, Feng, CVPR 2020 (SCNet).

    In SCNet it replaces the 3×3 conv (with its BN and ReLU) of each ResNet bottleneck; the two halves
    are the outputs of the bottleneck's two 1×1 convs (here one 1×1 conv whose output is split, which
    is the same computation and parameter count).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, pooling_r: int = 4) -> None:
        super().__init__()
        if in_channels % 2 or out_channels % 2:
            raise ValueError(f"SCConv needs even channel counts, got {in_channels} → {out_channels}")
        if in_channels != out_channels:
            # σ(X₁ + X₁') needs F₂ and F₃ to keep X₁'s channels (as in the paper, C → C)
            raise ValueError(f"SCConv keeps the channel count; got {in_channels} → {out_channels}")
        half = in_channels // 2
        self.k1 = _conv3x3_bn(half, half, stride=stride, relu=True)  # F₁ on X₂
        self.calibration = SelfCalibration(half, stride=stride, pooling_r=pooling_r)
        self.half = half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → [K₁(first C/2 channels), self-calibration(last C/2)], (N, C, ⌈H/s⌉, ⌈W/s⌉)."""
        x_plain, x_cal = x[:, : self.half], x[:, self.half :]  # (X₂, X₁): conv1_a then conv1_b in the code
        return torch.cat([self.k1(x_plain), self.calibration(x_cal)], dim=1)
