"""Models around sampling and dense (per-pixel) attention: Spatial Transformer, DANet, External Attention."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from attnx.core.errors import UserError
from attnx.exporters.attention.danet import DANetHead
from attnx.exporters.attention.external import EAHead
from attnx.exporters.attention.stn import SpatialTransformer
from attnx.exporters.registry import register_model


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class STNClassifier(nn.Module):
    """A spatial transformer in front of a small CNN: x (N, C, H, W) → logits (N, num_classes), any H, W ≥ 4."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, int, int]) -> None:
        super().__init__()
        self.stn = SpatialTransformer(in_channels)
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, w1),
            nn.MaxPool2d(2),
            _conv_bn_relu(w1, w2),
            nn.MaxPool2d(2),
            _conv_bn_relu(w2, w3),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(w3, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float, H, W ≥ 4 → logits (N, num_classes), same dtype."""
        feats = self.features(self.stn(x)).mean(dim=(2, 3))  # global pooling keeps any input size valid
        return self.classifier(feats)


class DilatedBackbone(nn.Module):
    """Output-stride-8 conv backbone: three stride-2 stages, then two dilated stages (as DeepLab/DANet dilate
    ResNet's last stages instead of striding, keeping resolution while growing the receptive field).

    x (N, 3, H, W) → (N, widths[3], ⌈H/8⌉, ⌈W/8⌉).
    """

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.out_channels = w4
        self.layers = nn.Sequential(
            _conv_bn_relu(in_channels, w1, stride=2),
            _conv_bn_relu(w1, w2, stride=2),
            _conv_bn_relu(w2, w3, stride=2),
            _conv_bn_relu(w3, w4, dilation=2),
            _conv_bn_relu(w4, w4, dilation=4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → features (N, widths[3], ⌈H/8⌉, ⌈W/8⌉), same dtype."""
        return self.layers(x)


class SegmentationNet(nn.Module):
    """Backbone → head → bilinear upsampling of the logits to the input's size (taken from x.shape)."""

    def __init__(self, backbone: DilatedBackbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → the head's logits (N, K, h, w) bilinearly resized to (N, K, H, W), same dtype."""
        logits = self.head(self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


_W = TypeVar("_W", bound=tuple[int, ...])

_STN_WIDTHS = {"tiny": (16, 32, 64)}
_SEG_WIDTHS = {"tiny": (16, 32, 64, 128)}


def _widths(table: Mapping[str, _W], config: str, model: str) -> _W:
    if config not in table:
        raise UserError(f"model '{model}' has no config '{config}'; choose one of: {', '.join(table)}")
    return table[config]


@register_model(
    "stn_classifier",
    task="classification",
    family="spatial-transformer",
    paper="Jaderberg et al. 2015, Spatial Transformer Networks",
    sample_shape=(1, 28, 28),
    dynamic_hw=True,
    configs=("tiny",),
)
def build_stn_classifier(
    config: str = "tiny", num_classes: int = 10, in_channels: int = 1, **kwargs: object
) -> nn.Module:
    """Spatial transformer (affine, bilinear) in front of a small CNN classifier (MNIST-like input)."""
    if kwargs:
        raise UserError(f"stn_classifier: unknown arguments {', '.join(kwargs)}")
    w1, w2, w3 = _widths(_STN_WIDTHS, config, "stn_classifier")
    return STNClassifier(in_channels, num_classes, (w1, w2, w3))


@register_model(
    "danet_seg",
    task="segmentation",
    family="self-attention",
    paper="Fu et al. 2019, Dual Attention Network for Scene Segmentation",
    sample_shape=(3, 64, 64),
    dynamic_hw=True,
    configs=("tiny",),
)
def build_danet_seg(config: str = "tiny", num_classes: int = 5, gate_init: float = 0.0, **kwargs: object) -> nn.Module:
    """DANet: position and channel attention heads in parallel on a dilated output-stride-8 backbone.

    ``gate_init`` sets the PAM/CAM residual gates α, β (the paper starts them at 0, which switches the
    attention branches off; a non-zero value exercises them, e.g. for parity tests).
    """
    if kwargs:
        raise UserError(f"danet_seg: unknown arguments {', '.join(kwargs)}")
    w1, w2, w3, w4 = _widths(_SEG_WIDTHS, config, "danet_seg")
    backbone = DilatedBackbone(3, (w1, w2, w3, w4))
    head = DANetHead(backbone.out_channels, num_classes)
    with torch.no_grad():
        head.pam.gamma.fill_(gate_init)
        head.cam.beta.fill_(gate_init)
    return SegmentationNet(backbone, head)


@register_model(
    "external_attention_seg",
    aliases=("ea_seg",),
    task="segmentation",
    family="external-attention",
    paper="Guo et al. 2021, Beyond Self-attention: External Attention using Two Linear Layers",
    sample_shape=(3, 64, 64),
    dynamic_hw=True,
    configs=("tiny",),
)
def build_ea_seg(config: str = "tiny", num_classes: int = 5, memory_slots: int = 64, **kwargs: object) -> nn.Module:
    """EANet: an external-attention head (two linear memories, double normalization) on a dilated OS-8 backbone."""
    if kwargs:
        raise UserError(f"external_attention_seg: unknown arguments {', '.join(kwargs)}")
    w1, w2, w3, w4 = _widths(_SEG_WIDTHS, config, "external_attention_seg")
    backbone = DilatedBackbone(3, (w1, w2, w3, w4))
    head = EAHead(backbone.out_channels, num_classes, channels=w4 // 2, memory_slots=memory_slots)
    return SegmentationNet(backbone, head)
