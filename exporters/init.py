"""Initialisation helpers for checking untrained models."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def wake_zero_parameters(model: nn.Module, seed: int = 0) -> list[str]:
    """Give parameters that start at exactly zero a seeded non-zero value; return their names.

    Papers start some gates at zero (DANet's α and β, the STN's last layer), so an untrained model
    skips those branches entirely and a parity check at init would never exercise them.
    Scalars become 0.5; tensors get 0.1·N(0, 1).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    woken = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.numel() and not p.any():
                p.copy_(torch.tensor(0.5) if p.numel() == 1 else 0.1 * torch.randn(p.shape, generator=gen))
                woken.append(name)
    return woken
