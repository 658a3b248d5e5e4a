"""MobileViTv2's separable self-attention, and the patch unfold/fold it runs on.

Paper: S. Mehta, M. Rastegari (2022), "Separable Self-attention for Mobile Vision Transformers", TMLR 2023
(arXiv:2206.02680).

For k tokens x ∈ ℝ^{k×d} (§3.2, Fig. 4c):
    c_s = softmax(x W_I)                  context scores, W_I ∈ ℝ^{d×1}, softmax over the k tokens
    c_v = Σ_i c_s(i) · (x W_K)(i)         context vector ∈ ℝ^d, a score-weighted sum of the keys
    y   = (ReLU(x W_V) ⊙ c_v) W_O         c_v broadcast to every token
Cost is O(k·d) rather than multi-head attention's O(k²·d). As in the paper, W_I, W_K, W_V (fused) and
W_O are 1×1 convolutions applied to the unfolded layout (B, d, P, N): a feature map cut into N non-
overlapping ph×pw patches, P = ph·pw. Attention runs along N, separately for each of the P pixel
positions within a patch (the MobileViT scheme).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnx.exporters.attention_form import fused_active


def unfold_patches(x: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
    """(B, C, H, W) → (B, C, P, N): P = patch_h·patch_w pixel positions, N = (H/patch_h)·(W/patch_w) patches.

    Same element order as ``F.unfold(x, kernel, stride=kernel).reshape(B, C, P, N)``, but written as
    reshape/permute from shape-derived sizes, so H and W stay dynamic in an ONNX export.
    H and W must be multiples of the patch size.
    """
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch_h, patch_h, w // patch_w, patch_w)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c, patch_h * patch_w, -1)


def fold_patches(
    x: torch.Tensor, h: int | torch.Tensor, w: int | torch.Tensor, patch_h: int, patch_w: int
) -> torch.Tensor:
    """Inverse of :func:`unfold_patches`: (B, C, P, N) → (B, C, H, W) for the original H, W."""
    b, c = x.shape[0], x.shape[1]
    x = x.reshape(b, c, patch_h, patch_w, h // patch_h, w // patch_w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c, h, w)


class SeparableSelfAttention(nn.Module):
    """Separable self-attention (MobileViTv2's linear self-attention; Mehta & Rastegari 2022, arXiv:2206.02680).

    x: (B, d, P, N) unfolded patches → (B, d, P, N). Each of the P positions attends over its N tokens.
    """

    def __init__(self, dim: int, bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        # one 1×1 conv yields [x W_I | x W_K | x W_V]: 1 + d + d channels
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, kernel_size=1, bias=bias)
        self.out_proj = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)  # W_O

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, d, P, N) float unfolded patches → (ReLU(x W_V) ⊙ c_v) W_O, (B, d, P, N), same dtype."""
        query, key, value = torch.split(self.qkv_proj(x), [1, self.dim, self.dim], dim=1)
        if fused_active():
            # a fused-form ONNX export: c_v = softmax(1 · x W_I) · x W_K is attention of one query (a constant 1,
            # head size 1, scale 1) over the N tokens whose keys are the scores and whose values are x W_K,
            # per (B, P) as (batch, heads): one Attention node, the same maths
            q = torch.ones_like(query[:, :, :, :1]).permute(0, 2, 3, 1)  # (B, P, 1, 1)
            ctx = F.scaled_dot_product_attention(q, query.permute(0, 2, 3, 1), key.permute(0, 2, 3, 1), scale=1.0)
            return self.out_proj(F.relu(value) * ctx.permute(0, 3, 1, 2))  # (B, P, 1, d) → (B, d, P, 1)
        context_scores = query.softmax(dim=-1)  # c_s: (B, 1, P, N), softmax over the N tokens
        context_vector = (key * context_scores).sum(dim=-1, keepdim=True)  # c_v: (B, d, P, 1)
        return self.out_proj(F.relu(value) * context_vector)  # broadcast c_v over the N tokens
