"""Self-attention family: MHSA (Vaswani et al.), ResT's EMSA, MobileViTv2's separable attention, and the
ViT / ResT / MobileViTv2 zoo models: shapes, maths against per-head loop references, paper figures."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from attnx.core.errors import UserError
from attnx.exporters.attention.mobilevit import SeparableSelfAttention, fold_patches, unfold_patches
from attnx.exporters.attention.rest import EfficientMultiHeadSelfAttention, PixelAttention
from attnx.exporters.attention.self_attention import MultiHeadSelfAttention, scaled_dot_product_attention
from attnx.exporters.models import transformers
from attnx.exporters.registry import zoo


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _macs(model: nn.Module, shape: tuple[int, ...]) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.randn(shape))
    return counter.get_total_flops() / 2  # the counter counts a multiply-add as 2 FLOPs


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- scaled dot-product attention and MHSA --------------------------------------------------------------


def _naive_mhsa(m: MultiHeadSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """MultiHead(X) = Concat(head_1..head_h) W^O, head_i = softmax(Q_i K_iᵀ/√d_k) V_i, looping b and i."""
    c, d = m.dim, m.head_dim
    w, bias = m.qkv.weight, m.qkv.bias
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        heads = []
        for i in range(m.num_heads):
            rows = slice(i * d, (i + 1) * d)
            q = x[b] @ w[rows].T + bias[rows]
            k = x[b] @ w[c:][rows].T + bias[c:][rows]
            v = x[b] @ w[2 * c :][rows].T + bias[2 * c :][rows]
            logits = q @ k.T / math.sqrt(d)
            weights = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
            heads.append((weights / weights.sum(dim=1, keepdim=True)) @ v)
        out[b] = torch.cat(heads, dim=1) @ m.proj.weight.T + m.proj.bias
    return out


@pytest.mark.parametrize(("b", "n", "c", "heads"), [(1, 1, 8, 1), (2, 7, 12, 3), (3, 50, 16, 4), (1, 17, 24, 6)])
def test_mhsa_shapes_and_naive_reference(b: int, n: int, c: int, heads: int) -> None:
    m = MultiHeadSelfAttention(c, heads).double().eval()
    x = torch.randn(b, n, c, dtype=torch.float64)
    with torch.no_grad():
        y = m(x)
        assert y.shape == (b, n, c)
        torch.testing.assert_close(y, _naive_mhsa(m, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_mhsa_matches_torch_multihead_attention(use_sdpa: bool) -> None:
    c, heads = 32, 4
    ours = MultiHeadSelfAttention(c, heads, use_sdpa=use_sdpa).eval()
    ref = nn.MultiheadAttention(c, heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)  # rows W^Q; W^K; W^V in both
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
        x = torch.randn(3, 11, c)
        torch.testing.assert_close(ours(x), ref(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_sdpa_function_matches_torch_with_cross_shapes() -> None:
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 6)  # N ≠ M, d_v ≠ d_k
    out = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5, 6)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_mhsa_exports_with_dynamic_batch_and_tokens(use_sdpa: bool) -> None:
    m = MultiHeadSelfAttention(16, 4, use_sdpa=use_sdpa).eval()
    f = io.BytesIO()
    torch.onnx.export(
        m, (torch.randn(2, 5, 16),), f, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "batch", 1: "tokens"}, "y": {0: "batch", 1: "tokens"}},
    )  # fmt: skip
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for shape in [(1, 5, 16), (3, 9, 16)]:
        x = torch.randn(shape)
        with torch.no_grad():
            ref = m(x).numpy()
        assert np.abs(sess.run(None, {"x": x.numpy()})[0] - ref).max() <= 1e-5


def test_mhsa_rejects_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadSelfAttention(10, 3)


# --- ResT EMSA ------------------------------------------------------------------------------------------


def _naive_emsa(m: EfficientMultiHeadSelfAttention, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """IN(Softmax(Conv₁ₓ₁(Q Kᵀ/√d_k))) V with explicit loops over batch, heads and the head-mixing sum."""
    b_sz, n, c = x.shape
    d, nh = m.head_dim, m.num_heads
    out = torch.empty_like(x)
    for b in range(b_sz):
        q = x[b] @ m.q.weight.T + m.q.bias
        if m.sr_ratio > 1:
            reduced = m.sr(x[b].T.reshape(1, c, h, w))[0].flatten(1).T  # (M, C): the paper's DWConv_s
            kv_in = F.layer_norm(reduced, (c,), m.sr_norm.weight, m.sr_norm.bias, m.sr_norm.eps)
        else:
            kv_in = x[b]
        kv = kv_in @ m.kv.weight.T + m.kv.bias
        k, v = kv[:, :c], kv[:, c:]
        logits = [q[:, i * d : (i + 1) * d] @ k[:, i * d : (i + 1) * d].T / math.sqrt(d) for i in range(nh)]
        heads = []
        for i in range(nh):
            if m.apply_transform:  # output head i = Σ_j w_ij · logits_j + b_i, then softmax, then IN
                mixed = sum(m.transform_conv.weight[i, j, 0, 0] * logits[j] for j in range(nh))
                a = torch.softmax(mixed + m.transform_conv.bias[i], dim=-1)
                a = (a - a.mean()) / torch.sqrt(((a - a.mean()) ** 2).mean() + 1e-5)
            else:
                a = torch.softmax(logits[i], dim=-1)
            heads.append(a @ v[:, i * d : (i + 1) * d])
        out[b] = torch.cat(heads, dim=1) @ m.proj.weight.T + m.proj.bias
    return out


@pytest.mark.parametrize(
    ("h", "w", "sr", "heads", "transform"),
    [(1, 1, 8, 2, True), (5, 7, 2, 2, True), (9, 4, 4, 4, True), (11, 13, 8, 2, True), (6, 3, 1, 4, True),
     (5, 7, 2, 1, True), (7, 5, 4, 4, False)],
)  # fmt: skip
def test_emsa_shapes_and_naive_reference(h: int, w: int, sr: int, heads: int, transform: bool) -> None:
    c = 8 * heads
    m = EfficientMultiHeadSelfAttention(c, heads, sr, qkv_bias=True, apply_transform=transform).double().eval()
    if m.apply_transform:  # move off the identity init so the reference really checks the head mixing
        nn.init.normal_(m.transform_conv.weight)
        nn.init.normal_(m.transform_conv.bias)
    x = torch.randn(2, h * w, c, dtype=torch.float64)
    with torch.no_grad():
        y = m(x, h, w)
        assert y.shape == (2, h * w, c)
        torch.testing.assert_close(y, _naive_emsa(m, x, h, w), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("h", "w", "sr"), [(1, 1, 8), (7, 9, 2), (13, 5, 4), (56, 56, 8), (15, 17, 8)])
def test_emsa_reduction_is_ceil_of_h_over_s(h: int, w: int, sr: int) -> None:
    m = EfficientMultiHeadSelfAttention(8, 2, sr)
    assert m.sr(torch.randn(1, 8, h, w)).shape[-2:] == (math.ceil(h / sr), math.ceil(w / sr))


def test_emsa_instance_norm_matches_torch() -> None:
    from attnx.exporters.attention.rest import _instance_norm

    a = torch.softmax(torch.randn(3, 4, 10, 7), dim=-1)
    torch.testing.assert_close(_instance_norm(a), nn.InstanceNorm2d(4)(a), rtol=1e-5, atol=1e-5)


def test_emsa_single_head_is_plain_attention() -> None:
    m = EfficientMultiHeadSelfAttention(16, 1, 1, qkv_bias=True).eval()
    assert not m.apply_transform  # nothing to mix with one head: the paper's code skips conv and IN
    x = torch.randn(2, 12, 16)
    with torch.no_grad():
        k, v = m.kv(x).chunk(2, dim=-1)
        ref = m.proj(torch.softmax(m.q(x) @ k.transpose(1, 2) / 4.0, dim=-1) @ v)
        torch.testing.assert_close(m(x, 3, 4), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hw", [(1, 1), (5, 9), (8, 3)])
def test_pixel_attention(hw: tuple[int, int]) -> None:
    pa = PixelAttention(6)
    x = torch.randn(2, 6, *hw)
    y = pa(x)
    assert y.shape == x.shape
    gate = torch.sigmoid(F.conv2d(x, pa.pa_conv.weight, pa.pa_conv.bias, padding=1, groups=6))
    torch.testing.assert_close(y, x * gate)


# --- MobileViTv2 separable self-attention ---------------------------------------------------------------


def _naive_separable(m: SeparableSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """For each batch item and patch position p, over the N tokens x_i:
    c_s = softmax(x W_I), c_v = Σ_i c_s(i) x_i W_K, y = (ReLU(x W_V) ⊙ c_v) W_O."""
    d = m.dim
    w = m.qkv_proj.weight[:, :, 0, 0]
    bias = m.qkv_proj.bias
    w_o, b_o = m.out_proj.weight[:, :, 0, 0], m.out_proj.bias
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for p in range(x.shape[2]):
            tokens = x[b, :, p, :].T  # (N, d)
            scores = tokens @ w[0] + bias[0]  # (N,)
            c_s = torch.exp(scores - scores.max())
            c_s = c_s / c_s.sum()
            keys = tokens @ w[1 : 1 + d].T + bias[1 : 1 + d]
            c_v = sum(c_s[i] * keys[i] for i in range(tokens.shape[0]))  # (d,)
            values = torch.relu(tokens @ w[1 + d :].T + bias[1 + d :])
            out[b, :, p, :] = ((values * c_v) @ w_o.T + b_o).T
    return out


@pytest.mark.parametrize(("p", "n"), [(1, 1), (4, 1), (4, 7), (9, 5), (2, 33)])
def test_separable_attention_shapes_and_naive_reference(p: int, n: int) -> None:
    m = SeparableSelfAttention(6).double().eval()
    x = torch.randn(2, 6, p, n, dtype=torch.float64)
    with torch.no_grad():
        y = m(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, _naive_separable(m, x), rtol=1e-10, atol=1e-10)


def test_separable_attention_cost_is_linear_in_tokens() -> None:
    m = SeparableSelfAttention(16).eval()
    base = _macs(m, (1, 16, 4, 64))
    assert _macs(m, (1, 16, 4, 256)) == pytest.approx(4 * base, rel=1e-6)  # MHSA would grow 16× in QKᵀ


@pytest.mark.parametrize(("shape", "ph", "pw"), [((2, 3, 4, 6), 2, 2), ((1, 5, 6, 8), 3, 2), ((2, 1, 2, 2), 2, 2)])
def test_unfold_matches_f_unfold_and_fold_inverts(shape: tuple[int, ...], ph: int, pw: int) -> None:
    x = torch.randn(shape)
    b, c, h, w = shape
    patches = unfold_patches(x, ph, pw)
    ref = F.unfold(x, kernel_size=(ph, pw), stride=(ph, pw)).reshape(b, c, ph * pw, -1)
    assert torch.equal(patches, ref)
    assert torch.equal(fold_patches(patches, h, w, ph, pw), x)


# --- zoo models -----------------------------------------------------------------------------------------


def test_registrations() -> None:
    entries = zoo()
    for name, configs in [("vit_tiny", {"vit_s16"}), ("rest", {"rest_lite"}), ("mobilevitv2", {"mobilevitv2_050"})]:
        entry = entries[name]
        assert entry.configs[0] == "tiny" and configs <= set(entry.configs) and configs <= set(entry.paper_figures)
        assert entry.task == "classification" and entry.family == "self-attention" and entry.description
    assert not entries["vit_tiny"].dynamic_hw and entries["rest"].dynamic_hw and entries["mobilevitv2"].dynamic_hw


@pytest.mark.parametrize(
    ("builder", "shape"),
    [(transformers.build_vit, (3, 32, 32)), (transformers.build_rest, (3, 64, 64)),
     (transformers.build_rest, (3, 37, 50)), (transformers.build_mobilevitv2, (3, 64, 64)),
     (transformers.build_mobilevitv2, (3, 48, 80))],
)  # fmt: skip
def test_tiny_models_forward(builder: Callable[..., nn.Module], shape: tuple[int, int, int]) -> None:
    model = builder().eval()
    assert _params(model) < 2_000_000
    with torch.no_grad():
        for b in (1, 3):
            assert model(torch.randn(b, *shape)).shape == (b, 10)


def test_model_options_and_num_classes() -> None:
    assert transformers.build_rest(num_classes=7).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    vit = transformers.build_vit().eval()
    sdpa = transformers.build_vit(use_sdpa=True).eval()
    sdpa.load_state_dict(vit.state_dict())  # same parameters either way
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(sdpa(x), vit(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="unknown option"):
        transformers.build_vit(depht=3)


def test_models_reject_sizes_they_cannot_take() -> None:
    with pytest.raises(UserError, match="32×32"):
        transformers.build_vit()(torch.randn(1, 3, 48, 48))
    mvit = transformers.build_mobilevitv2()
    assert mvit.hw_multiple == 16
    with pytest.raises(UserError, match="multiples of 16"):
        mvit(torch.randn(1, 3, 64, 56))
    assert transformers.build_mobilevitv2("mobilevitv2_050").hw_multiple == 64


@pytest.mark.parametrize(
    ("name", "config", "tol"),
    [("vit_tiny", "vit_s16", 0.01), ("rest", "rest_lite", 0.02), ("mobilevitv2", "mobilevitv2_050", 0.01)],
)
def test_paper_parameter_counts(name: str, config: str, tol: float) -> None:
    entry = zoo()[name]
    model = entry.build(config)
    assert _params(model) / 1e6 == pytest.approx(entry.paper_figures[config].params_m, rel=tol)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "config"), [("vit_tiny", "vit_s16"), ("mobilevitv2", "mobilevitv2_050")])
def test_paper_macs(name: str, config: str) -> None:
    entry = zoo()[name]
    fig = entry.paper_figures[config]
    macs = _macs(entry.build(config), entry.input_shape_for(config))
    assert macs / 1e9 == pytest.approx(fig.gmacs, rel=0.05)
