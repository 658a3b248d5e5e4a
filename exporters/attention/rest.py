"""ResT's efficient multi-head self-attention (EMSA) and pixel-attention positional encoding (PA).

Paper: Q. Zhang, Y. Yang (2021), "ResT: An Efficient Transformer for Visual Recognition", NeurIPS 2021.

EMSA (eq. 3 of the paper), for tokens x of a H×W map:
    Q = x W^Q
    x̂ = LN(DWConv_s(x reshaped to a C×H×W map))      keys/values from a map reduced s× by a depth-wise
    K = x̂ W^K,  V = x̂ W^V                            conv (kernel s+1, stride s, padding s/2)
    EMSA(Q, K, V) = IN(Softmax(Conv₁ₓ₁(Q Kᵀ / √d_k))) V,  then the output projection W^O
Conv₁ₓ₁ mixes the h heads' attention logits ("multi-head interaction"), and IN, an instance norm over
each head's N×M attention map, restores the diversity the interaction removes. With one head there is
nothing to mix, so (as in the authors' code) both are skipped and EMSA is plain softmax attention.

PA (§3.3): positional encoding as pixel attention, PA(x) = x ⊙ σ(DWConv₃ₓ₃(x)); it has no fixed size,
so ResT accepts any input resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnx.exporters.attention_form import fused_active


def _instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance norm over the last two axes, no affine parameters or running stats (``nn.InstanceNorm2d``).

    Each (batch, head) attention map is normalised with its own mean and (biased) variance, in eval mode
    too. Written out (two-pass: centre, then mean of squares) instead of ``nn.InstanceNorm2d``, whose size
    checks emit TracerWarnings and whose export warns about training mode; this is plain ReduceMean/Sub/
    Div in ONNX.
    """
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    var = (centred * centred).mean(dim=(-2, -1), keepdim=True)
    return centred / torch.sqrt(var + eps)


class EfficientMultiHeadSelfAttention(nn.Module):
    """EMSA: multi-head self-attention with spatially reduced keys/values and head interaction.

    Zhang & Yang, NeurIPS 2021 (ResT), arXiv:2105.13677.

    forward(x, h, w): x (B, N, C) tokens of an h×w map (N = h·w, row-major) → (B, N, C).
    Keys/values come from a ⌈h/s⌉×⌈w/s⌉ map (s even), so the attention map is (B, heads, N, ⌈h/s⌉·⌈w/s⌉).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        sr_ratio: int = 1,
        qkv_bias: bool = False,
        apply_transform: bool = True,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # Glorot init of the projections, as nn.MultiheadAttention does: 2-3× the variance of Linear's
        # default, so a fresh net's logits spread enough across keys that IN (below) is well conditioned.
        nn.init.xavier_uniform_(self.q.weight)
        nn.init.xavier_uniform_(self.kv.weight)
        if sr_ratio > 1:
            # kernel s+1, padding s/2: the reduced map is ⌈h/s⌉×⌈w/s⌉ for any h, w (s even, as in ResT)
            self.sr: nn.Module = nn.Conv2d(
                dim, dim, kernel_size=sr_ratio + 1, stride=sr_ratio, padding=sr_ratio // 2, groups=dim
            )
            self.sr_norm: nn.Module = nn.LayerNorm(dim)
        else:
            self.sr = nn.Identity()
            self.sr_norm = nn.Identity()
        self.apply_transform = apply_transform and num_heads > 1
        if self.apply_transform:
            self.transform_conv = nn.Conv2d(num_heads, num_heads, kernel_size=1)
            # Start as the identity (no mixing yet): the default init scales the logits down by ~√3. On the
            # near-uniform maps that result, IN (gain ≈ 1 / logit spread) amplifies float rounding 10-50× per
            # stage, and torch and ONNX Runtime drift apart through a randomly initialised network.
            with torch.no_grad():
                self.transform_conv.weight.copy_(torch.eye(num_heads).reshape(num_heads, num_heads, 1, 1))
                self.transform_conv.bias.zero_()  # a per-head constant; softmax ignores it anyway

    def forward(self, x: torch.Tensor, h: int | torch.Tensor, w: int | torch.Tensor) -> torch.Tensor:
        """x (B, N, C) float tokens of an h×w map (N = h·w; h, w ints or traced sizes) → (B, N, C), same dtype."""
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, N, d)
        if self.sr_ratio > 1:
            kv_in = x.transpose(1, 2).reshape(b, c, h, w)
            kv_in = self.sr_norm(self.sr(kv_in).flatten(2).transpose(1, 2))  # (B, M, C)
        else:
            kv_in = x
        kv = self.kv(kv_in).reshape(b, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)  # (B, heads, M, d)
        attn = torch.matmul(q, k.transpose(-2, -1)) * self.scale  # (B, heads, N, M)
        if self.apply_transform:
            # heads are the channels of a 1×1 conv over the N×M logit "image"
            attn = _instance_norm(self.transform_conv(attn).softmax(dim=-1))
        elif fused_active():  # a fused-form ONNX export: one Attention node (same maths, same scale)
            return self.proj(F.scaled_dot_product_attention(q, k, v, scale=self.scale).transpose(1, 2).reshape(b, n, c))
        else:
            attn = attn.softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class PixelAttention(nn.Module):
    """ResT's positional encoding PA(x) = x ⊙ σ(DWConv₃ₓ₃(x)); x: (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pa_conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) float → x ⊙ σ(DWConv₃ₓ₃(x)), the same shape and dtype."""
        return x * torch.sigmoid(self.pa_conv(x))
