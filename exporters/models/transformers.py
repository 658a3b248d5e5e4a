"""Self-attention classifiers: ViT (DeiT), ResT and MobileViTv2.

Each builder takes ``config`` (a name from its registration) and overrides of that config's fields as
keyword arguments, e.g. ``build_vit(config="tiny", use_sdpa=True)``. ``num_classes=None`` keeps the
config's own class count (10 for "tiny", 1000 for the paper configurations).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import torch
from torch import nn

from attnx.core.errors import UserError
from attnx.exporters.attention.mobilevit import SeparableSelfAttention, fold_patches, unfold_patches
from attnx.exporters.attention.rest import EfficientMultiHeadSelfAttention, PixelAttention
from attnx.exporters.attention.self_attention import MultiHeadSelfAttention
from attnx.exporters.registry import PaperFigures, register_model

_C = TypeVar("_C")


def _configure(configs: dict[str, _C], config: str, num_classes: int | None, overrides: dict[str, Any]) -> _C:
    """The named config with ``num_classes`` and any field overrides applied."""
    cfg = configs[config]
    fields = {f.name for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)}; this model accepts: {', '.join(sorted(fields))}")
    if num_classes is not None:
        overrides = {**overrides, "num_classes": num_classes}
    return dataclasses.replace(cfg, **overrides)  # type: ignore[type-var]


def _eager() -> bool:
    """True outside tracing/export, where a shape check may run as plain Python."""
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


class Mlp(nn.Module):
    """Transformer feed-forward: Linear → GELU → Linear, on (B, N, C) tokens."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) float, e.g. (B, N, C) tokens → the same shape and dtype."""
        return self.fc2(self.act(self.fc1(x)))


# --------------------------------------------------------------------------------------------------
# ViT / DeiT
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """ViT hyper-parameters: a square ``img_size`` input cut into ``patch_size`` patches, ``depth`` blocks
    of width ``dim`` with ``num_heads`` heads and an MLP ``mlp_ratio``·dim wide, ``num_classes`` logits.
    """

    img_size: int
    patch_size: int
    dim: int
    depth: int
    num_heads: int
    num_classes: int
    mlp_ratio: float = 4.0
    in_chans: int = 3
    use_sdpa: bool = False  # F.scaled_dot_product_attention instead of explicit MatMul/Softmax/MatMul


_VIT_CONFIGS = {
    "tiny": ViTConfig(img_size=32, patch_size=4, dim=64, depth=4, num_heads=4, num_classes=10),
    # DeiT-S (= ViT-S/16): Touvron et al. 2021
    "vit_s16": ViTConfig(img_size=224, patch_size=16, dim=384, depth=12, num_heads=6, num_classes=1000),
}


class ViTBlock(nn.Module):
    """Pre-norm transformer encoder block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, use_sdpa: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(dim, num_heads, qkv_bias=True, use_sdpa=use_sdpa)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, C) float tokens → (B, N, C), same dtype."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT classifier: patch-embedding conv, class token, learned position embedding, pre-norm blocks.

    x: (B, C, img_size, img_size) → logits (B, num_classes). The learned position embedding has one
    entry per patch, so the input size is fixed. Dosovitskiy et al., ICLR 2021, arXiv:2010.11929
    (the vit_s16 config is DeiT-S: Touvron et al. 2021, arXiv:2012.12877).
    """

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        if cfg.img_size % cfg.patch_size:
            raise UserError(f"img_size {cfg.img_size} is not a multiple of patch_size {cfg.patch_size}")
        self.img_size = cfg.img_size
        num_patches = (cfg.img_size // cfg.patch_size) ** 2
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, cfg.dim))
        # DeiT's init; zeros would make every token's position identical
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(
            *[ViTBlock(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.use_sdpa) for _ in range(cfg.depth)]
        )
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_chans, img_size, img_size) float → logits (B, num_classes), read from the class token.

        Raises UserError (eager mode only) for any other input size.
        """
        if _eager() and tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise UserError(
                f"ViT input must be {self.img_size}×{self.img_size} (learned position embedding), "
                f"got {x.shape[-2]}×{x.shape[-1]}"
            )
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # batch from x.shape: stays dynamic
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


@register_model(
    "vit_tiny",
    task="classification",
    family="self-attention",
    paper="Dosovitskiy et al. 2021 (ViT); Touvron et al. 2021 (DeiT)",
    sample_shape=(3, 32, 32),
    dynamic_hw=False,
    configs=("tiny", "vit_s16"),
    config_sample_shapes={"vit_s16": (3, 224, 224)},
    paper_figures={
        "vit_s16": PaperFigures(
            params_m=22.05,
            gmacs=4.6,
            input_size=224,
            source="DeiT (Touvron et al. 2021), DeiT-S: 22M params (22.05M exactly in the released model), "
            "4.6 GFLOPs (multiply-adds) at 224²",
        )
    },
)
def build_vit(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Vision Transformer: patch embedding, class token, pre-norm multi-head self-attention blocks."""
    return VisionTransformer(_configure(_VIT_CONFIGS, config, num_classes, kwargs))


