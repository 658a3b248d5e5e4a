"""Detector-style models whose neck is built from attention blocks.

``ca_c2f_neck``: a small YOLOv8-like network. A conv backbone (Conv-BN-SiLU down-sampling convs and
C2f blocks) gives three feature levels P3, P4, P5 at strides 8, 16, 32; a PAN/FPN neck made of CA-C2f
blocks (C2f + coordinate attention, see :mod:`attnx.exporters.attention.c2f`) fuses them top-down and then
bottom-up; a 1×1 conv per level predicts ``4 + num_classes`` channels (box and class logits, as in
YOLOv8's anchor-free head, without its DFL decoding or post-processing).

    top-down:   N4 = CA-C2f(Cat[Up(P5), P4]),    N3 = CA-C2f(Cat[Up(N4), P3])
    bottom-up:  M4 = CA-C2f(Cat[Down(N3), N4]),  M5 = CA-C2f(Cat[Down(M4), P5])
    heads:      (Head₃(N3), Head₄(M4), Head₅(M5))

Up is nearest ×2 up-sampling, Down a 3×3/2 Conv-BN-SiLU. Inputs need H and W multiples of 32 so that
the up-sampled maps line up with the lateral ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnx.core.errors import UserError
from attnx.exporters.attention.c2f import C2f, CAC2f, ConvBNSiLU
from attnx.exporters.registry import register_model

HW_MULTIPLE = 32  # the deepest level's stride: up-sampled maps must line up with the lateral ones


def _eager() -> bool:
    """True outside tracing/export, where a shape check may run as plain Python."""
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


class CAC2fDetector(nn.Module):
    """Backbone → CA-C2f PAN neck → per-level 1×1 heads.

    x (N, 3, H, W), H and W multiples of 32 → a tuple of three maps (N, 4 + num_classes, H/s, W/s)
    for s = 8, 16, 32.
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        depth: int = 1,
        num_classes: int = 80,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"widths must give 5 values (stem, stride 4, 8, 16, 32), got {tuple(widths)}")
        w0, w1, w2, w3, w4 = widths
        self.stem = ConvBNSiLU(in_channels, w0, 3, stride=2)  # stride 2
        self.stage2 = nn.Sequential(ConvBNSiLU(w0, w1, 3, stride=2), C2f(w1, w1, depth, shortcut=True))  # 4
        self.stage3 = nn.Sequential(ConvBNSiLU(w1, w2, 3, stride=2), C2f(w2, w2, depth, shortcut=True))  # 8
        self.stage4 = nn.Sequential(ConvBNSiLU(w2, w3, 3, stride=2), C2f(w3, w3, depth, shortcut=True))  # 16
        self.stage5 = nn.Sequential(ConvBNSiLU(w3, w4, 3, stride=2), C2f(w4, w4, depth, shortcut=True))  # 32
        # neck (YOLOv8's PAN, no shortcuts in the neck's C2f blocks)
        self.td4 = CAC2f(w4 + w3, w3, depth)
        self.td3 = CAC2f(w3 + w2, w2, depth)
        self.down3 = ConvBNSiLU(w2, w2, 3, stride=2)
        self.bu4 = CAC2f(w2 + w3, w3, depth)
        self.down4 = ConvBNSiLU(w3, w3, 3, stride=2)
        self.bu5 = CAC2f(w3 + w4, w4, depth)
        out = 4 + num_classes
        self.heads = nn.ModuleList(nn.Conv2d(c, out, 1) for c in (w2, w3, w4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, 3, H, W) float, H and W multiples of 32 → three maps (N, 4 + num_classes, H/s, W/s), s = 8, 16, 32.

        Raises UserError (eager mode only; an export cannot check) when H or W is not a multiple of 32.
        """
        if _eager() and (x.shape[-2] % HW_MULTIPLE or x.shape[-1] % HW_MULTIPLE):
            raise UserError(
                f"ca_c2f_neck input height and width must be multiples of {HW_MULTIPLE}, "
                f"got {x.shape[-2]}×{x.shape[-1]}"
            )
        p3 = self.stage3(self.stage2(self.stem(x)))
        p4 = self.stage4(p3)
        p5 = self.stage5(p4)
        n4 = self.td4(torch.cat([F.interpolate(p5, scale_factor=2, mode="nearest"), p4], dim=1))
        n3 = self.td3(torch.cat([F.interpolate(n4, scale_factor=2, mode="nearest"), p3], dim=1))
        m4 = self.bu4(torch.cat([self.down3(n3), n4], dim=1))
        m5 = self.bu5(torch.cat([self.down4(m4), p5], dim=1))
        return self.heads[0](n3), self.heads[1](m4), self.heads[2](m5)


_CONFIGS: dict[str, dict[str, Any]] = {"tiny": dict(widths=(8, 16, 32, 64, 128), depth=1)}


@register_model(
    "coordatt_c2f_neck",  # Coordinate Attention (CoordAtt) in the C2f blocks
    aliases=("ca_c2f_neck",),
    task="detection",
    family="channel-spatial",
    paper="Hou et al., 2021 (Coordinate Attention) in a YOLOv8-style C2f neck (Jocher et al., 2023)",
    sample_shape=(3, 64, 64),
    dynamic_hw=True,
    configs=("tiny",),
)
def build_ca_c2f_neck(config: str = "tiny", num_classes: int = 80, **kwargs: Any) -> nn.Module:
    """Small YOLOv8-style detector with a coordinate-attention C2f (CA-C2f) PAN neck; 3 output levels."""
    if config not in _CONFIGS:
        raise ValueError(f"unknown config '{config}'; choose one of {', '.join(_CONFIGS)}")
    return CAC2fDetector(**{**_CONFIGS[config], "num_classes": num_classes, **kwargs})
