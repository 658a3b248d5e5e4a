"""Scaled dot-product attention and multi-head self-attention.

Paper: A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, Ł. Kaiser, I. Polosukhin (2017),
"Attention Is All You Need", NeurIPS 2017.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V                                  (eq. 1)
    MultiHead(X) = Concat(head_1, …, head_h) W^O,
        head_i = Attention(X W_i^Q, X W_i^K, X W_i^V)

In a vision transformer (Dosovitskiy et al., 2021) Q, K and V all come from the same token sequence X
(self-attention), and the three projections are one fused linear layer ``qkv``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnx.exporters.attention_form import fused_active


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ / √d_k) V, written out as MatMul → Mul → Softmax → MatMul.

    q: (..., N, d_k), k: (..., M, d_k), v: (..., M, d_v) → (..., N, d_v). Leading axes (batch, heads) broadcast.
    The explicit form exports to plain ONNX ops that TensorRT's MHA fusion pattern-matches.
    """
    scale = q.shape[-1] ** -0.5  # d_k is a static (weight-derived) size, so this is a constant in the graph
    attn = torch.matmul(q, k.transpose(-2, -1)) * scale
    attn = attn.softmax(dim=-1)
    return torch.matmul(attn, v)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over a token sequence (Vaswani et al., 2017).

    x: (B, N, C) → (B, N, C), with C = dim split into ``num_heads`` heads of d_k = C / num_heads.

    ``use_sdpa=True`` computes eq. 1 with ``F.scaled_dot_product_attention`` instead of the explicit
    maths; the result and the parameters are identical (it exports to the same ops in ONNX).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, use_sdpa: bool = False) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.use_sdpa = use_sdpa
        # Rows [0:C) are W^Q, [C:2C) W^K, [2C:3C) W^V: the same layout as nn.MultiheadAttention.in_proj_weight.
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)  # W^O

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, C) float tokens → MultiHead(x), (B, N, C), same dtype."""
        b, n, c = x.shape
        # (B, N, 3C) → (3, B, heads, N, d_k); sizes from x.shape so batch and token count stay dynamic.
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.use_sdpa or fused_active():  # fused_active: a fused-form ONNX export (one Attention node)
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = scaled_dot_product_attention(q, k, v)
        # Concat(head_1, …, head_h): (B, heads, N, d_k) → (B, N, C)
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(out)