# --------------------------------------------------------------------------------------------------
# ResT
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResTConfig:
    """ResT hyper-parameters, one entry per stage (four): width, heads, blocks, key/value reduction s
    (``sr_ratios``); ``apply_transform`` turns on EMSA's head interaction and instance norm (heads > 1).
    """

    embed_dims: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    sr_ratios: tuple[int, int, int, int]
    num_classes: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    apply_transform: bool = True
    in_chans: int = 3


_REST_CONFIGS = {
    # one block a stage: EMSA's instance norm amplifies float rounding on the near-uniform attention maps of
    # a randomly initialised net, and each extra block compounds the torch/ONNX Runtime difference
    "tiny": ResTConfig(
        embed_dims=(16, 32, 64, 128),
        num_heads=(1, 2, 4, 8),
        depths=(1, 1, 1, 1),
        sr_ratios=(8, 4, 2, 1),
        num_classes=10,
    ),
    # ResT-Lite: Zhang & Yang 2021
    "rest_lite": ResTConfig(
        embed_dims=(64, 128, 256, 512),
        num_heads=(1, 2, 4, 8),
        depths=(2, 2, 2, 2),
        sr_ratios=(8, 4, 2, 1),
        num_classes=1000,
    ),
}


class ResTBlock(nn.Module):
    """Pre-norm block on (B, N, C) tokens of an h×w map: x + EMSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, mlp_ratio: float, qkv_bias: bool, transform: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientMultiHeadSelfAttention(dim, num_heads, sr_ratio, qkv_bias, transform)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int | torch.Tensor, w: int | torch.Tensor) -> torch.Tensor:
        """x (B, N, C) float tokens of an h×w map (N = h·w, row-major) → (B, N, C), same dtype."""
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x))


class ResTStem(nn.Module):
    """ResT stem: three 3×3 convs (strides 2, 1, 2) to 1/4 resolution, then PA positional encoding."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        hidden = out_ch // 2
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, hidden, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, out_ch, 3, stride=2, padding=1, bias=False),
        )
        self.pos = PixelAttention(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_ch, H, W) float → (B, out_ch, ⌈H/4⌉, ⌈W/4⌉), same dtype."""
        return self.pos(self.body(x))


class ResTPatchEmbed(nn.Module):
    """Stage downsampling: 3×3 stride-2 conv (padding 1) + BN + PA; (B, C, H, W) → (B, C', ⌈H/2⌉, ⌈W/2⌉)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_ch)
        self.pos = PixelAttention(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_ch, H, W) float → (B, out_ch, ⌈H/2⌉, ⌈W/2⌉), same dtype."""
        return self.pos(self.norm(self.conv(x)))


class ResT(nn.Module):
    """ResT classifier: stem, 4 stages of EMSA blocks (PA patch embedding between stages), LN, mean, linear.

    x: (B, C, H, W), any H, W (every downsampling rounds up) → logits (B, num_classes).
    Zhang & Yang, NeurIPS 2021, arXiv:2105.13677.
    """

    def __init__(self, cfg: ResTConfig) -> None:
        super().__init__()
        dims = cfg.embed_dims
        self.downsample = nn.ModuleList(
            [ResTStem(cfg.in_chans, dims[0])] + [ResTPatchEmbed(dims[i - 1], dims[i]) for i in range(1, 4)]
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(
                ResTBlock(dims[i], cfg.num_heads[i], cfg.sr_ratios[i], cfg.mlp_ratio, cfg.qkv_bias, cfg.apply_transform)
                for _ in range(cfg.depths[i])
            )
            for i in range(4)
        )
        self.norm = nn.LayerNorm(dims[3])
        self.head = nn.Linear(dims[3], cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_chans, H, W) float, any H, W → logits (B, num_classes), same dtype."""
        for i, (down, stage) in enumerate(zip(self.downsample, self.stages)):
            x = down(x)
            b, c, h, w = x.shape  # the stage's map size, from the tensor: dynamic in the export
            x = x.flatten(2).transpose(1, 2)  # (B, h·w, C)
            for block in stage:
                x = block(x, h, w)
            if i < 3:
                x = x.transpose(1, 2).reshape(b, c, h, w)
        return self.head(self.norm(x).mean(dim=1))  # LN then global average pool over tokens


@register_model(
    "rest",
    task="classification",
    family="self-attention",
    paper="Zhang & Yang 2021 (ResT)",
    sample_shape=(3, 64, 64),
    dynamic_hw=True,
    configs=("tiny", "rest_lite"),
    config_sample_shapes={"rest_lite": (3, 224, 224)},
    paper_figures={
        "rest_lite": PaperFigures(
            params_m=10.49,
            gmacs=1.4,
            input_size=224,
            source="ResT (Zhang & Yang 2021), ResT-Lite: 10.49M params, 1.4 GFLOPs (multiply-adds) at 224². "
            "Counting every conv and matmul (torch FlopCounterMode) gives 1.53 GMACs, 9% more: the paper "
            "counts differently",
        )
    },
)
def build_rest(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """ResT: efficient multi-head self-attention (reduced keys/values, head interaction), PA positions."""
    return ResT(_configure(_REST_CONFIGS, config, num_classes, kwargs))


# --------------------------------------------------------------------------------------------------
# MobileViTv2
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MobileViTv2Stage:
    """One stage: ``mv2_blocks`` inverted residuals to ``out_ch`` (the first with ``stride``), then, when
    ``attn_blocks`` > 0, a MobileViTv2 block of width ``attn_dim`` and that many layers on ``patch``² patches.
    """

    out_ch: int
    stride: int  # of the stage's first inverted residual
    mv2_blocks: int
    attn_dim: int = 0  # 0: no MobileViTv2 block in this stage
    attn_blocks: int = 0
    patch: int = 2


@dataclasses.dataclass(frozen=True)
class MobileViTv2Config:
    """MobileViTv2 hyper-parameters: stem width, stages, class count, the inverted residuals' expansion
    ratio and the attention FFN's width multiplier.
    """

    stem_ch: int
    stages: tuple[MobileViTv2Stage, ...]
    num_classes: int
    expand_ratio: float = 2.0
    ffn_multiplier: float = 2.0
    in_chans: int = 3


def _mobilevitv2_width(multiplier: float, num_classes: int) -> MobileViTv2Config:
    """The paper's network at width multiplier α (ml-cvnets' mobilevit_v2 configuration)."""

    def ch(c: float, divisor: int = 8) -> int:
        return _make_divisible(c * multiplier, divisor)

    s = MobileViTv2Stage
    return MobileViTv2Config(
        stem_ch=_make_divisible(min(64.0, max(16.0, 32 * multiplier)), 8),
        stages=(
            s(ch(64, 16), 1, 1),
            s(ch(128), 2, 2),
            s(ch(256), 2, 1, ch(128), 2),
            s(ch(384), 2, 1, ch(192), 4),
            s(ch(512), 2, 1, ch(256), 3),
        ),
        num_classes=num_classes,
    )


def _make_divisible(v: float, divisor: int) -> int:
    """Round to the nearest multiple of ``divisor``, not going below 90% of v (MobileNetV2's rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


_MOBILEVITV2_CONFIGS = {
    # attention at 1/4 and 1/8 resolution with 2×2 patches: any H, W that are multiples of 16
    "tiny": MobileViTv2Config(
        stem_ch=16,
        stages=(
            MobileViTv2Stage(16, 1, 1),
            MobileViTv2Stage(32, 2, 1, attn_dim=32, attn_blocks=1),
            MobileViTv2Stage(48, 2, 1, attn_dim=48, attn_blocks=2),
            MobileViTv2Stage(64, 2, 1),
        ),
        num_classes=10,
    ),
    # MobileViTv2-0.5: Mehta & Rastegari 2022, α = 0.5
    "mobilevitv2_050": _mobilevitv2_width(0.5, 1000),
}


def _conv_bn(in_ch: int, out_ch: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → 3×3 depth-wise (stride) → 1×1 project, residual when shapes match.

    Sandler, Howard, Zhu, Zhmoginov, Chen, CVPR 2018, arXiv:1801.04381.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = _make_divisible(round(in_ch * expand_ratio), 8)
        self.block = nn.Sequential(
            _conv_bn(in_ch, hidden, 1),
            _conv_bn(hidden, hidden, 3, stride=stride, groups=hidden),
            _conv_bn(hidden, out_ch, 1, act=False),
        )
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_ch, H, W) float → (B, out_ch, ⌈H/s⌉, ⌈W/s⌉) for stride s, plus x when the shapes match."""
        return x + self.block(x) if self.use_residual else self.block(x)


class GroupNorm1(nn.GroupNorm):
    """Layer norm over all of (C, ...) per sample: ``nn.GroupNorm(1, C)``.

    Calls the aten op directly: ``F.group_norm``'s Python-side size check emits TracerWarnings during export.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__(1, num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, ...) float → normalised over all but the batch axis, per-channel affine; same shape, dtype."""
        return torch.group_norm(x, 1, self.weight, self.bias, self.eps, False)


class LinearAttnFFN(nn.Module):
    """MobileViTv2 transformer layer on (B, d, P, N): x + SSA(LN(x)), then x + FFN(LN(x)).

    LN is a layer norm over the whole (d, P, N) slab, i.e. GroupNorm with one group, as in the paper's code.
    """

    def __init__(self, dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.attn = SeparableSelfAttention(dim)
        self.norm2 = GroupNorm1(dim)
        self.ffn = nn.Sequential(nn.Conv2d(dim, ffn_dim, 1), nn.SiLU(), nn.Conv2d(ffn_dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, d, P, N) float unfolded patches → (B, d, P, N), same dtype."""
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class MobileViTv2Block(nn.Module):
    """Local 3×3 depth-wise + 1×1 conv, unfold to patches, separable-attention layers, fold, 1×1 conv + BN.

    x: (B, C, H, W) → (B, C, H, W); H and W must be multiples of the patch size.
    """

    def __init__(self, in_ch: int, attn_dim: int, n_layers: int, patch: int, ffn_multiplier: float) -> None:
        super().__init__()
        self.patch = patch
        self.local_rep = nn.Sequential(
            _conv_bn(in_ch, in_ch, 3, groups=in_ch), nn.Conv2d(in_ch, attn_dim, 1, bias=False)
        )
        ffn_dim = int(ffn_multiplier * attn_dim) // 16 * 16
        self.global_rep = nn.Sequential(
            *[LinearAttnFFN(attn_dim, ffn_dim) for _ in range(n_layers)], GroupNorm1(attn_dim)
        )
        self.conv_proj = _conv_bn(attn_dim, in_ch, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) float, H and W multiples of the patch size → (B, C, H, W), same dtype."""
        x = self.local_rep(x)
        h, w = x.shape[-2], x.shape[-1]
        x = self.global_rep(unfold_patches(x, self.patch, self.patch))
        return self.conv_proj(fold_patches(x, h, w, self.patch, self.patch))


class MobileViTv2(nn.Module):
    """MobileViTv2 classifier: conv stem, stages of inverted residuals + MobileViTv2 blocks, pool, linear.

    x: (B, C, H, W) → logits (B, num_classes); H and W must be multiples of ``hw_multiple`` (the total
    stride in front of the deepest attention block times its patch size), so that patches tile the maps.
    Mehta & Rastegari 2022, arXiv:2206.02680.
    """

    def __init__(self, cfg: MobileViTv2Config) -> None:
        super().__init__()
        self.stem = _conv_bn(cfg.in_chans, cfg.stem_ch, 3, stride=2)
        layers: list[nn.Module] = []
        in_ch, stride, self.hw_multiple = cfg.stem_ch, 2, 1
        for st in cfg.stages:
            for i in range(st.mv2_blocks):
                layers.append(InvertedResidual(in_ch, st.out_ch, st.stride if i == 0 else 1, cfg.expand_ratio))
                in_ch = st.out_ch
            stride *= st.stride
            if st.attn_blocks:
                layers.append(MobileViTv2Block(in_ch, st.attn_dim, st.attn_blocks, st.patch, cfg.ffn_multiplier))
                self.hw_multiple = math.lcm(self.hw_multiple, stride * st.patch)
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_chans, H, W) float → logits (B, num_classes).

        Raises UserError (eager mode only) when H or W is not a multiple of ``hw_multiple``.
        """
        if _eager() and (x.shape[-2] % self.hw_multiple or x.shape[-1] % self.hw_multiple):
            raise UserError(
                f"MobileViTv2 input height and width must be multiples of {self.hw_multiple}, "
                f"got {x.shape[-2]}×{x.shape[-1]}"
            )
        x = self.layers(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))  # global average pool


@register_model(
    "mobilevitv2",
    task="classification",
    family="self-attention",
    paper="Mehta & Rastegari 2022 (MobileViTv2, separable self-attention)",
    sample_shape=(3, 64, 64),
    dynamic_hw=True,
    configs=("tiny", "mobilevitv2_050"),
    config_sample_shapes={"mobilevitv2_050": (3, 256, 256)},
    paper_figures={
        "mobilevitv2_050": PaperFigures(
            params_m=1.37,
            gmacs=0.466,
            input_size=256,
            source="MobileViTv2 (Mehta & Rastegari 2022), MobileViTv2-0.5: 1.37M params, 0.466 GFLOPs "
            "(multiply-adds) at 256×256",
        )
    },
)
def build_mobilevitv2(config: str = "tiny", num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """MobileViTv2: MobileNetV2 blocks with linear-cost separable self-attention over unfolded patches."""
    return MobileViTv2(_configure(_MOBILEVITV2_CONFIGS, config, num_classes, kwargs))
