"""Parameter and multiply-accumulate counts, for checking models against their papers' tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (elements of every parameter tensor, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on zeros of ``input_shape`` (N, C, H, W: batch included).

    torch's FLOP counter counts 2 FLOPs per MAC; this returns MACs (what most vision papers call "FLOPs").

    Counts matrix products and convolutions (where papers count too); element-wise ops are left out.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() // 2
