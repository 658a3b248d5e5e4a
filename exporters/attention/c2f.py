"""CA-C2f: YOLOv8's C2f block followed by coordinate attention.

C2f ("CSP bottleneck with 2 convolutions", Jocher et al., Ultralytics YOLOv8, 2023): a 1×1 conv
(cv1) gives 2c channels, split into halves (y₀, y₁); n bottlenecks are chained on the last piece,
every intermediate output is kept, and a 1×1 conv (cv2) fuses the concatenation:

    [y₀, y₁] = split(cv1(x)),   y_{k+1} = Bottleneck_k(y_k)  (k = 1 … n)
    out      = cv2(Cat[y₀, y₁, …, y_{n+1}])                  ((2 + n)·c → C_out)

Each conv is Conv-BN-SiLU; a bottleneck is two 3×3 convs, with a residual add when ``shortcut``.
CA-C2f (as used in several YOLOv8 variants) then applies coordinate attention (Hou, Zhou, Feng,
CVPR 2021; see :mod:`attnx.exporters.attention.coordinate`) to the C2f output: y = CA(C2f(x)).

Shapes: x (N, C_in, H, W) → (N, C_out, H, W), any N, H, W ≥ 1.
"""

from __future__ import annotations

import torch
from torch import nn

from attnx.exporters.attention.coordinate import CoordinateAttention


class ConvBNSiLU(nn.Module):
    """YOLO's ``Conv``: k×k conv (no bias, 'same' padding for odd k), BatchNorm, SiLU."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, cin, H, W) float → (N, cout, ⌈H/stride⌉, ⌈W/stride⌉) for odd k, same dtype."""
        return self.act(self.bn(self.conv(x)))


class C2fBottleneck(nn.Module):
    """Two 3×3 Conv-BN-SiLU, plus the input when ``shortcut`` (channels are kept)."""

    def __init__(self, channels: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = ConvBNSiLU(channels, channels, 3)
        self.cv2 = ConvBNSiLU(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → cv2(cv1(x)), plus x when ``shortcut``; the same shape and dtype."""
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """YOLOv8's C2f: cv1 split, n chained bottlenecks keeping every output, concat, cv2."""

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = False, e: float = 0.5) -> None:
        super().__init__()
        self.c = int(out_channels * e)  # hidden width of each piece
        self.cv1 = ConvBNSiLU(in_channels, 2 * self.c, 1)
        self.cv2 = ConvBNSiLU((2 + n) * self.c, out_channels, 1)
        self.m = nn.ModuleList(C2fBottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → (N, C_out, H, W), same dtype (eq. above: split, chain, concat, cv2)."""
        y = self.cv1(x)
        pieces = [y[:, : self.c], y[:, self.c :]]  # the chunk(2, 1) of the reference, as fixed slices
        for m in self.m:
            pieces.append(m(pieces[-1]))
        return self.cv2(torch.cat(pieces, dim=1))


class CAC2f(nn.Module):
    """CA-C2f: coordinate attention on a C2f block's output.

    C2f: Ultralytics YOLOv8 (Jocher et al. 2023, no paper); CA: Hou, Zhou, Feng, CVPR 2021, arXiv:2103.02907.
    """

    def __init__(
        self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = False, reduction: int = 32
    ) -> None:
        super().__init__()
        self.c2f = C2f(in_channels, out_channels, n=n, shortcut=shortcut)
        self.ca = CoordinateAttention(out_channels, reduction=reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → CA(C2f(x)), (N, C_out, H, W), same dtype."""
        return self.ca(self.c2f(x))
