"""The sprites backbone: a small block-causal DiT over video chunks (:class:`harness.diffusion.backbone.Backbone`).

``forward(x_t, t, cond, *, kv_cache=None, causal=True) -> v`` predicts the flow velocity of every
frame of ``x_t`` [B, F, C, H, W] at per-frame timesteps ``t`` [B, F] (diffusion forcing). Each frame's
timestep, plus the pooled prompt, drives adaLN modulation of every token of that frame; with
``cross_attention`` the tokens also attend to the prompt tokens. Attention is block-causal across
chunks of ``frames_per_chunk`` frames (``causal=True``, the student) or bidirectional (the teacher).

Chunk-by-chunk inference: a denoising forward reads ``kv_cache`` (the clean context); the extra
forward at t = 0 on a finished chunk is called with ``write_cache=True`` and appends its keys and
values. Frame positions continue from the frames already cached, so chunk k decoded against the cache
equals chunk k of the full-sequence block-causal forward.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from harness.diffusion.conventions import per_frame_timesteps
from harness.diffusion.kv_cache import KVCache
from harness.errors import ConfigError
from harness.worlds.sprites.attention import CrossAttention, SelfAttention, block_causal_mask
from harness.worlds.sprites.dit_config import SpritesDiTConfig
from harness.worlds.sprites.embeddings import (
    Patchify,
    PromptEncoder,
    TimestepEmbedding,
    rotary_rotations,
    sinusoidal,
)
from harness.worlds.sprites.pixel_layers import PixelHead, PixelStem
from harness.worlds.sprites.prompt_positions import PromptPositionTerm
from harness.worlds.sprites.relative_bias import RelativeBias, relative_index
from harness.worlds.sprites.token_mlp import TokenMLP


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + scale) + shift


class DiTBlock(nn.Module):
    """adaLN-Zero transformer block; the modulation is per frame, so each frame gets its own timestep."""

    def __init__(self, config: SpritesDiTConfig) -> None:
        super().__init__()
        dim = config.dim
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        relative = RelativeBias(config.heads, *config.token_grid) if config.relative_bias else None
        self.attn = SelfAttention(dim, config.heads, relative)
        self.cross = CrossAttention(dim, config.heads) if config.cross_attention else None
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6) if config.cross_attention else None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * config.mlp_ratio)
        if config.token_conv:
            self.mlp = TokenMLP(dim, hidden, config.token_grid)
        else:  # the plain MLP keeps its parameter names, so checkpoints from before token_conv still load
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        prompt: tuple[torch.Tensor, torch.Tensor],
        *,
        mask: torch.Tensor | None,
        kv_cache: KVCache | None,
        layer: int,
        rotary: torch.Tensor | None = None,
        relative_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, F, P, D] tokens; c: [B, F, D] per-frame conditioning; returns [B, F, P, D]."""
        b, f, p, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, :, None, :].chunk(6, dim=-1)
        h = _modulate(self.norm1(x), shift1, scale1).reshape(b, f * p, d)
        x = x + gate1 * self.attn(h, mask=mask, kv_cache=kv_cache, layer=layer, rotary=rotary,
                                   relative_index=relative_index).view(b, f, p, d)
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x).reshape(b, f * p, d), *prompt).view(b, f, p, d)
        return x + gate2 * self.mlp(_modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """adaLN-modulated projection of every token back to its patch of velocity (zero-initialised)."""

    def __init__(self, config: SpritesDiTConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(config.dim, 2 * config.dim))
        self.proj = nn.Linear(config.dim, config.patch_dim)
        for module in (self.modulation[1], self.proj):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c)[:, :, None, :].chunk(2, dim=-1)
        return self.proj(_modulate(self.norm(x), shift, scale))


