"""Wan's 3-D RoPE with a frame offset, so a chunk decoded against the cache gets its absolute positions.

``WanRotaryPosEmbed`` always numbers frames from 0; a chunk that starts at latent frame k must use
rows k… of the temporal table, or its keys would not match the keys the full-sequence forward puts in
the cache. The offset comes from the active :class:`PassContext` (0 when none), so the stock model's
forward, which calls ``self.rope(hidden_states)``, needs no change. The tables are the parent's
non-persistent buffers: state dicts are unaffected.
"""

from __future__ import annotations

import torch

from harness.errors import ConfigError
from harness.worlds.wan import deps
from harness.worlds.wan.attention import PassContext

WanRotaryPosEmbed = deps.diffusers("models.transformers.transformer_wan").WanRotaryPosEmbed


class OffsetRope(WanRotaryPosEmbed):
    """``WanRotaryPosEmbed`` whose temporal rows start at the pass's ``frame_offset``."""

    def __init__(self, attention_head_dim: int, patch_size: tuple[int, int, int], max_seq_len: int,
                 context: PassContext | None = None) -> None:
        super().__init__(attention_head_dim, patch_size, max_seq_len)
        self.pass_context = context or PassContext()

    @classmethod
    def replacing(cls, rope: WanRotaryPosEmbed, context: PassContext) -> OffsetRope:
        """A drop-in replacement for a model's ``rope`` (same tables, same device)."""
        new = cls(rope.attention_head_dim, rope.patch_size, rope.max_seq_len, context)
        return new.to(rope.freqs_cos.device)

    def frame_offset(self) -> int:
        state = self.pass_context.state
        return 0 if state is None else state.frame_offset

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin tables [1, F·h·w, 1, head_dim] for latents [B, C, F, H, W]."""
        _, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.patch_size
        frames, rows, cols = frames // p_t, height // p_h, width // p_w
        start = self.frame_offset()
        if start + frames > self.max_seq_len:
            raise ConfigError(f"frames {start}..{start + frames} exceed the RoPE table of "
                              f"{self.max_seq_len} frames (WanConfig.rope_max_seq_len)")
        return tuple(self._table(table, start, frames, rows, cols) for table in (self.freqs_cos, self.freqs_sin))

    def _table(self, table: torch.Tensor, start: int, frames: int, rows: int, cols: int) -> torch.Tensor:
        along_t, along_h, along_w = table.split([self.t_dim, self.h_dim, self.w_dim], dim=1)
        shape = (frames, rows, cols)
        parts = (
            along_t[start : start + frames].view(frames, 1, 1, -1).expand(*shape, -1),
            along_h[:rows].view(1, rows, 1, -1).expand(*shape, -1),
            along_w[:cols].view(1, 1, cols, -1).expand(*shape, -1),
        )
        return torch.cat(parts, dim=-1).reshape(1, frames * rows * cols, 1, -1)
