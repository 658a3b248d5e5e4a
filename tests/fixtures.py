"""Small factories that tests name as ``tests.fixtures:NAME`` model specs."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """A small conv classifier with a squeeze-excitation style gate: fast to export and run."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Sequential(nn.Linear(8, 8), nn.Sigmoid())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        s = self.gate(y.mean(dim=(2, 3)))
        return self.fc((y * s[:, :, None, None]).mean(dim=(2, 3)))


def tiny_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return TinyNet(num_classes)


class _SpectralHead(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svdvals(x.flatten(2))  # no ONNX symbolic exists for SVD


def unexportable_net() -> nn.Module:
    """A model whose submodule ``head.spectral`` uses an op no ONNX exporter supports."""
    net = nn.Module()
    net.conv = nn.Conv2d(3, 4, 1)
    net.head = nn.Sequential()
    net.head.add_module("spectral", _SpectralHead())

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = net.conv
            self.head = net.head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.conv(x))

    return Wrapper()


def not_a_module() -> str:
    return "not a model"
