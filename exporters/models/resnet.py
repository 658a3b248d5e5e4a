"""ResNet classifiers with channel / spatial attention: SE, CBAM, BAM, ECA, CA, EPSANet, SCNet.

One configurable :class:`ResNet` (He et al., 2016, "Deep Residual Learning for Image Recognition")
takes the attention as factories, so each paper's placement is a constructor argument:

* ``attention``: a module on each block's residual branch, after the last conv + BN and before the
  identity add (SE, CBAM, ECA, CA);
* ``stage_attention``: a module after every stage but the last, i.e. at the bottlenecks where the
  network down-samples (BAM);
* ``mid``: a replacement for the block's 3×3 conv + BN + ReLU (PSA in EPSANet, SC-Conv in SCNet).

Two stride conventions exist for the bottleneck's down-sampling: the original (Caffe) ResNet-50 strides
the first 1×1 conv (3.86 GMACs at 224²), torchvision's ("v1.5") strides the 3×3 conv (4.09 GMACs).
Each builder picks the one its paper's table counts; see each ``PaperFigures.source``.

Configs: ``tiny`` (bottleneck blocks, one per stage, widths 16–128, a 3×3/2 stem, 3×64×64 input,
10 classes) and ``resnet50`` (the standard ImageNet ResNet-50 layout [3, 4, 6, 3], 3×224×224,
1000 classes). Extra keyword arguments to a builder override :class:`ResNet`'s arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from attnx.exporters.attention.bam import BAM
from attnx.exporters.attention.cbam import CBAM
from attnx.exporters.attention.coordinate import CoordinateAttention
from attnx.exporters.attention.eca import ECA
from attnx.exporters.attention.psa import PyramidSplitAttention
from attnx.exporters.attention.scconv import SCConv
from attnx.exporters.attention.se import SqueezeExcitation
from attnx.exporters.registry import PaperFigures, register_model

AttentionFactory = Callable[[int], nn.Module]  # channels → module keeping (N, C, H, W)
MidFactory = Callable[[int, int, int], nn.Module]  # (in_channels, out_channels, stride) → conv + BN + ReLU


def _conv_bn_relu3x3(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3×3 convs (the first strided, replaceable by ``mid``), attention, identity add, ReLU."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        attention: AttentionFactory | None = None,
        mid: MidFactory | None = None,
        stride_in_1x1: bool = False,  # no 1×1 conv here; accepted for a uniform block interface
    ) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = (mid or _conv_bn_relu3x3)(in_channels, planes, stride)
        self.conv2 = nn.Conv2d(planes, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.attn = attention(out) if attention is not None else nn.Identity()
        self.downsample = _shortcut(in_channels, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → ReLU(attn(branch(x)) + shortcut(x)), (N, planes, ⌈H/s⌉, ⌈W/s⌉), same dtype."""
        identity = x if self.downsample is None else self.downsample(x)
        y = self.attn(self.bn2(self.conv2(self.conv1(x))))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (replaceable by ``mid``), 1×1 expand ×4, attention, identity add, ReLU."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        attention: AttentionFactory | None = None,
        mid: MidFactory | None = None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        out = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = (mid or _conv_bn_relu3x3)(planes, planes, s3)  # includes its BN and ReLU
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.attn = attention(out) if attention is not None else nn.Identity()
        self.downsample = _shortcut(in_channels, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → ReLU(attn(branch(x)) + shortcut(x)), (N, 4·planes, ⌈H/s⌉, ⌈W/s⌉), same dtype."""
        identity = x if self.downsample is None else self.downsample(x)
        y = self.conv2(self.relu(self.bn1(self.conv1(x))))
        y = self.attn(self.bn3(self.conv3(y)))  # e.g. SE: on the residual branch, before the add
        return self.relu(y + identity)


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A ResNet classifier with pluggable attention. x (N, 3, H, W) → logits (N, num_classes), any H, W.

    He, Zhang, Ren, Sun, CVPR 2016, arXiv:1512.03385.

    ``stem="imagenet"`` is the 7×7/2 conv + 3×3/2 max-pool stem (total stride 32), ``"small"`` a 3×3/2
    conv (total stride 16) for small inputs.
    """

    def __init__(
        self,
        block: str = "bottleneck",
        layers: Sequence[int] = (3, 4, 6, 3),
        planes: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        stem: str = "imagenet",
        stem_width: int = 64,
        stride_in_1x1: bool = False,
        attention: AttentionFactory | None = None,
        stage_attention: AttentionFactory | None = None,
        mid: MidFactory | None = None,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"unknown block '{block}'; choose one of {sorted(_BLOCKS)}")
        if len(layers) != len(planes):
            raise ValueError(f"layers {tuple(layers)} and planes {tuple(planes)} must have the same length")
        block_cls = _BLOCKS[block]
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif stem == "small":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
            )
        else:
            raise ValueError(f"unknown stem '{stem}'; choose 'imagenet' or 'small'")

        stages: list[nn.Module] = []
        cin = stem_width
        for i, (n, p) in enumerate(zip(layers, planes, strict=True)):
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block_cls(cin, p, stride, attention, mid, stride_in_1x1))
                cin = p * block_cls.expansion
            if stage_attention is not None and i < len(layers) - 1:
                blocks.append(stage_attention(cin))  # BAM: at the bottleneck between stages
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme: He-normal (fan-out) convs, unit-scale BN; other layers keep PyTorch defaults.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → the last stage's map (N, num_features, H', W'), before pooling.

        H' = ⌈H/32⌉ with the 'imagenet' stem and four stages, ⌈H/16⌉ with the 'small' stem (W' alike).
        """
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) float → logits (N, num_classes): features, global average pool, linear."""
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))  # global average pool, classifier


