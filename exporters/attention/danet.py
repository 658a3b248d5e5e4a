"""Dual Attention: position attention and channel attention.

Fu, Liu, Tian, Li, Bao, Fang, Lu (2019), "Dual Attention Network for Scene Segmentation", CVPR 2019.

Position Attention Module (PAM, paper eqs. 1–2). From A (C, H, W) the 1×1 convs give B, C' (C/8 channels)
and D (C channels), each reshaped to (·, N) with N = H·W pixels:

    s_ji = exp(B_i · C'_j) / Σ_{i=1..N} exp(B_i · C'_j)          (attention of pixel j on pixel i)
    E_j  = α · Σ_{i=1..N} s_ji · D_i + A_j

In matrix form: energy = Bᵀ C' (N × N), S = softmax over the last axis, out = α · (D Sᵀ) + A.

Channel Attention Module (CAM, paper eqs. 3–4), straight on A reshaped to (C, N):

    x_ji = exp(A_i · A_j) / Σ_{i=1..C} exp(A_i · A_j)
    E_j  = β · Σ_{i=1..C} x_ji · A_i + A_j

The authors' implementation feeds max(energy) − energy to the softmax (the max taken along each
row); this is what is implemented here: X = softmax(max_row(A Aᵀ) − A Aᵀ), out = β · (X A) + A.

α and β are learned scalars initialised to 0, so at initialisation both modules are the identity.
"""

from __future__ import annotations

import torch
from torch import nn


class PositionAttention(nn.Module):
    """DANet's PAM. x (N, C, H, W) → (N, C, H, W), any N, H, W; C ≥ 8 (query/key have C // 8 channels)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        qk = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, qk, kernel_size=1)
        self.key = nn.Conv2d(channels, qk, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))  # α in the paper; zero: attention branch off at init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → α·(D Sᵀ) + x, S the (N, H·W, H·W) softmax pixel affinity; the same shape and dtype."""
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, P, C/8), P = H·W
        k = self.key(x).flatten(2)  # (N, C/8, P)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (N, P, P): row j = weights of pixel j over all i
        v = self.value(x).flatten(2)  # (N, C, P)
        out = torch.bmm(v, attn.transpose(1, 2))  # out[:, :, j] = Σ_i v[:, :, i] · attn[j, i]
        return self.gamma * out.reshape_as(x) + x


class ChannelAttention(nn.Module):
    """DANet's CAM (no parameters besides β). x (N, C, H, W) → (N, C, H, W), any N, C, H, W."""

    def __init__(self) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))  # β in the paper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → β·(X A) + x, X the (N, C, C) softmax channel affinity; the same shape and dtype."""
        a = x.flatten(2)  # (N, C, P)
        energy = torch.bmm(a, a.transpose(1, 2))  # (N, C, C)
        # The reference code's max − energy: the same softmax up to the sign of the logits, and bounded.
        energy = energy.amax(dim=-1, keepdim=True) - energy
        attn = torch.softmax(energy, dim=-1)
        out = torch.bmm(attn, a)  # out[:, j] = Σ_i attn[j, i] · a[:, i]
        return self.beta * out.reshape_as(x) + x


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DANetHead(nn.Module):
    """The paper's head: PAM and CAM branches in parallel on the backbone features, summed, 1×1 classifier.

    As in the reference ``DANetHead``: each branch is 3×3 conv-BN-ReLU (C → C/4), the attention module,
    3×3 conv-BN-ReLU; the two branch outputs are summed, then dropout and a 1×1 conv to ``num_classes``.
    x (N, C, H, W) → logits (N, num_classes, H, W), any N, H, W. Fu et al., CVPR 2019, arXiv:1809.02983.
    """

    def __init__(self, in_channels: int, num_classes: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or in_channels // 4
        self.pam_in = _conv_bn_relu(in_channels, inter, 3)
        self.pam = PositionAttention(inter)
        self.pam_out = _conv_bn_relu(inter, inter, 3)
        self.cam_in = _conv_bn_relu(in_channels, inter, 3)
        self.cam = ChannelAttention()
        self.cam_out = _conv_bn_relu(inter, inter, 3)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(inter, num_classes, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → class logits (N, num_classes, H, W), same dtype."""
        sa = self.pam_out(self.pam(self.pam_in(x)))
        sc = self.cam_out(self.cam(self.cam_in(x)))
        return self.classifier(sa + sc)
