"""Spatial Transformer.

Jaderberg, Simonyan, Zisserman, Kavukcuoglu (2015), "Spatial Transformer Networks", NeurIPS 2015.

A localisation net regresses the parameters θ of an affine transform from the input feature map
U (N, C, H, W); a grid generator maps every output pixel's normalised coordinates through θ;
a sampler reads U at those points (paper eqs. 1 and 5, the bilinear kernel):

    ( xˢᵢ )       ( xᵗᵢ )     ( θ₁₁ θ₁₂ θ₁₃ ) ( xᵗᵢ )
    ( yˢᵢ ) = A_θ ( yᵗᵢ )  =  ( θ₂₁ θ₂₂ θ₂₃ ) ( yᵗᵢ )                     (1)
                  (  1  )                     (  1  )

    Vᵢᶜ = Σₙ Σₘ Uₙₘᶜ · max(0, 1 − |xˢᵢ − m|) · max(0, 1 − |yˢᵢ − n|)     (5)

with (xᵗ, yᵗ) the target grid and (xˢ, yˢ) the source points, both in [-1, 1] normalised coordinates
(scaled to pixel units before the bilinear kernel is applied).
"""

from __future__ import annotations

import torch
from torch import nn

from attnx.exporters import ops


class SpatialTransformer(nn.Module):
    """Localisation net + affine grid generator + bilinear sampler.

    Jaderberg, Simonyan, Zisserman, Kavukcuoglu, NeurIPS 2015, arXiv:1506.02025.

    Input  x: (N, C, H, W), any N and any H, W ≥ 4 (two 2×2 max-pools in the localisation net).
    Output  : (N, C, H', W') with (H', W') = ``out_hw`` or (H, W) when ``out_hw`` is None.

    The localisation net ends in global average pooling, so its FC layers (and hence the module)
    work at any input size. The last FC starts at zero weight and bias (1, 0, 0, 0, 1, 0): the
    module is the identity transform at initialisation, as in the paper's training recipe.
    """

    def __init__(
        self,
        in_channels: int,
        loc_channels: tuple[int, int] = (8, 10),
        loc_hidden: int = 32,
        out_hw: tuple[int, int] | None = None,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        c1, c2 = loc_channels
        self.localization = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5, padding=2),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        self.fc_loc = nn.Sequential(
            nn.Linear(c2, loc_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(loc_hidden, 6),
        )
        last = self.fc_loc[2]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
        self.out_hw = out_hw
        self.align_corners = align_corners

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """θ (N, 2, 3) regressed from x (N, C, H, W)."""
        feats = self.localization(x).mean(dim=(2, 3))  # global pooling: size-independent (N, c2)
        return self.fc_loc(feats).reshape(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) float → x sampled bilinearly (zeros outside) on θ(x)'s grid: (N, C, H', W'), same dtype."""
        return ops.affine_grid_sample(x, self.theta(x), self.out_hw, align_corners=self.align_corners)
