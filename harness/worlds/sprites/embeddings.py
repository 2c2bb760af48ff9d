"""Embeddings of the sprites DiT: patches, timesteps, frame positions and the prompt."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

from harness.errors import ConfigError
from harness.worlds.sprites.attention import CrossAttention
from harness.worlds.sprites.dit_config import SpritesDiTConfig

ROTARY_FRAME_BASE, ROTARY_SPATIAL_BASE = 100.0, 20.0  # longest wavelengths ≫ 8 frames / 4 patches


def sinusoidal(positions: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """[..., dim] cos/sin features of real-valued positions (timesteps in [0, 1000] or frame indices)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=positions.device) / half
    )
    angles = positions.to(torch.float32)[..., None] * freqs
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def grid_sincos(config: SpritesDiTConfig, max_period: float = 64.0) -> torch.Tensor:
    """[P, dim] sin/cos features of each token's place in a frame: half the dims for its row, half for
    its column."""
    rows, cols = config.token_grid
    half = config.dim // 2
    yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.cat([sinusoidal(yy.reshape(-1), half, max_period),
                      sinusoidal(xx.reshape(-1), config.dim - half, max_period)], dim=-1)


def rotary_angles(config: SpritesDiTConfig, frames: int, frame_offset: int, device: torch.device) -> torch.Tensor:
    """Rotary angles [F·P, R/2] of the tokens of frames ``offset…offset+F``: a third of each head's
    rotated pairs per axis (frame, row, column).

    Why: with positions only added to the tokens, a 1500-step teacher never learned to keep an object
    in one piece or on one path (24% object class); rotating queries and keys makes attention depend
    on the relative offset between two patches, which is what "same object, next frame" needs. Angles
    use absolute frame indices, so keys written to a KV cache match the full-sequence forward.
    """
    pairs = config.dim // config.heads // 6  # rotated (x1, x2) pairs per axis
    rows, cols = config.token_grid
    frame = torch.arange(frame_offset, frame_offset + frames, device=device).repeat_interleave(rows * cols)
    row = torch.arange(rows, device=device).repeat_interleave(cols).repeat(frames)
    col = torch.arange(cols, device=device).repeat(rows * frames)
    angles = []
    for position, base in ((frame, ROTARY_FRAME_BASE), (row, ROTARY_SPATIAL_BASE), (col, ROTARY_SPATIAL_BASE)):
        freqs = base ** (-torch.arange(pairs, dtype=torch.float32, device=device) / pairs)
        angles.append(position.to(torch.float32)[:, None] * freqs)
    return torch.cat(angles, dim=-1)


@lru_cache(maxsize=64)
def rotary_rotations(
    config: SpritesDiTConfig, frames: int, frame_offset: int, device: torch.device
) -> torch.Tensor:
    """``rotary_angles`` as unit complex numbers [F·P, R/2], cached: every denoising call of a rollout
    asks for the same few (frames, offset) pairs, and rebuilding them cost more than rotating."""
    angles = rotary_angles(config, frames, frame_offset, device)
    return torch.polar(torch.ones_like(angles), angles)