class SpritesDiT(nn.Module):
    """Block-causal DiT over [B, F, C, H, W] videos with per-frame timesteps and prompt conditioning."""

    def __init__(self, config: SpritesDiTConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.patchify = Patchify(config)
        # with rotary positions attention already knows where a token is; the table starts at zero
        scale = 0.0 if config.rotary_positions else 0.02
        self.spatial_position = nn.Parameter(torch.randn(config.tokens_per_frame, config.dim) * scale)
        self.timestep = TimestepEmbedding(config.timestep_freq_dim, config.dim)
        self.prompt = PromptEncoder(config)
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final = FinalLayer(config)
        self.prompt_positions = PromptPositionTerm(config) if config.prompt_positions else None
        self.stem = PixelStem(config.channels, config.pixel_channels) if config.pixel_channels else None
        self.head = PixelHead(config.pixel_channels, config.channels) if config.pixel_channels else None

    @property
    def frames_per_chunk(self) -> int:
        """Frames denoised together; samplers step through videos in chunks of this size."""
        return self.config.frames_per_chunk

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_input(self, x_t: torch.Tensor, kv_cache: KVCache | None, write_cache: bool) -> None:
        cfg = self.config
        expected = (cfg.channels, cfg.height, cfg.width)
        if x_t.dim() != 5 or tuple(x_t.shape[2:]) != expected:
            raise ConfigError(
                f"x_t has shape {tuple(x_t.shape)}, the backbone expects [B, F, {cfg.channels}, {cfg.height}, "
                f"{cfg.width}] (SpritesDiTConfig.channels/height/width)"
            )
        if x_t.shape[1] % cfg.frames_per_chunk:
            raise ConfigError(
                f"x_t has {x_t.shape[1]} frames, not a multiple of frames_per_chunk={cfg.frames_per_chunk}"
            )
        if write_cache and kv_cache is None:
            raise ValueError("write_cache=True needs a kv_cache to write to")
        window = getattr(kv_cache, "window_frames", None)
        if window is not None and window % cfg.frames_per_chunk:
            raise ConfigError(f"KVCache window_frames={window} is not a multiple of frames_per_chunk="
                              f"{cfg.frames_per_chunk}: chunks would be cut in half")
        if kv_cache is not None and kv_cache.batch_size not in (None, x_t.shape[0]):
            raise ValueError(f"kv_cache holds batch {kv_cache.batch_size} but x_t has batch {x_t.shape[0]}")

    def _tokens(self, x_t: torch.Tensor, frame_offset: int) -> torch.Tensor:
        frames = torch.arange(frame_offset, frame_offset + x_t.shape[1], device=x_t.device)
        position = self.spatial_position[None, :, :] + sinusoidal(frames, self.config.dim)[:, None, :]
        if self.stem is not None:
            b, f = x_t.shape[:2]
            x_t = self.stem(x_t.flatten(0, 1)).unflatten(0, (b, f))
        return self.patchify(x_t) + position

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | float,
        cond: torch.Tensor,
        *,
        kv_cache: KVCache | None = None,
        causal: bool = True,
        write_cache: bool = False,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Velocity [B, F, C, H, W]; with ``return_features`` also each block's tokens [B, F, P, D]."""
        self._check_input(x_t, kv_cache, write_cache)
        batch, frames = x_t.shape[:2]
        # positions count every frame ever generated; the mask only the frames attention still sees
        offset = kv_cache.num_frames if kv_cache is not None else 0
        stored = kv_cache.stored_frames if kv_cache is not None else 0
        timesteps = per_frame_timesteps(t, batch, frames).to(x_t.device)
        context, context_mask, pooled = self.prompt(cond)
        c = self.timestep(timesteps) + pooled[:, None, :]
        mask = None
        if causal:
            mask = block_causal_mask(
                frames, stored, self.config.tokens_per_frame, self.config.frames_per_chunk
            )
            mask = None if mask is None else mask.to(x_t.device)
        x = self._tokens(x_t, offset)
        if self.prompt_positions is not None:
            frame_index = torch.arange(offset, offset + frames, device=x_t.device)
            x = x + self.prompt_positions(pooled, frame_index)
        rotary = None
        if self.config.rotary_positions:
            rotary = rotary_rotations(self.config, frames, offset, x_t.device)
        relative = None
        if self.config.relative_bias:
            relative = relative_index(frames, offset, stored, *self.config.token_grid).to(x_t.device)
        features = []
        with kv_cache.writing(frames) if write_cache else nullcontext():
            for layer, block in enumerate(self.blocks):
                x = block(x, c, (context, context_mask), mask=mask, kv_cache=kv_cache, layer=layer,
                          rotary=rotary, relative_index=relative)
                if return_features:
                    features.append(x)
        v = self.patchify.unpatchify(self.final(x, c))
        if self.head is not None:
            v = self.head(v.flatten(0, 1)).unflatten(0, (batch, frames))
        return (v, features) if return_features else v


def build_sprites_dit(preset: str | SpritesDiTConfig = "default", **overrides) -> SpritesDiT:
    """A SpritesDiT from a preset name (``smoke``, ``default``) or a config, with field overrides."""
    config = preset if isinstance(preset, SpritesDiTConfig) else SpritesDiTConfig.preset(preset)
    return SpritesDiT(config.replace(**overrides) if overrides else config)


def count_parameters(config: SpritesDiTConfig) -> int:
    """Parameter count of the model a config describes, without allocating its weights."""
    with torch.device("meta"):
        return SpritesDiT(config).num_parameters()
