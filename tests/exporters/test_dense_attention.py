"""Spatial Transformer, DANet and External Attention: shapes, maths against loop-based references, export."""

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

from attnx.core.errors import UserError
from attnx.exporters import ops
from attnx.exporters.attention.danet import ChannelAttention, DANetHead, PositionAttention
from attnx.exporters.attention.external import EAHead, ExternalAttention
from attnx.exporters.attention.stn import SpatialTransformer
from attnx.exporters.models import dense

ODD_SIZES = [(1, 1), (1, 6), (5, 1), (3, 7), (9, 4), (11, 13)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- affine grid + sampler ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")  # unit-size grids: intended
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("hw", ODD_SIZES)
def test_affine_grid_matches_torch(hw: tuple[int, int], align_corners: bool) -> None:
    h, w = hw
    theta = torch.randn(3, 2, 3)
    ours = ops.affine_grid(theta, h, w, align_corners=align_corners)
    ref = F.affine_grid(theta, [3, 1, h, w], align_corners=align_corners)
    assert ours.shape == ref.shape == (3, h, w, 2)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (8, 3)])
def test_identity_theta_reproduces_input(hw: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *hw)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    out = ops.affine_grid_sample(x, identity, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


def _bilinear_reference(u: torch.Tensor, theta: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Paper eqs. 1 and 5 by loops; align_corners=False coordinates, zero outside the image."""
    n_, c_, h, w = u.shape
    v = torch.zeros(n_, c_, out_h, out_w, dtype=torch.float64)
    for b in range(n_):
        for i in range(out_h):
            for j in range(out_w):
                xt, yt = (2 * j + 1) / out_w - 1, (2 * i + 1) / out_h - 1  # target pixel centres in [-1, 1]
                xs = theta[b, 0, 0] * xt + theta[b, 0, 1] * yt + theta[b, 0, 2]
                ys = theta[b, 1, 0] * xt + theta[b, 1, 1] * yt + theta[b, 1, 2]
                px, py = ((xs + 1) * w - 1) / 2, ((ys + 1) * h - 1) / 2  # to pixel units
                for n in range(h):
                    for m in range(w):
                        k = max(0.0, 1 - abs(float(px) - m)) * max(0.0, 1 - abs(float(py) - n))
                        if k:
                            v[b, :, i, j] += k * u[b, :, n, m].double()
    return v


def test_affine_grid_sample_matches_paper_bilinear_kernel() -> None:
    u = torch.randn(2, 2, 5, 6)
    theta = torch.tensor([[[0.8, 0.3, 0.1], [-0.2, 1.1, -0.3]], [[1.2, 0.0, 0.4], [0.1, 0.7, 0.2]]])
    out = ops.affine_grid_sample(u, theta, out_hw=(4, 7))
    ref = _bilinear_reference(u, theta, 4, 7)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("opset", [16, 17, 20])
def test_affine_grid_sample_exports_with_dynamic_shapes(opset: int) -> None:
    class Sampler(nn.Module):
        def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
            return ops.affine_grid_sample(x, theta)

    buf = io.BytesIO()
    torch.onnx.export(
        Sampler(),
        (torch.randn(2, 2, 6, 7), torch.randn(2, 2, 3)),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["input", "theta"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch", 2: "h", 3: "w"}, "theta": {0: "batch"}, "output": {0: "batch"}},
    )
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for shape in [(1, 2, 6, 7), (3, 2, 9, 5)]:
        x, theta = torch.randn(*shape), torch.randn(shape[0], 2, 3) * 0.7
        got = sess.run(None, {"input": x.numpy(), "theta": theta.numpy()})[0]
        np.testing.assert_allclose(got, Sampler()(x, theta).numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (3, 2, 17, 9), (2, 3, 28, 28)])
def test_spatial_transformer_is_identity_at_init_and_keeps_shapes(shape: tuple[int, int, int, int]) -> None:
    stn = SpatialTransformer(shape[1]).eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        assert stn.theta(x).shape == (shape[0], 2, 3)
        torch.testing.assert_close(stn(x), x, rtol=0, atol=1e-5)
        assert SpatialTransformer(shape[1], out_hw=(5, 11)).eval()(x).shape == (*shape[:2], 5, 11)


# --- External Attention ------------------------------------------------------------------------------------


def _double_norm_reference(logits: torch.Tensor, eps: float) -> torch.Tensor:
    """Softmax over pixels p for every slot s, then divide by the sum over slots (+ eps), by loops."""
    n_, p_, s_ = logits.shape
    soft = torch.zeros(n_, p_, s_, dtype=torch.float64)
    for b in range(n_):
        for s in range(s_):
            denom = sum(math.exp(float(logits[b, k, s])) for k in range(p_))
            for p in range(p_):
                soft[b, p, s] = math.exp(float(logits[b, p, s])) / denom
    out = torch.zeros_like(soft)
    for b in range(n_):
        for p in range(p_):
            total = sum(float(soft[b, p, k]) for k in range(s_))
            for s in range(s_):
                out[b, p, s] = soft[b, p, s] / (eps + total)
    return out


@pytest.mark.parametrize("eps", [1e-9, 0.5])
def test_double_norm_matches_loops(eps: float) -> None:
    logits = torch.randn(2, 7, 5) * 2
    out = ops.double_norm(logits, eps)
    torch.testing.assert_close(out.double(), _double_norm_reference(logits, eps), rtol=0, atol=1e-6)


def test_external_attention_matches_paper_equations() -> None:
    ea = ExternalAttention(6, memory_slots=5).eval()
    nn.init.normal_(ea.mv.weight)  # decouple M_v from its M_kᵀ initialisation
    x = torch.randn(2, 6, 3, 4)
    with torch.no_grad():
        f = ea.conv_in(x).flatten(2).transpose(1, 2)  # (N, P, d)
        attn = _double_norm_reference(f @ ea.mk.weight.t(), ea.eps).float()  # Norm(F M_kᵀ)
        f_out = (attn @ ea.mv.weight.t()).transpose(1, 2).reshape(2, 6, 3, 4)  # A M_v
        ref = torch.relu(ea.conv_out(f_out) + x)
        torch.testing.assert_close(ea(x), ref, rtol=0, atol=1e-5)


def test_external_attention_memories_are_tied_at_init() -> None:
    ea = ExternalAttention(8, memory_slots=64)
    assert ea.mk.weight.shape == (64, 8) and ea.mv.weight.shape == (8, 64)
    torch.testing.assert_close(ea.mv.weight, ea.mk.weight.t())
    assert ea.mv.weight.data_ptr() != ea.mk.weight.data_ptr()  # a copy: they train independently


@pytest.mark.parametrize("shape", [(1, 8, 1, 1), (3, 8, 5, 7), (2, 8, 13, 2)])
def test_external_attention_shapes(shape: tuple[int, int, int, int]) -> None:
    x = torch.randn(*shape)
    with torch.no_grad():
        assert ExternalAttention(8).eval()(x).shape == shape
        assert EAHead(8, 4, channels=6).eval()(x).shape == (shape[0], 4, *shape[2:])


# --- DANet -------------------------------------------------------------------------------------------------


def _pixel(conv: nn.Conv2d, x: torch.Tensor, b: int, i: int) -> torch.Tensor:
    """A 1×1 conv applied to pixel i (row-major) of sample b: W·x_i + bias."""
    w = x.shape[3]
    return conv.weight[:, :, 0, 0].double() @ x[b, :, i // w, i % w].double() + conv.bias.double()


def test_position_attention_matches_loops() -> None:
    pam = PositionAttention(16).eval()
    with torch.no_grad():
        pam.gamma.fill_(0.7)
    x = torch.randn(2, 16, 3, 5)
    n_, c_, h, w = x.shape
    p_ = h * w
    ref = torch.zeros(n_, c_, h, w, dtype=torch.float64)
    with torch.no_grad():
        for b in range(n_):
            q = [_pixel(pam.query, x, b, i) for i in range(p_)]  # B_i
            k = [_pixel(pam.key, x, b, i) for i in range(p_)]  # C_i
            v = [_pixel(pam.value, x, b, i) for i in range(p_)]  # D_i
            for j in range(p_):
                e = [math.exp(float(q[j] @ k[i])) for i in range(p_)]  # energy of pixel pair (j, i)
                s = [e_i / sum(e) for e_i in e]  # s_ji, normalised over i
                agg = sum(s[i] * v[i] for i in range(p_))
                ref[b, :, j // w, j % w] = 0.7 * agg + x[b, :, j // w, j % w].double()
        torch.testing.assert_close(pam(x).double(), ref, rtol=0, atol=1e-5)


def test_channel_attention_matches_loops() -> None:
    cam = ChannelAttention().eval()
    with torch.no_grad():
        cam.beta.fill_(-1.3)
    x = torch.randn(2, 5, 3, 4) * 0.5
    n_, c_, h, w = x.shape
    ref = torch.zeros(n_, c_, h, w, dtype=torch.float64)
    for b in range(n_):
        a = [x[b, c].flatten().double() for c in range(c_)]  # A_i: channel i over all pixels
        for j in range(c_):
            energy = [float(a[j] @ a[i]) for i in range(c_)]
            logits = [max(energy) - e for e in energy]  # the reference implementation's max − energy
            ex = [math.exp(v) for v in logits]
            attn = [v / sum(ex) for v in ex]  # x_ji, normalised over i
            ref[b, j] = -1.3 * sum(attn[i] * a[i] for i in range(c_)).reshape(h, w) + a[j].reshape(h, w)
    with torch.no_grad():
        torch.testing.assert_close(cam(x).double(), ref, rtol=0, atol=1e-5)


def test_danet_gates_start_at_zero() -> None:
    x = torch.randn(2, 16, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(PositionAttention(16)(x), x)
        torch.testing.assert_close(ChannelAttention()(x), x)


@pytest.mark.parametrize("shape", [(1, 16, 1, 1), (3, 16, 5, 7), (2, 16, 2, 11)])
def test_danet_shapes(shape: tuple[int, int, int, int]) -> None:
    x = torch.randn(*shape)
    with torch.no_grad():
        assert PositionAttention(16).eval()(x).shape == shape
        assert ChannelAttention().eval()(x).shape == shape
        assert DANetHead(16, 3, inter_channels=8).eval()(x).shape == (shape[0], 3, *shape[2:])


# --- models ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(28, 28), (19, 33), (4, 4)])
def test_stn_classifier_shapes_and_identity_stn(hw: tuple[int, int]) -> None:
    model = dense.build_stn_classifier().eval()
    x = torch.randn(3, 1, *hw)
    with torch.no_grad():
        assert model(x).shape == (3, 10)
        torch.testing.assert_close(model.stn(x), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("builder", [dense.build_danet_seg, dense.build_ea_seg])
@pytest.mark.parametrize("hw", [(64, 64), (48, 80), (24, 8), (37, 50)])
def test_segmentation_models_return_input_sized_logits(builder: Callable[..., nn.Module], hw: tuple[int, int]) -> None:
    model = builder(num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *hw)).shape == (2, 4, *hw)
        assert model.backbone(torch.randn(1, 3, *hw)).shape[-2:] == tuple(-(-s // 8) for s in hw)  # stride 8


def test_danet_gate_init_reaches_both_modules() -> None:
    model = dense.build_danet_seg(gate_init=0.25)
    assert model.head.pam.gamma.item() == 0.25 and model.head.cam.beta.item() == 0.25
    assert dense.build_danet_seg().head.pam.gamma.item() == 0.0


@pytest.mark.parametrize("builder", [dense.build_stn_classifier, dense.build_danet_seg, dense.build_ea_seg])
def test_builders_reject_unknown_config_and_arguments(builder: Callable[..., nn.Module]) -> None:
    with pytest.raises(UserError):
        builder(config="huge")
    with pytest.raises(UserError):
        builder(not_an_option=1)
