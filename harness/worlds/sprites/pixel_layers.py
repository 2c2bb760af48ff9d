"""Per-frame convolutions at pixel resolution around the DiT's patch tokens (``pixel_channels`` > 0).

Why: with 4×4 patches a 5-pixel sprite lands at one of 16 offsets inside the patch grid, and a linear
patch head must learn to paint every shape fragment at every offset separately: teachers trained that
way got colours right but shapes broken. A 3×3 convolution is translation-equivariant below the patch
size, so the stem sees sub-patch edges and the head renders a shape around wherever the tokens put it,
one filter for every offset. Both act on each frame alone, so block causality and the KV cache are
untouched.

Both are residual around the plain linear patch path: the stem adds feature channels next to the raw
pixels and the head adds a correction to the linearly predicted velocity. Without that identity path
(convolutions and GELUs alone) the model must learn to copy the noise it sees, since v = ε − x0, and a
teacher built that way trained 5x slower (flow loss 0.81 vs 0.18 after 150 steps).
"""

from __future__ import annotations

import torch
from torch import nn


class PixelStem(nn.Module):
    """[B·F, C, H, W] frames → [B·F, C + pixel_channels, H, W]: the pixels and conv features of them."""

    def __init__(self, channels: int, pixel_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, pixel_channels, 3, padding=1)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.cat([frames, self.act(self.conv(frames))], dim=1)


class PixelHead(nn.Module):
    """[B·F, C + pixel_channels, H, W] unpatchified token outputs → [B·F, C, H, W] velocity: the first C
    channels (the linear prediction) plus a convolutional correction from the feature channels.

    The correction's last convolution starts at zero, so a fresh head passes the linear prediction on.
    """

    def __init__(self, pixel_channels: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.act = nn.GELU(approximate="tanh")
        self.mix = nn.Conv2d(pixel_channels, pixel_channels, 3, padding=1)
        self.out = nn.Conv2d(pixel_channels, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        linear, features = outputs[:, : self.channels], outputs[:, self.channels :]
        return linear + self.out(self.act(self.mix(self.act(features))))
