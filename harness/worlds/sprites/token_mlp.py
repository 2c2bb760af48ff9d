"""The feed-forward layer of a sprites DiT block with a depthwise 3×3 convolution over each frame's token
grid between its two linear layers (``SpritesDiTConfig.token_conv``; without it the block's MLP is plain).

Why: a 5-pixel sprite spans two or three 4×4 patches, and the tokens that share it must agree on where
its edges fall inside their patches. Attention can learn that neighbourhood, but slowly; a depthwise
convolution hands every token its grid neighbours' features from the first step, and its zero padding
tells border tokens where they are. It mixes tokens of one frame only, so block causality and the KV
cache are untouched (the cache stores attention keys and values, not MLP activations).
"""

from __future__ import annotations

import torch
from torch import nn


class TokenMLP(nn.Module):
    """x [B, F, P, D] → [B, F, P, D]: Linear, plus its depthwise 3×3 conv on the grid, GELU, Linear."""

    def __init__(self, dim: int, hidden: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = grid
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.act = nn.GELU(approximate="tanh")
        self.conv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        b, f, p, c = h.shape
        # channels-last: the permuted view already has those strides, and the CPU depthwise kernel ran
        # 13x faster on them (fwd + bwd) than on the NCHW copy it otherwise makes
        grid = h.reshape(b * f, *self.grid, c).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        h = h + self.conv(grid).permute(0, 2, 3, 1).reshape(b, f, p, c)
        return self.fc2(self.act(h))
