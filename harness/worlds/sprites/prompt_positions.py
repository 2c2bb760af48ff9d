"""A token term from the prompt, the token's frame and its place in the frame, multiplied together.

Why: "moving left" means "to the right early, to the left late", so what the direction word changes is a
function of word × frame × position. The DiT's other conditioning reaches that product only indirectly:
adaLN is per frame and position-blind, cross-attention and rotary scores are sums over the frame, row and
column axes. A teacher trained without this term reads the axis of a motion from the word but not its sign,
and its outputs are nearly unchanged when time is reversed (docs/history.md has the figures).

The term is ``out((A·pooled) ⊙ (B·frame) ⊙ (C·place))`` with ``rank`` channels, frames and places given as
sin/cos features of their indices (absolute frame indices, so a KV-cached chunk gets the same term as in
the full sequence). ``out`` starts at zero: an untrained term leaves the model as it was.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.worlds.sprites.dit_config import SpritesDiTConfig
from harness.worlds.sprites.embeddings import grid_sincos, sinusoidal


class PromptPositionTerm(nn.Module):
    """[B, D] pooled prompt + frame indices → a term [B, F, P, D] added to the input tokens."""

    def __init__(self, config: SpritesDiTConfig) -> None:
        super().__init__()
        self.config = config
        rank, dim = config.prompt_positions, config.dim
        self.prompt = nn.Linear(dim, rank)
        self.frame = nn.Linear(dim, rank)
        self.place = nn.Linear(dim, rank)
        self.out = nn.Linear(rank, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("place_features", grid_sincos(config), persistent=False)

    def forward(self, pooled: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        prompt = self.prompt(pooled)[:, None, None, :]  # [B, 1, 1, R]
        frame = self.frame(sinusoidal(frames, self.config.dim, 64.0))[None, :, None, :]  # [1, F, 1, R]
        place = self.place(self.place_features)[None, None, :, :]  # [1, 1, P, R]
        return self.out(prompt * frame * place)
