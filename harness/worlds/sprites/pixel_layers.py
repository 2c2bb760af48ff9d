"""Per-frame convolutions at pixel resolution around the DiT's patch tokens (``pixel_channels`` > 0).

Why: with 4×4 patches a 5-pixel sprite lands at one of 16 offsets inside the patch grid, and a linear
patch head must learn to paint every shape fragment at every offset separately: teachers trained that
way got colours right but shapes broken. A 3×3 convolution is translation-equivariant below the patch
size, so the stem sees sub-patch edges and the head renders a shape around wherever the tokens put it,
one filter for every offset. Both act on each frame alone, so block causality and the KV cache are
untouched.
"""

from __future__ import annotations

import torch
from torch import nn


class PixelStem(nn.Module):
    """[B·F, C, H, W] frames → [B·F, pixel_channels, H, W] features (conv, GELU)."""

    def __init__(self, channels: int, pixel_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, pixel_channels, 3, padding=1)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(frames))


class PixelHead(nn.Module):
    """[B·F, pixel_channels, H, W] unpatchified token features → [B·F, C, H, W] velocity.

    The last convolution starts at zero, like the DiT's adaLN-zero output layer, so a fresh model
    predicts zero velocity everywhere.
    """

    def __init__(self, pixel_channels: int, channels: int) -> None:
        super().__init__()
        self.act = nn.GELU(approximate="tanh")
        self.mix = nn.Conv2d(pixel_channels, pixel_channels, 3, padding=1)
        self.out = nn.Conv2d(pixel_channels, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.mix(self.act(features))))
