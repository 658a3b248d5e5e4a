"""External Attention.

Guo, Liu, Mu, Hu (2021), "Beyond Self-attention: External Attention using Two Linear Layers for Visual
Tasks" (arXiv:2105.02358; IEEE TPAMI 2022).

Self-attention's keys and values are replaced by two small learned memories M_k, M_v ∈ R^{S×d}
shared by all samples (S = 64 slots), so the cost is linear in the number of pixels N (paper §3):

    A     = Norm(F · M_kᵀ)          F (N × d) the pixel features, A (N × S)
    F_out = A · M_v                 (N × d)

with Norm the double normalization (§3), softmax over the pixels then ℓ1 over the slots:

    α̃_ij = exp(a_ij) / Σ_k exp(a_kj)          (k over pixels)
    α_ij = α̃_ij / Σ_k α̃_ik                   (k over slots; ε added to the sum in the reference code)

The segmentation block follows the reference implementation (EANet ``External_attention``):
1×1 conv in, M_k, double norm, M_v, 1×1 conv + BN out, residual, ReLU.
"""

from __future__ import annotations

import torch
from torch import nn

from attnx.exporters import ops


class ExternalAttention(nn.Module):
    """EANet's external-attention block. x (N, C, H, W) → (N, C, H, W), any N, H, W.

    Guo, Liu, Mu, Hu 2021, arXiv:2105.02358.

    ``memory_slots`` is S. M_k and M_v are bias-free linear layers (as the reference's bias-free Conv1d);
    M_v starts as a copy of M_kᵀ, as the reference initialises it.
    """

    def __init__(self, channels: int, memory_slots: int = 64, eps: float = 1e-9) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.mk = nn.Linear(channels, memory_slots, bias=False)  # weight (S, d) = M_k
        self.mv = nn.Linear(memory_slots, channels, bias=False)  # weight (d, S) = M_vᵀ
        with torch.no_grad():
            self.mv.weight.copy_(self.mk.weight.t())
        self.conv_out = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.relu = nn.ReLU(inplace=True)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → ReLU(x + BN(conv(Norm(F M_kᵀ) M_v))), F = conv_in(x) as (N, H·W, C); same shape."""
        f = self.conv_in(x)
        feats = f.flatten(2).transpose(1, 2)  # F: (N, P, d), P = H·W pixels
        attn = ops.double_norm(self.mk(feats), self.eps)  # A = Norm(F M_kᵀ): (N, P, S)
        out = self.mv(attn).transpose(1, 2).reshape_as(f)  # F_out = A M_v, back to (N, d, H, W)
        return self.relu(self.conv_out(out) + x)


class EAHead(nn.Module):
    """EANet's segmentation head: 3×3 conv-BN-ReLU in, external attention, 3×3 conv-BN-ReLU, 1×1 classifier.

    x (N, C_in, H, W) → logits (N, num_classes, H, W), any N, H, W.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int, memory_slots: int = 64) -> None:
        super().__init__()
        self.conv_in = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.attention = ExternalAttention(channels, memory_slots)
        self.conv_out = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → class logits (N, num_classes, H, W), same dtype."""
        return self.classifier(self.conv_out(self.attention(self.conv_in(x))))
