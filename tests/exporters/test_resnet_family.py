"""The attention ResNets and the CA-C2f detector: registration, placement, shapes, paper figures."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import attnx.exporters.models.detection  # noqa: F401  (registers ca_c2f_neck)
import attnx.exporters.models.resnet  # noqa: F401  (registers the ResNets)
from attnx.core.errors import UserError
from attnx.exporters.attention.bam import BAM
from attnx.exporters.attention.cbam import CBAM
from attnx.exporters.attention.coordinate import CoordinateAttention
from attnx.exporters.attention.eca import ECA
from attnx.exporters.attention.psa import PyramidSplitAttention
from attnx.exporters.attention.scconv import SCConv
from attnx.exporters.attention.se import SqueezeExcitation
from attnx.exporters.models.detection import CAC2fDetector
from attnx.exporters.models.resnet import Bottleneck, ResNet
from attnx.exporters.registry import ZooEntry, zoo

RESNETS = ["se_resnet", "cbam_resnet", "bam_resnet", "eca_resnet", "ca_resnet", "psa_resnet", "scconv_resnet"]
WITH_FIGURES = [n for n in RESNETS if n != "ca_resnet"]  # the CA paper has no ResNet-50 ImageNet table


def _entry(name: str) -> ZooEntry:
    return zoo()[name]


def _meta_resnet50(name: str) -> nn.Module:
    with torch.device("meta"):  # shapes only: no memory for weights, no init cost
        return _entry(name).build("resnet50").eval()


def test_registrations() -> None:
    for name in RESNETS:
        e = _entry(name)
        assert e.task == "classification" and e.dynamic_hw
        assert e.configs == ("tiny", "resnet50")
        assert e.sample_shape_for("tiny") == (3, 64, 64) and e.sample_shape_for("resnet50") == (3, 224, 224)
        assert e.description and "\n" not in e.description
        assert ("resnet50" in e.paper_figures) == (name in WITH_FIGURES)
    det = _entry("ca_c2f_neck")
    assert det.task == "detection" and det.dynamic_hw and det.sample_shape == (3, 64, 64)
    with pytest.raises(UserError, match="no config"):
        _entry("se_resnet").build("resnet18")


# ------------------------------------------------------------------------------------------ tiny models


@pytest.mark.parametrize("name", RESNETS)
def test_tiny_resnet_shapes_and_size(name: str) -> None:
    torch.manual_seed(0)
    model = _entry(name).build("tiny").eval()
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    with torch.no_grad():
        for shape in [(2, 3, 64, 64), (1, 3, 40, 56), (3, 3, 33, 17)]:
            y = model(torch.randn(*shape))
            assert y.shape == (shape[0], 10)
            assert torch.isfinite(y).all()
    with torch.no_grad():
        assert _entry(name).build("tiny", num_classes=3).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_builder_kwargs_override_the_architecture() -> None:
    model = _entry("se_resnet").build("tiny", layers=(2, 1, 1, 1))
    assert len([m for m in model.stages[0] if isinstance(m, Bottleneck)]) == 2
    with pytest.raises(TypeError):
        _entry("se_resnet").build("tiny", no_such_argument=1)


def test_basic_block_resnet_with_attention() -> None:
    model = ResNet(
        block="basic",
        layers=(1, 2),
        planes=(8, 16),
        num_classes=5,
        stem="small",
        stem_width=8,
        attention=partial(SqueezeExcitation, reduction=4),
        stage_attention=partial(BAM, reduction=4),
    ).eval()
    assert sum(isinstance(m, SqueezeExcitation) for m in model.modules()) == 3
    assert sum(isinstance(m, BAM) for m in model.modules()) == 1  # between the two stages only
    with torch.no_grad():
        assert model(torch.randn(2, 3, 21, 30)).shape == (2, 5)


def test_ca_c2f_neck_levels() -> None:
    torch.manual_seed(0)
    model = _entry("ca_c2f_neck").build("tiny").eval()
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    with torch.no_grad():
        for n, h, w in [(2, 64, 64), (1, 96, 160), (3, 32, 32)]:
            outs = model(torch.randn(n, 3, h, w))
            assert isinstance(outs, tuple) and len(outs) == 3
            assert [o.shape for o in outs] == [(n, 84, h // s, w // s) for s in (8, 16, 32)]
    small = CAC2fDetector(widths=(8, 8, 16, 16, 32), num_classes=3).eval()
    assert [o.shape[1] for o in small(torch.randn(1, 3, 64, 32))] == [7, 7, 7]
    assert sum(isinstance(m, CoordinateAttention) for m in model.modules()) == 4  # the four neck blocks
    with pytest.raises(UserError, match="multiples of 32"):
        model(torch.randn(1, 3, 48, 64))


# ---------------------------------------------------------------------------- paper placement (ResNet-50)


def _count(model: nn.Module, cls: type) -> int:
    return sum(isinstance(m, cls) for m in model.modules())


def test_resnet50_attention_placement() -> None:
    blocks = 3 + 4 + 6 + 3
    for name, cls in [
        ("se_resnet", SqueezeExcitation),
        ("cbam_resnet", CBAM),
        ("eca_resnet", ECA),
        ("ca_resnet", CoordinateAttention),
        ("psa_resnet", PyramidSplitAttention),
        ("scconv_resnet", SCConv),
    ]:
        assert _count(_meta_resnet50(name), cls) == blocks, name

    se = _meta_resnet50("se_resnet")
    assert [b.attn.fc1.in_features for s in se.stages for b in s] == [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    assert se.stages[1][0].conv1.stride == (2, 2)  # Caffe ResNet: stride on the first 1×1

    eca = _meta_resnet50("eca_resnet")
    assert [s[0].attn.k_size for s in eca.stages] == [5, 5, 5, 7]  # ψ(256), ψ(512), ψ(1024), ψ(2048)

    bam = _meta_resnet50("bam_resnet")
    bams = [[m for m in s if isinstance(m, BAM)] for s in bam.stages]
    assert [len(b) for b in bams] == [1, 1, 1, 0]  # after stages 1–3, at the down-sampling bottlenecks
    assert [b[0].channel.mlp[0].in_features for b in bams[:3]] == [256, 512, 1024]
    assert all(isinstance(bam.stages[i][-1], BAM) for i in range(3))

    psa = _meta_resnet50("psa_resnet")
    first = psa.stages[1][0]
    assert first.conv1.stride == (1, 1) and first.conv2[0].convs[0].stride == (2, 2)
    assert [c.groups for c in first.conv2[0].convs] == [1, 4, 8, 16]
    assert [c.kernel_size[0] for c in first.conv2[0].convs] == [3, 5, 7, 9]

    sc = _meta_resnet50("scconv_resnet").stages[2][0].conv2
    assert sc.k1[0].stride == (2, 2) and sc.calibration.k4[0].stride == (2, 2)
    assert sc.calibration.k3[0].stride == (1, 1) and sc.calibration.pool.kernel_size == 4


# --------------------------------------------------------------------------------------- paper figures


@pytest.mark.parametrize("name", WITH_FIGURES)
def test_resnet50_parameter_count_matches_paper(name: str) -> None:
    figures = _entry(name).paper_figures["resnet50"]
    assert figures.input_size == 224 and figures.source
    params = sum(p.numel() for p in _meta_resnet50(name).parameters()) / 1e6
    assert params == pytest.approx(figures.params_m, rel=0.02), f"{name}: {params:.3f}M vs {figures.params_m}M"


@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_FIGURES)
def test_resnet50_macs_match_paper(name: str) -> None:
    figures = _entry(name).paper_figures["resnet50"]
    model = _meta_resnet50(name)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    gmacs = counter.get_total_flops() / 2 / 1e9
    assert gmacs == pytest.approx(figures.gmacs, rel=0.05), f"{name}: {gmacs:.3f} GMACs vs {figures.gmacs}"


@pytest.mark.slow
def test_resnet50_stride_variants_cost() -> None:
    # The two ResNet-50 stride conventions the figures distinguish: 3.86 vs 4.09 GMACs, same parameters.
    costs = []
    for stride_in_1x1 in (True, False):
        with torch.device("meta"):
            model = ResNet(stride_in_1x1=stride_in_1x1).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.empty(1, 3, 224, 224, device="meta"))
        costs.append(counter.get_total_flops() / 2e9)
        assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's resnet50
    assert costs[0] == pytest.approx(3.858, abs=0.005) and costs[1] == pytest.approx(4.089, abs=0.005)
