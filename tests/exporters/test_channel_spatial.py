"""Channel / spatial attention modules: shapes on odd sizes, and the maths against naive references."""

from __future__ import annotations

import io
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnx.exporters.attention.bam import BAM
from attnx.exporters.attention.c2f import C2f, CAC2f
from attnx.exporters.attention.cbam import CBAM
from attnx.exporters.attention.coordinate import CoordinateAttention
from attnx.exporters.attention.eca import ECA, eca_kernel_size
from attnx.exporters.attention.psa import PyramidSplitAttention
from attnx.exporters.attention.scconv import SCConv, SelfCalibration
from attnx.exporters.attention.se import SqueezeExcitation


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics (so eval-mode BN is not the identity), eval mode, float64."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module.double().eval()


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


# ---------------------------------------------------------------------------------------------- shapes

SIZES = [(2, 7, 9), (1, 3, 5), (3, 1, 1), (1, 16, 11)]  # (N, H, W): odd, tiny, 1×1, not multiples of 4

SHAPE_PRESERVING = {
    "se": lambda c: SqueezeExcitation(c, reduction=4),
    "cbam": lambda c: CBAM(c, reduction=4),
    "bam": lambda c: BAM(c, reduction=4),
    "eca": lambda c: ECA(c),
    "ca": lambda c: CoordinateAttention(c),
    "scconv": lambda c: SCConv(c, c),
    "psa": lambda c: PyramidSplitAttention(c, c, groups=(1, 2, 4, 4)),
    "c2f": lambda c: C2f(c, c, n=2, shortcut=True),
    "ca_c2f": lambda c: CAC2f(c, c, n=1),
}