_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": dict(block="bottleneck", layers=(1, 1, 1, 1), planes=(16, 32, 64, 128), stem="small", stem_width=32),
    "resnet50": dict(block="bottleneck", layers=(3, 4, 6, 3), planes=(64, 128, 256, 512), stem="imagenet"),
}
_NUM_CLASSES = {"tiny": 10, "resnet50": 1000}
_CONFIG_NAMES = ("tiny", "resnet50")
_SHAPES = {"tiny": (3, 64, 64), "resnet50": (3, 224, 224)}


def _build(config: str, num_classes: int | None, kwargs: dict[str, Any], **arch: Any) -> ResNet:
    if config not in _CONFIGS:
        raise ValueError(f"unknown config '{config}'; choose one of {', '.join(_CONFIG_NAMES)}")
    args: dict[str, Any] = {**_CONFIGS[config], **arch, **kwargs}
    args["num_classes"] = _NUM_CLASSES[config] if num_classes is None else num_classes
    return ResNet(**args)


def _register(
    name: str, family: str, paper: str, figures: PaperFigures, aliases: tuple[str, ...] = ()
) -> Callable[[Callable], Callable]:
    return register_model(
        name,
        aliases=aliases,
        task="classification",
        family=family,
        paper=paper,
        sample_shape=_SHAPES["tiny"],
        dynamic_hw=True,
        configs=_CONFIG_NAMES,
        config_sample_shapes=_SHAPES,
        paper_figures={"resnet50": figures},
    )


# The original ResNet-50 (stride on the first 1×1 conv) is what "ResNet-50: 25.56M, 3.86 GFLOPs" in these
# papers' tables counts; FlopCounterMode counts it as 3.858 GMACs (convs and the classifier).
_V1_NOTE = (
    "the table's GFLOPs are multiply-accumulates of the original ResNet-50, which strides the first 1×1 conv of "
    "each down-sampling bottleneck (3.86 G); the authors' PyTorch code strides the 3×3 conv instead "
    "(torchvision v1.5, 4.09 G), so this build uses stride_in_1x1=True to be the network the table counts"
)


