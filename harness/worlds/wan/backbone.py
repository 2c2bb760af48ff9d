"""Wan2.1 (diffusers ``WanTransformer3DModel``) behind :class:`harness.diffusion.backbone.Backbone`.

``forward(x_t, t, cond, *, kv_cache=None, causal=True, write_cache=False, return_features=False)``
takes latents [B, F, C, H, W] (the harness layout; diffusers' [B, C, F, H, W] is only used inside),
per-frame network timesteps ``t = 1000·σ`` (scalar, [B] or [B, F]) and UMT5 text embeddings ``cond``
[B, L, text_dim], and returns the flow velocity ``v = ε − x0`` in the layout of ``x_t``.

The diffusers model runs unmodified: its ``rope`` is swapped for :class:`OffsetRope` (same tables,
frame offset), its self-attention processors for :class:`CausalSelfAttnProcessor` (mask, cache), and
block forward hooks tap features. One :class:`PassState` per call tells them what to do:

* ``causal=False`` and no cache: nothing is changed, the output is stock diffusers bit for bit.
* ``causal=True``: block-causal across chunks of ``frames_per_chunk`` frames, computed by the
  ``config.causal_attention`` backend (``auto``: per device; ``dense`` mask, ``flex`` BlockMask,
  ``chunked`` loop of unmasked SDPA; all exact, see :mod:`~harness.worlds.wan.block_causal`).
* ``kv_cache``: the chunk attends to the cached clean frames before it, at RoPE frames continuing
  after them; ``write_cache=True`` (the t = 0 pass) appends its keys/values, detached. Denoising
  passes are read-only. ``start_frame`` places the chunk earlier in the cache: read-only passes see
  only the frames before it, a write there replaces that chunk and drops what followed
  (:class:`WanKVCache`).
* Per-frame timesteps go to diffusers as per-token timesteps (its Wan2.2 path) unless every frame of
  every sample shares one, which takes the stock [B] path.
* Gradient checkpointing (:meth:`WanBackbone.enable_gradient_checkpointing`) replays each block with
  the state of its first run, minus the cache write and the taps: diffusers' default function would
  recompute blocks with no mask and no context, which is wrong (and raises with a cache).
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from harness.diffusion.conventions import NUM_TRAIN_TIMESTEPS, per_frame_timesteps
from harness.diffusion.kv_cache import KVCache
from harness.errors import ConfigError
from harness.worlds.wan import block_causal, deps
from harness.worlds.wan.attention import CausalSelfAttnProcessor, PassContext, PassState
from harness.worlds.wan.config import WanConfig
from harness.worlds.wan.rope import OffsetRope


def _record_block_output(context: PassContext, index: int, module: nn.Module, args: Any, output: Any) -> None:
    state = context.state
    if state is not None and state.features is not None:
        state.features[index] = output


class WanBackbone(nn.Module):
    """A diffusers Wan transformer as a harness backbone (student, critic or teacher).

    ``causal_attention`` overrides the config's block-causal backend (auto | dense | flex | chunked).
    """

    def __init__(self, config: WanConfig | str = "tiny", *, transformer: nn.Module | None = None,
                 causal_attention: str | None = None) -> None:
        super().__init__()
        self.config = WanConfig.preset(config) if isinstance(config, str) else config
        if causal_attention is not None:
            self.set_causal_attention(causal_attention)
        if transformer is None:
            transformer = deps.diffusers().WanTransformer3DModel(**self.config.diffusers_kwargs())
        self.transformer = transformer
        self._pass = PassContext()
        self._install()

    def _install(self) -> None:
        """Swap in the offset rope and the causal processors; hook every block for feature taps."""
        model = self.transformer
        model.rope = OffsetRope.replacing(model.rope, self._pass)
        for index, block in enumerate(model.blocks):
            processor = CausalSelfAttnProcessor(self._pass, index)
            processor._attention_backend = getattr(block.attn1.processor, "_attention_backend", None)
            block.attn1.set_processor(processor)
            block.register_forward_hook(partial(_record_block_output, self._pass, index))

    def set_causal_attention(self, name: str) -> None:
        """Choose the block-causal backend, e.g. on a model from ``load_wan_backbone`` (ConfigError if unknown)."""
        self.config = self.config.replace(causal_attention=name)

    # -- protocol properties -------------------------------------------------------------------

    @property
    def frames_per_chunk(self) -> int:
        """Latent frames denoised together; samplers step through videos in chunks of this size."""
        return self.config.frames_per_chunk

    @property
    def depth(self) -> int:
        return len(self.transformer.blocks)

    @property
    def feature_dim(self) -> int:
        return self.config.dim

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def fsdp_units(self) -> list[nn.Module]:
        """FSDP2 shard units below the root (:mod:`harness.parallel.fsdp`): one per transformer block."""
        return list(self.transformer.blocks)

    # -- gradient checkpointing ----------------------------------------------------------------

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each block in backward, replaying this pass's mask and context (see module doc)."""
        self.transformer.enable_gradient_checkpointing(gradient_checkpointing_func=self._checkpointed_block)

    def disable_gradient_checkpointing(self) -> None:
        self.transformer.disable_gradient_checkpointing()

    def _checkpointed_block(self, block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        state = self._pass.state
        replay = None if state is None else state.for_replay()
        runs = 0

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            nonlocal runs
            runs += 1
            with self._pass.active(state if runs == 1 else replay):
                return block(*inputs)

        return checkpoint(run, *args, use_reentrant=False)

    def _check_checkpointing(self) -> None:
        model = self.transformer
        if model.gradient_checkpointing and model._gradient_checkpointing_func != self._checkpointed_block:
            raise ConfigError(
                "gradient checkpointing was enabled on the diffusers model directly, whose recompute drops "
                "the causal mask and KV context; use WanBackbone.enable_gradient_checkpointing()"
            )

    # -- input checks --------------------------------------------------------------------------

    def _check_input(self, x_t: torch.Tensor, cond: torch.Tensor) -> None:
        cfg = self.config
        _, p_h, p_w = cfg.patch_size
        if x_t.dim() != 5 or x_t.shape[2] != cfg.in_channels or x_t.shape[3] % p_h or x_t.shape[4] % p_w:
            raise ConfigError(
                f"x_t has shape {tuple(x_t.shape)}; the Wan backbone expects latents [B, F, {cfg.in_channels}, "
                f"H, W] with H divisible by {p_h} and W by {p_w}"
            )
        if x_t.shape[1] % cfg.frames_per_chunk:
            raise ConfigError(
                f"x_t has {x_t.shape[1]} frames, not a multiple of frames_per_chunk={cfg.frames_per_chunk}"
            )
        if not torch.is_tensor(cond) or cond.dim() != 3 or cond.shape[-1] != cfg.text_dim:
            shape = tuple(cond.shape) if torch.is_tensor(cond) else type(cond).__name__
            raise ConfigError(
                f"text embeddings have shape {shape}; the Wan backbone expects [B, L, {cfg.text_dim}] "
                f"(WanConfig.text_dim={cfg.text_dim})"
            )
        if cond.shape[0] != x_t.shape[0]:
            raise ConfigError(f"text embeddings have batch {cond.shape[0]} but x_t has batch {x_t.shape[0]}")

    def _timesteps(self, t: torch.Tensor | float, batch: int, frames: int) -> torch.Tensor:
        try:
            timesteps = per_frame_timesteps(t, batch, frames)
        except ValueError as exc:
            raise ConfigError(f"Wan backbone: {exc}") from None
        if not bool(torch.isfinite(timesteps).all()) or timesteps.min() < 0 or timesteps.max() > NUM_TRAIN_TIMESTEPS:
            raise ConfigError(
                f"timesteps must lie in [0, {NUM_TRAIN_TIMESTEPS:g}] (t = 1000·σ), got "
                f"[{float(timesteps.min()):g}, {float(timesteps.max()):g}]"
            )
        return timesteps

    def _start_frame(self, kv_cache: KVCache | None, start_frame: int | None, write: bool, batch: int) -> int:
        if kv_cache is None:
            if write:
                raise ValueError("write_cache=True needs a kv_cache to write to")
            if start_frame not in (None, 0):
                raise ConfigError(f"start_frame={start_frame} needs a kv_cache holding the frames before it")
            return 0
        if kv_cache.batch_size not in (None, batch):
            raise ConfigError(f"kv_cache holds batch {kv_cache.batch_size} but x_t has batch {batch}")
        if kv_cache.stored_frames != kv_cache.num_frames:
            raise ConfigError("the Wan backbone does not read a windowed KV cache (window_frames) that dropped frames")
        cached = kv_cache.num_frames
        start = cached if start_frame is None else int(start_frame)
        if not 0 <= start <= cached or start % self.frames_per_chunk:
            raise ConfigError(
                f"start_frame={start} must be a multiple of frames_per_chunk={self.frames_per_chunk} "
                f"within the {cached} cached frames"
            )
        if write and start < cached and not hasattr(kv_cache, "truncate"):
            raise ConfigError(f"rewriting frame {start} of a cache holding {cached} frames needs a WanKVCache")
        return start

    # -- forward -------------------------------------------------------------------------------

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
        start_frame: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Velocity like ``x_t``; with ``return_features`` also every block's tokens [B, F, P, D]."""
        self._check_input(x_t, cond)
        self._check_checkpointing()
        batch, frames, _, height, width = x_t.shape
        start = self._start_frame(kv_cache, start_frame, write_cache, batch)
        per_frame = self._timesteps(t, batch, frames).to(x_t.device)
        tokens = self.config.tokens_per_frame(height, width)
        if bool((per_frame == per_frame[:, :1]).all()):
            timestep = per_frame[:, 0]  # the stock path: one timestep per sample
        else:
            timestep = per_frame.repeat_interleave(tokens, dim=1)  # diffusers' per-token path
        layout = block_causal.BlockCausal.of(frames, start, tokens, self.frames_per_chunk) if causal else None
        context: tuple = ()
        if kv_cache is not None and start > 0:
            kept = start * tokens
            context = tuple(
                None if kv is None else (kv[0][:, :, :kept], kv[1][:, :, :kept])
                for kv in (kv_cache.read(layer) for layer in range(self.depth))
            )
        state = PassState(
            frame_offset=start, layout=layout, context=context,
            attention=block_causal.resolve(self.config.causal_attention, x_t.device),
            write_to=kv_cache if write_cache else None, features={} if return_features else None,
        )
        dtype = self.transformer.patch_embedding.weight.dtype
        latents = x_t.transpose(1, 2).contiguous().to(dtype)
        if write_cache and start < kv_cache.num_frames:
            kv_cache.truncate(start)  # a rewrite replaces that chunk and drops the frames after it
        with kv_cache.writing(frames) if write_cache else nullcontext(), self._pass.active(state):
            out = self.transformer(latents, timestep, cond.to(dtype), return_dict=False)[0]
        v = out.transpose(1, 2).contiguous().to(x_t.dtype)
        if not return_features:
            return v
        shape = (batch, frames, tokens, self.feature_dim)
        return v, [state.features[index].view(shape) for index in range(self.depth)]


def build_wan_backbone(preset: str | WanConfig = "tiny", **overrides: Any) -> WanBackbone:
    """A randomly initialised WanBackbone from a preset name or config, with field overrides."""
    config = preset if isinstance(preset, WanConfig) else WanConfig.preset(preset)
    return WanBackbone(config.replace(**overrides) if overrides else config)


def count_parameters(config: WanConfig | str) -> int:
    """Parameters of the model a config describes, without allocating its weights."""
    config = WanConfig.preset(config) if isinstance(config, str) else config
    with torch.device("meta"):
        model = deps.diffusers().WanTransformer3DModel(**config.diffusers_kwargs())
    return sum(p.numel() for p in model.parameters())