@pytest.mark.parametrize("name", sorted(SHAPE_PRESERVING))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_module_keeps_shape(name: str, size: tuple[int, int, int]) -> None:
    n, h, w = size
    module = SHAPE_PRESERVING[name](16).eval()
    x = torch.randn(n, 16, h, w)
    with torch.no_grad():
        y = module(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_strided_and_channel_changing_blocks(size: tuple[int, int, int]) -> None:
    n, h, w = size
    x = torch.randn(n, 16, h, w)
    oh, ow = (h + 1) // 2, (w + 1) // 2  # 'same'-padded convs with stride 2
    with torch.no_grad():
        assert SCConv(16, 16, stride=2).eval()(x).shape == (n, 16, oh, ow)
        assert PyramidSplitAttention(16, 32, stride=2, groups=(1, 2, 4, 8)).eval()(x).shape == (n, 32, oh, ow)
        assert C2f(16, 24, n=1).eval()(x).shape == (n, 24, h, w)
        assert CAC2f(16, 24, n=2, shortcut=True).eval()(x).shape == (n, 24, h, w)


def test_invalid_configurations_are_rejected() -> None:
    with pytest.raises(ValueError, match="odd"):
        ECA(64, k_size=4)
    with pytest.raises(ValueError, match="groups"):
        PyramidSplitAttention(16, 16)  # 16 groups cannot divide 4 channels per branch
    with pytest.raises(ValueError, match="divisible"):
        PyramidSplitAttention(16, 18, groups=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="even"):
        SCConv(15, 15)
    with pytest.raises(ValueError):
        eca_kernel_size(0)


# ------------------------------------------------------------------------------------------------- ECA

# ψ(C) = |log2(C)/2 + 1/2|_odd, worked by hand: t = (log2 C + 1)/2, truncated, an even result + 1.
ECA_TABLE = {
    1: 1,  # t = 0.5 → 0 → 1
    4: 1,  # t = 1.5 → 1
    8: 3,  # t = 2 → 3
    16: 3,  # t = 2.5 → 2 → 3
    32: 3,  # t = 3
    64: 3,  # t = 3.5 → 3
    96: 3,  # log2 96 = 6.585, t = 3.79 → 3
    128: 5,  # t = 4 → 5
    256: 5,  # t = 4.5 → 4 → 5
    320: 5,  # log2 320 = 8.32, t = 4.66 → 4 → 5
    512: 5,  # t = 5
    1024: 5,  # t = 5.5 → 5
    2048: 7,  # t = 6 → 7
    4096: 7,  # t = 6.5 → 6 → 7
    8192: 7,  # t = 7
}


@pytest.mark.parametrize(("channels", "k"), sorted(ECA_TABLE.items()))
def test_eca_kernel_size_rule(channels: int, k: int) -> None:
    assert eca_kernel_size(channels) == k
    assert ECA(channels).conv.kernel_size == (k,)


def test_eca_kernel_size_rule_other_gamma_b() -> None:
    assert eca_kernel_size(64, gamma=3, b=2) == 3  # (6 + 2)/3 = 2.67 → 2 → 3
    assert eca_kernel_size(256, gamma=1, b=0) == 9  # 8 → 9
    assert eca_kernel_size(256, gamma=1, b=1) == 9  # 9


@pytest.mark.parametrize(("channels", "k_size"), [(20, None), (9, 5), (6, 7)])
def test_eca_matches_loop_over_channels(channels: int, k_size: int | None) -> None:
    module = _randomise(ECA(channels, k_size=k_size), seed=channels)
    k = module.k_size
    w = module.conv.weight.detach()[0, 0].tolist()
    x = torch.randn(2, channels, 3, 5, dtype=torch.float64)
    ref = torch.empty_like(x)
    n_batch, c_count, h, wd = x.shape
    for n in range(n_batch):
        y = [sum(float(x[n, c, i, j]) for i in range(h) for j in range(wd)) / (h * wd) for c in range(c_count)]
        for c in range(c_count):
            s = 0.0
            for j in range(k):  # ω_c = σ(Σ_j w_j · y_{c + j − (k−1)/2}), zero outside the channel range
                src = c + j - (k - 1) // 2
                if 0 <= src < c_count:
                    s += w[j] * y[src]
            ref[n, c] = x[n, c] * _sigmoid(s)
    with torch.no_grad():
        torch.testing.assert_close(module(x), ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ coordinate attention


def _hswish(t: float) -> float:
    return t * min(max(t + 3.0, 0.0), 6.0) / 6.0


@pytest.mark.parametrize("hw", [(5, 7), (4, 1), (1, 6)])
def test_coordinate_attention_matches_per_position_loops(hw: tuple[int, int]) -> None:
    h, w = hw
    channels = 12
    module = _randomise(CoordinateAttention(channels, reduction=4, min_mid=3), seed=h * 10 + w)
    mid = module.conv1.out_channels
    assert mid == 3
    w1 = module.conv1.weight.detach()[:, :, 0, 0]
    b1 = module.conv1.bias.detach()
    bn = module.bn1
    bn_scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    bn_shift = (bn.bias - bn.running_mean * bn_scale).detach()
    wh, bh = module.conv_h.weight.detach()[:, :, 0, 0], module.conv_h.bias.detach()
    ww, bw = module.conv_w.weight.detach()[:, :, 0, 0], module.conv_w.bias.detach()

    def transform(z: list[float]) -> list[float]:  # f = h-swish(BN(F₁ z)) at one position
        out = []
        for m in range(mid):
            pre = sum(float(w1[m, c]) * z[c] for c in range(channels)) + float(b1[m])
            out.append(_hswish(float(bn_scale[m]) * pre + float(bn_shift[m])))
        return out

    x = torch.randn(2, channels, h, w, dtype=torch.float64)
    ref = torch.empty_like(x)
    for n in range(x.shape[0]):
        gate_h = []  # per row i: g^h(i) ∈ ℝ^C
        for i in range(h):
            z = [sum(float(x[n, c, i, j]) for j in range(w)) / w for c in range(channels)]  # z^h(i)
            f = transform(z)
            gate_h.append(
                [_sigmoid(sum(float(wh[c, m]) * f[m] for m in range(mid)) + float(bh[c])) for c in range(channels)]
            )
        gate_w = []  # per column j: g^w(j)
        for j in range(w):
            z = [sum(float(x[n, c, i, j]) for i in range(h)) / h for c in range(channels)]  # z^w(j)
            f = transform(z)
            gate_w.append(
                [_sigmoid(sum(float(ww[c, m]) * f[m] for m in range(mid)) + float(bw[c])) for c in range(channels)]
            )
        for c in range(channels):
            for i in range(h):
                for j in range(w):
                    ref[n, c, i, j] = x[n, c, i, j] * gate_h[i][c] * gate_w[j][c]
    with torch.no_grad():
        torch.testing.assert_close(module(x), ref, rtol=0, atol=1e-12)


def test_coordinate_attention_mid_channels() -> None:
    assert CoordinateAttention(64).conv1.out_channels == 8  # 64 // 32 = 2 → at least 8
    assert CoordinateAttention(512).conv1.out_channels == 16


# ------------------------------------------------------------------------------ SE, CBAM, BAM, PSA maths


def test_se_matches_formula() -> None:
    module = _randomise(SqueezeExcitation(8, reduction=4))
    x = torch.randn(3, 8, 4, 5, dtype=torch.float64)
    z = x.sum(dim=(2, 3)) / 20  # squeeze
    hidden = torch.relu(z @ module.fc1.weight.T + module.fc1.bias)  # δ(W₁ z)
    s = torch.sigmoid(hidden @ module.fc2.weight.T + module.fc2.bias)  # σ(W₂ δ(W₁ z))
    with torch.no_grad():
        torch.testing.assert_close(module(x), x * s[:, :, None, None], rtol=0, atol=1e-10)


def test_cbam_matches_formula() -> None:
    module = _randomise(CBAM(8, reduction=2))
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    lin0, lin1 = module.channel.mlp[0], module.channel.mlp[2]

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return torch.relu(v @ lin0.weight.T + lin0.bias) @ lin1.weight.T + lin1.bias

    avg = x.sum(dim=(2, 3)) / 30
    mx = x.flatten(2).max(dim=2).values
    f1 = x * torch.sigmoid(mlp(avg) + mlp(mx))[:, :, None, None]
    pooled = torch.stack([f1.sum(dim=1) / 8, f1.max(dim=1).values], dim=1)
    bn = module.spatial.bn
    conv = F.conv2d(pooled, module.spatial.conv.weight, padding=3)
    ms = torch.sigmoid((conv - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias)
    with torch.no_grad():
        torch.testing.assert_close(module(x), f1 * ms, rtol=0, atol=1e-10)


def test_bam_is_broadcast_sum_of_branches() -> None:
    module = _randomise(BAM(16, reduction=4))
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        mc, ms, y = module.channel(x), module.spatial(x), module(x)
    assert mc.shape == (2, 16, 1, 1) and ms.shape == (2, 1, 5, 3)
    for n, c, i, j in [(0, 0, 0, 0), (1, 15, 4, 2), (0, 7, 2, 1), (1, 3, 0, 2)]:
        gate = _sigmoid(float(mc[n, c, 0, 0]) + float(ms[n, 0, i, j]))
        expected = float(x[n, c, i, j]) + float(x[n, c, i, j]) * gate  # F' = F + F ⊗ σ(M_c + M_s)
        assert abs(float(y[n, c, i, j]) - expected) < 1e-12


def test_bam_spatial_branch_uses_dilation_four() -> None:
    convs = [m for m in BAM(64).spatial.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (3, 3), (1, 1)]
    assert [c.dilation for c in convs[1:3]] == [(4, 4), (4, 4)]
    assert convs[0].out_channels == 4 and convs[-1].out_channels == 1


def test_psa_matches_formula() -> None:
    module = _randomise(PyramidSplitAttention(8, 16, stride=2, groups=(1, 2, 4, 4), reduction=2))
    x = torch.randn(2, 8, 9, 6, dtype=torch.float64)
    feats = [
        F.conv2d(x, conv.weight, stride=2, padding=k // 2, groups=g)
        for conv, k, g in zip(module.convs, (3, 5, 7, 9), (1, 2, 4, 4), strict=True)
    ]
    se = module.se

    def se_weight(f: torch.Tensor) -> torch.Tensor:  # (N, C') per branch
        z = f.mean(dim=(2, 3))
        return torch.sigmoid(
            torch.relu(z @ se.fc1.weight[:, :, 0, 0].T + se.fc1.bias) @ se.fc2.weight[:, :, 0, 0].T + se.fc2.bias
        )

    zs = [se_weight(f) for f in feats]
    denom = sum(torch.exp(z) for z in zs)
    expected = torch.cat([f * (torch.exp(z) / denom)[:, :, None, None] for f, z in zip(feats, zs, strict=True)], 1)
    with torch.no_grad():
        torch.testing.assert_close(module(x), expected, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------- SC-Conv


@pytest.mark.parametrize("hw", [(8, 12), (7, 9), (3, 2)])
def test_self_calibration_matches_formula(hw: tuple[int, int]) -> None:
    h, w = hw
    r = 4
    module = _randomise(SelfCalibration(4, stride=1, pooling_r=r))
    x = torch.randn(2, 4, h, w, dtype=torch.float64)
    ph, pw = -(-h // r), -(-w // r)
    t1 = torch.empty(2, 4, ph, pw, dtype=torch.float64)
    for a in range(ph):  # T₁ = AvgPool_r(X₁): each window averages the pixels it covers
        for b in range(pw):
            t1[:, :, a, b] = x[:, :, a * r : min((a + 1) * r, h), b * r : min((b + 1) * r, w)].mean(dim=(2, 3))
    with torch.no_grad():
        k2 = module.k2(t1)
        up = torch.empty_like(x)
        for i in range(h):  # nearest up-sampling back to H × W
            for j in range(w):
                up[:, :, i, j] = k2[:, :, (i * ph) // h, (j * pw) // w]
        expected = module.k4(module.k3(x) * torch.sigmoid(x + up))
        torch.testing.assert_close(module(x), expected, rtol=0, atol=1e-10)
        if h % r == 0 and w % r == 0:  # the authors' floor-mode pooling gives the same here
            floor = F.avg_pool2d(x, r, r)
            torch.testing.assert_close(module.pool(x), floor, rtol=0, atol=1e-12)


def test_scconv_splits_plain_and_calibrated_halves() -> None:
    module = _randomise(SCConv(8, 8))
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        y = module(x)
        torch.testing.assert_close(y[:, :4], module.k1(x[:, :4]), rtol=0, atol=0)
        torch.testing.assert_close(y[:, 4:], module.calibration(x[:, 4:]), rtol=0, atol=0)


# ------------------------------------------------------------------- dynamic-H/W export of the risky ops


@pytest.mark.parametrize("name", ["scconv", "ca"])
def test_dynamic_hw_export_matches_onnxruntime(name: str) -> None:
    torch.manual_seed(0)
    module = (SCConv(8, 8, stride=2) if name == "scconv" else CoordinateAttention(8)).eval()
    f = io.BytesIO()
    torch.onnx.export(
        module,
        (torch.randn(2, 8, 16, 16),),
        f,
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "oh", 3: "ow"}},
    )
    session = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for shape in [(1, 8, 7, 9), (3, 8, 3, 2), (2, 8, 20, 12)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = module(x).numpy()
        out = session.run(None, {"input": x.numpy()})[0]
        assert out.shape == ref.shape
        assert float(np.abs(out - ref).max()) <= 1e-5