@_register(
    "seresnet",  # timm's spelling
    "channel",
    "Hu et al., 2018 (Squeeze-and-Excitation Networks)",
    PaperFigures(
        params_m=28.09,
        gmacs=3.87,
        source=(
            "SE-ResNet-50: GFLOPs from SENet (TPAMI) Table 2 (3.87 vs 3.86 for ResNet-50); parameters 28.09M "
            "from CBAM (ECCV 2018) Table 4, i.e. ResNet-50's 25.56M plus the ~2.5M the SENet paper states. "
            "Stride on the first 1×1 conv, as in the authors' Caffe models."
        ),
    ),
    aliases=("se_resnet",),
)
def build_se_resnet(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """SE-ResNet: a squeeze-and-excitation block (r=16) on every residual branch before the add."""
    return _build(config, num_classes, kwargs, attention=partial(SqueezeExcitation, reduction=16), stride_in_1x1=True)


@_register(
    "cbam_resnet",
    "channel-spatial",
    "Woo et al., 2018 (CBAM: Convolutional Block Attention Module)",
    PaperFigures(
        params_m=28.09,
        gmacs=3.864,
        source=f"ResNet50 + CBAM, CBAM (ECCV 2018) Table 4: 28.09M, 3.864 GFLOPs; {_V1_NOTE}.",
    ),
)
def build_cbam_resnet(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """CBAM-ResNet: channel then spatial attention (r=16, 7×7) on every residual branch before the add."""
    return _build(config, num_classes, kwargs, attention=partial(CBAM, reduction=16), stride_in_1x1=True)


@_register(
    "bam_resnet",
    "channel-spatial",
    "Park et al., 2018 (BAM: Bottleneck Attention Module)",
    PaperFigures(
        params_m=25.92,
        gmacs=3.94,
        source=(
            "ResNet50 + BAM, BAM (BMVC 2018) Table 4 (ImageNet): 25.92M, 3.94 GFLOPs (ResNet50 alone: 25.56M, "
            "3.86); 24.07 is not a parameter count there. Three BAMs (r=16, dilation 4) after stages 1–3 "
            f"add 0.36M; {_V1_NOTE}."
        ),
    ),
)
def build_bam_resnet(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """BAM-ResNet: a bottleneck attention module at each stage transition (after stages 1–3)."""
    return _build(config, num_classes, kwargs, stage_attention=partial(BAM, reduction=16), stride_in_1x1=True)


@_register(
    "ecaresnet",  # timm's spelling
    "channel",
    "Wang et al., 2020 (ECA-Net: Efficient Channel Attention)",
    PaperFigures(
        params_m=25.55,
        gmacs=3.86,
        source=(
            "ECA-Net50, ECA-Net (CVPR 2020) Table 2: '24.37M', 3.86 GFLOPs. The paper's parameter unit is 2^20: "
            "its ResNet-50/101/152 rows (24.37/42.49/57.40M) are the true 25.56/44.55/60.19M divided by "
            "1.048576, so ECA-Net50 has 24.37 × 1.048576 = 25.55M parameters (ECA adds only k weights per block). "
            f"Adaptive k per eq. 12 (5, 5, 5, 7 for 256–2048 channels); {_V1_NOTE}."
        ),
    ),
    aliases=("eca_resnet",),
)
def build_eca_resnet(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """ECA-ResNet: efficient channel attention (adaptive 1-D kernel) on every residual branch before the add."""
    return _build(config, num_classes, kwargs, attention=ECA, stride_in_1x1=True)


@register_model(
    "coordatt_resnet",  # Coordinate Attention (CoordAtt), not channel attention
    aliases=("ca_resnet",),
    task="classification",
    family="channel-spatial",
    paper="Hou et al., 2021 (Coordinate Attention for Efficient Mobile Network Design)",
    sample_shape=_SHAPES["tiny"],
    dynamic_hw=True,
    configs=_CONFIG_NAMES,
    config_sample_shapes=_SHAPES,
    # No paper figures: the CA paper reports ImageNet results for MobileNetV2 / MobileNeXt only.
)
def build_ca_resnet(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """CA-ResNet: coordinate attention (r=32, ≥8 mid channels) on every residual branch before the add."""
    return _build(config, num_classes, kwargs, attention=CoordinateAttention)


@_register(
    "epsanet",  # the paper's name; PSA here is Pyramid Split Attention, not Polarized Self-Attention
    "channel",
    "Zhang et al., 2021 (EPSANet: Pyramid Split Attention)",
    PaperFigures(
        params_m=22.56,
        gmacs=3.62,
        source=(
            "EPSANet-50 (Small), EPSANet Table 2: 22.56M, 3.62 GFLOPs; PSA (kernels 3/5/7/9, groups 1/4/8/16) "
            "replaces each bottleneck's 3×3 conv and carries the stride, as in the authors' code."
        ),
    ),
    aliases=("psa_resnet",),
)
def build_psa_resnet(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """EPSANet: a pyramid split attention module in place of each bottleneck's 3×3 conv."""
    # The tiny widths (16–128 planes, 4–32 channels per branch) cannot take 16 groups; halve the pyramid.
    groups = (1, 4, 8, 16) if config == "resnet50" else (1, 2, 4, 4)
    return _build(config, num_classes, kwargs, mid=partial(_psa_mid, groups=groups))


def _psa_mid(cin: int, cout: int, stride: int, groups: Sequence[int]) -> nn.Module:
    """EPSANet's conv2 + bn2 + ReLU, with PSA as conv2."""
    psa = PyramidSplitAttention(cin, cout, stride, kernels=(3, 5, 7, 9), groups=groups)
    return nn.Sequential(psa, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@_register(
    "scnet",  # the paper's and its code's name (scnet50); SCConv is also Li et al. 2023's unrelated module
    "spatial",
    "Liu et al., 2020 (SCNet: Self-Calibrated Convolutions)",
    PaperFigures(
        params_m=25.56,
        gmacs=4.0,
        source=(
            "SCNet-50, SCNet (CVPR 2020) Table 1 and the authors' README: 25.56M, 4.0 G MAdds. SC-Conv (r=4) "
            "replaces each bottleneck's 3×3 conv, strided in K1 and K4 as in the authors' code."
        ),
    ),
    aliases=("scconv_resnet",),
)
def build_scconv_resnet(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """SCNet: a self-calibrated convolution in place of each bottleneck's 3×3 conv."""
    return _build(config, num_classes, kwargs, mid=partial(SCConv, pooling_r=4))
