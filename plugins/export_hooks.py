"""PyTorch side of the custom ops: autograd Functions whose ``symbolic`` emits ``attnx::<Op>`` nodes.

``attnx.exporters.ops`` calls :func:`torch_function` during a plugin-form export and calls the result with
exactly its own arguments. In eager mode and while tracing, ``forward`` computes the op with plain
torch (so traced shapes and values are right); the TorchScript exporter replaces it with the custom
node from ``symbolic``. The exporter must pass ``custom_opsets={"attnx": 1}`` (see
:data:`CUSTOM_OPSETS`) and ``dynamo=False``: the dynamo exporter inlines autograd Functions.

Arguments are checked against the op's spec before anything is traced, so a bad mode or a
wrong-rank tensor fails at export with the same one-line ``SpecError`` as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from attnx.plugins.registry import get
from attnx.plugins.spec import DOMAIN, OpSpec

# What torch.onnx.export needs for models with attnx nodes.
CUSTOM_OPSETS: dict[str, int] = {DOMAIN: 1}


def _check(spec: OpSpec, tensors: list[torch.Tensor], attrs: dict[str, Any]) -> dict[str, Any]:
    resolved = spec.resolve_attrs(attrs, "export")
    # While tracing, sizes may be tensors: keep plain ints for the checks, None otherwise.
    shapes = [tuple(d if isinstance(d, int) else None for d in t.shape) for t in tensors]
    spec.infer_shapes(shapes, resolved, "export")
    return resolved


def _set_type(out: Any, like: Any, sizes: list[int | None]) -> Any:
    # Give the custom node's output a dtype and shape so the exporter's later passes know them.
    try:
        out.setType(like.type().with_sizes(sizes))
    except (AttributeError, RuntimeError, TypeError):
        pass
    return out


def _sizes(value: Any) -> list[int | None] | None:
    try:
        sizes = value.type().varyingSizes()
    except (AttributeError, RuntimeError):
        return None
    return list(sizes) if sizes is not None else None


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, grid: torch.Tensor, mode: str, padding_mode: str, align_corners: int
    ) -> torch.Tensor:
        return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=bool(align_corners))

    @staticmethod
    def symbolic(g: Any, x: Any, grid: Any, mode: str, padding_mode: str, align_corners: int) -> Any:
        out = g.op(
            f"{DOMAIN}::GridSample", x, grid, mode_s=mode, padding_mode_s=padding_mode, align_corners_i=align_corners
        )
        xs, gs = _sizes(x), _sizes(grid)
        if xs is not None and gs is not None and len(xs) == 4 and len(gs) == 4:
            _set_type(out, x, [xs[0], xs[1], gs[1], gs[2]])
        return out


class _AffineGridSample(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        theta: torch.Tensor,
        out_h: int,
        out_w: int,
        mode: str,
        padding_mode: str,
        align_corners: int,
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        grid = F.affine_grid(theta, [n, c, out_h or h, out_w or w], align_corners=bool(align_corners))
        return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=bool(align_corners))

    @staticmethod
    def symbolic(
        g: Any, x: Any, theta: Any, out_h: int, out_w: int, mode: str, padding_mode: str, align_corners: int
    ) -> Any:
        out = g.op(
            f"{DOMAIN}::AffineGridSample",
            x,
            theta,
            out_h_i=out_h,
            out_w_i=out_w,
            mode_s=mode,
            padding_mode_s=padding_mode,
            align_corners_i=align_corners,
        )
        xs = _sizes(x)
        if xs is not None and len(xs) == 4:
            _set_type(out, x, [xs[0], xs[1], out_h or xs[2], out_w or xs[3]])
        return out


class _DoubleNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, attn: torch.Tensor, eps: float) -> torch.Tensor:
        # FP32 accumulation for FP16 inputs, as the plugin does.
        a = torch.softmax(attn.float(), dim=1)
        return (a / (eps + a.sum(dim=2, keepdim=True))).to(attn.dtype)

    @staticmethod
    def symbolic(g: Any, attn: Any, eps: float) -> Any:
        out = g.op(f"{DOMAIN}::DoubleNorm", attn, eps_f=eps)
        xs = _sizes(attn)
        if xs is not None:
            _set_type(out, attn, xs)
        return out


def grid_sample(
    x: torch.Tensor,
    grid: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> torch.Tensor:
    """``F.grid_sample`` that exports as one ``attnx::GridSample`` node (TorchScript exporter).

    ``x`` (N, C, H, W) and ``grid`` (N, Ho, Wo, 2) in [-1, 1], FP32 or FP16; returns (N, C, Ho, Wo) in x's dtype.
    Raises SpecError for bad attributes or ranks (the op's spec).
    """
    a = _check(
        get("GridSample"), [x, grid], {"mode": mode, "padding_mode": padding_mode, "align_corners": int(align_corners)}
    )
    out: torch.Tensor = _GridSample.apply(x, grid, a["mode"], a["padding_mode"], a["align_corners"])
    return out


def affine_grid_sample(
    x: torch.Tensor,
    theta: torch.Tensor,
    out_hw: tuple[int, int] | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> torch.Tensor:
    """``F.grid_sample(x, F.affine_grid(theta, ...))`` as one ``attnx::AffineGridSample`` node.

    ``x`` (N, C, H, W), ``theta`` (N, 2, 3); ``out_hw`` (Ho, Wo), None for the input's H, W. Returns
    (N, C, Ho, Wo) in x's dtype. Raises SpecError for bad attributes or ranks.
    """
    out_h, out_w = (int(out_hw[0]), int(out_hw[1])) if out_hw is not None else (0, 0)
    attrs = {
        "out_h": out_h,
        "out_w": out_w,
        "mode": mode,
        "padding_mode": padding_mode,
        "align_corners": int(align_corners),
    }
    a = _check(get("AffineGridSample"), [x, theta], attrs)
    out: torch.Tensor = _AffineGridSample.apply(
        x, theta, a["out_h"], a["out_w"], a["mode"], a["padding_mode"], a["align_corners"]
    )
    return out


def double_norm(attn: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """External Attention's double normalisation as one ``attnx::DoubleNorm`` node.

    ``attn`` (N, P, S) logits: softmax over P, then division by ``eps`` + the sum over S. Returns (N, P, S).
    Raises SpecError for a bad ``eps`` or rank.
    """
    a = _check(get("DoubleNorm"), [attn], {"eps": eps})
    out: torch.Tensor = _DoubleNorm.apply(attn, a["eps"])
    return out


_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "GridSample": grid_sample,
    "AffineGridSample": affine_grid_sample,
    "DoubleNorm": double_norm,
}


def torch_function(name: str) -> Callable[..., torch.Tensor]:
    """The callable ``attnx.exporters.ops`` routes op ``name`` through during a plugin-form export.

    Signatures (as ``attnx.exporters.ops`` calls them):
        GridSample(x, grid, mode, padding_mode, align_corners)
        AffineGridSample(x, theta, out_hw, mode, padding_mode, align_corners)
        DoubleNorm(attn, eps)
    """
    get(name)  # unknown names: SpecError listing the known ops
    return _FUNCTIONS[name]