class Patchify(nn.Module):
    """[B, F, C, H, W] ↔ [B, F, P, D] with non-overlapping p×p patches (a strided conv as one matmul)."""

    def __init__(self, config: SpritesDiTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.patch_dim, config.dim)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        b, f, c, h, w = x.shape
        p = self.config.patch_size
        x = x.reshape(b, f, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(b, f, (h // p) * (w // p), c * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.patches(x))

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, F, P, C·p·p] → [B, F, C, H, W] (C: pixel channels or pixel features)."""
        cfg, p = self.config, self.config.patch_size
        b, f = patches.shape[:2]
        channels = patches.shape[-1] // (p * p)
        x = patches.reshape(b, f, cfg.height // p, cfg.width // p, channels, p, p).permute(
            0, 1, 4, 2, 5, 3, 6
        )
        return x.reshape(b, f, channels, cfg.height, cfg.width)


class TimestepEmbedding(nn.Module):
    """Per-frame timestep t ∈ [0, 1000] → a D-dim vector (sinusoid, then a 2-layer MLP)."""

    def __init__(self, freq_dim: int, dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(t, self.freq_dim))


class PromptLayer(nn.Module):
    """A pre-norm transformer layer over the prompt tokens (binds colour words to shape words)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, mask)
        return x + self.mlp(self.norm2(x))


def phrase_mask(ids: torch.Tensor, mask: torch.Tensor, separator: int) -> torch.Tensor:
    """Which keys each prompt position may attend to, bool [B, L+1, L+1]: real tokens of its own phrase
    (phrases split at ``separator``, which opens the next one) and the null token at position 0, which every
    query keeps so that no row is empty."""
    phrase = torch.cumsum(ids == separator, dim=1) + 1
    phrase = torch.cat([torch.zeros_like(phrase[:, :1]), phrase], dim=1)  # the null token: phrase 0
    same = phrase[:, :, None] == phrase[:, None, :]
    same[:, :, 0] = True
    return same & mask[:, None, :]


def phrase_means(x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Each real token's vector replaced by the mean over the real tokens of its phrase (``keys`` from
    :func:`phrase_mask`, whose null-token column is dropped here); the null token, and padding of a prompt
    without words, keep their own."""
    members = keys.clone()
    members[:, 1:, 0] = False
    weights = members.to(x.dtype)
    sizes = weights.sum(-1, keepdim=True)
    return torch.where(sizes > 0, (weights @ x) / sizes.clamp(min=1), x)


class PromptEncoder(nn.Module):
    """Prompt token ids [B, L] (or embeddings [B, L, D]) → context tokens, their mask and a pooled vector.

    A learned null token is always prepended, so an all-padding prompt (the unconditional branch of
    CFG) still has one key to attend to and a well-defined pooled vector.
    """

    def __init__(self, config: SpritesDiTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.tokens = nn.Embedding(config.vocab_size, dim)
        self.null = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(config.max_prompt_len + 1, dim) * 0.02)
        self.layers = nn.ModuleList(
            PromptLayer(dim, config.heads, config.mlp_ratio) for _ in range(config.prompt_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.pool = nn.Linear(dim, dim)

    def _embed(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        if cond.dim() == 2 and not cond.is_floating_point():
            if cond.numel() and (int(cond.min()) < 0 or int(cond.max()) >= cfg.vocab_size):
                raise ConfigError(f"prompt token id {int(cond.max())} is outside vocab_size={cfg.vocab_size}")
            return self.tokens(cond), cond != cfg.pad_id
        if cond.dim() == 3 and cond.is_floating_point() and cond.shape[-1] == cfg.dim:
            return cond, torch.ones(cond.shape[:2], dtype=torch.bool, device=cond.device)
        raise ValueError(
            f"cond must be token ids [B, L] (integer) or embeddings [B, L, {cfg.dim}], got {tuple(cond.shape)} "
            f"{cond.dtype}"
        )

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns context [B, L+1, D], mask [B, L+1] (True = real) and pooled [B, D]."""
        if cond.shape[1] > self.config.max_prompt_len:
            raise ConfigError(
                f"prompt of {cond.shape[1]} tokens exceeds max_prompt_len={self.config.max_prompt_len}"
            )
        x, mask = self._embed(cond)
        batch, length = x.shape[:2]
        x = torch.cat([self.null.expand(batch, 1, -1), x], dim=1) + self.position[: length + 1]
        mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        keys = mask
        phrased = self.config.phrase_separator_id is not None and not cond.is_floating_point()
        if phrased:
            keys = phrase_mask(cond, mask, self.config.phrase_separator_id)
        for layer in self.layers:
            x = layer(x, keys)
        if phrased and self.config.phrase_pooling:
            x = phrase_means(x, keys)
        x = self.norm(x)
        weights = mask.to(x.dtype)[..., None]
        pooled = (x * weights).sum(1) / weights.sum(1)
        return x, mask, self.pool(pooled)
