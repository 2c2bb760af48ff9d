"""Learned relative position bias for the sprites DiT's self-attention (``SpritesDiTConfig.relative_bias``).

Every head of every layer adds a learned logit to each (query, key) pair, looked up by their offset in
frames, patch rows and patch columns. Why: what keeps a sprite one object on one path is attention
between tokens a patch or two apart, in the same and the next frames; a table indexed by that offset
lets a head prefer those neighbours from the first updates, where absolute positions make it learn the
neighbourhood of every position separately. Offsets come from absolute frame indices (queries and the
keys of the KV cache alike), so chunk-by-chunk inference sees the bias of the full-sequence forward.
Frame offsets beyond ``MAX_FRAME_OFFSET`` share the last entry, so long rollouts stay defined.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

MAX_FRAME_OFFSET = 15


@lru_cache(maxsize=64)
def relative_index(query_frames: int, frame_offset: int, stored_frames: int, rows: int, cols: int) -> torch.Tensor:
    """Table index [Nq, Nk] of each (query, key) pair.

    Queries are the tokens of frames ``offset…offset+F``; keys are the ``stored_frames`` frames kept in
    the cache before them (the newest ones), then the queries' own frames.
    """
    def tokens(first: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frame = torch.arange(first, first + count).repeat_interleave(rows * cols)
        row = torch.arange(rows).repeat_interleave(cols).repeat(count)
        col = torch.arange(cols).repeat(rows * count)
        return frame, row, col

    qf, qr, qc = tokens(frame_offset, query_frames)
    kf, kr, kc = tokens(frame_offset - stored_frames, stored_frames + query_frames)
    df = (qf[:, None] - kf[None, :]).clamp(-MAX_FRAME_OFFSET, MAX_FRAME_OFFSET) + MAX_FRAME_OFFSET
    dr = qr[:, None] - kr[None, :] + rows - 1
    dc = qc[:, None] - kc[None, :] + cols - 1
    return (df * (2 * rows - 1) + dr) * (2 * cols - 1) + dc


class RelativeBias(nn.Module):
    """One learned logit per head and (frame, row, column) offset; starts at zero (no bias)."""

    def __init__(self, heads: int, rows: int, cols: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(heads, (2 * MAX_FRAME_OFFSET + 1) * (2 * rows - 1) * (2 * cols - 1)))

    def forward(self, index: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Additive attention mask [heads, Nq, Nk]: the bias, and -inf where ``mask`` forbids a key."""
        bias = self.table.index_select(1, index.flatten()).view(-1, *index.shape)
        return bias if mask is None else bias.masked_fill(~mask, float("-inf"))
