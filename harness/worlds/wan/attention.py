"""Block-causal self-attention with a KV cache, injected into an unmodified diffusers Wan model.

``WanTransformerBlock`` calls ``attn1(x, None, None, rotary_emb)``: no mask and no cache can be passed
in. So each ``blocks[i].attn1`` gets a :class:`CausalSelfAttnProcessor` that reads what the current
backbone forward wants from a shared :class:`PassContext` (set by ``WanBackbone.forward`` for the
duration of one call, cleared afterwards). With no pass active the processor is the stock one, so
the bare diffusers model keeps behaving as diffusers ships it.

Per pass, :class:`PassState` holds the block-causal layout and the backend that computes it
(:mod:`~harness.worlds.wan.block_causal`: dense mask, flex ``BlockMask`` or a loop over chunks), each
layer's cached context (keys and values of the clean frames before this pass, snapshotted when the
pass starts) and, in the t = 0 write pass only, the cache to append this pass's keys/values to. A
gradient-checkpoint recompute replays the same state with writing and feature recording switched off
(see ``WanBackbone``), which is why the context is a snapshot and not read from the cache again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from harness.diffusion.kv_cache import KVCache
from harness.worlds.wan import deps
from harness.worlds.wan.block_causal import BACKENDS, BlockCausal

WanAttnProcessor = deps.diffusers("models.transformers.transformer_wan").WanAttnProcessor
dispatch_attention_fn = deps.diffusers("models.attention_dispatch").dispatch_attention_fn

KV = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class PassState:
    """What one backbone forward tells the rope, the self-attention processors and the feature taps."""

    frame_offset: int = 0
    # where the queries sit among the keys when several chunks need a mask (None: nothing masked)
    layout: BlockCausal | None = None
    # the block_causal backend that computes a masked pass (already resolved from "auto")
    attention: str = "dense"
    # per layer: keys/values [B, heads, tokens, head_dim] of the cached frames this pass attends to
    context: tuple[KV | None, ...] = ()
    # where the t = 0 pass appends its keys/values (None: read-only)
    write_to: KVCache | None = None
    # where block outputs are collected, by block index (None: not requested)
    features: dict[int, torch.Tensor] | None = None

    def for_replay(self) -> PassState:
        """The same attention for a checkpoint recompute, without side effects (no write, no taps)."""
        return replace(self, write_to=None, features=None)


class PassContext:
    """The state shared by one backbone's processors, rope and taps; None between forwards."""

    def __init__(self) -> None:
        self.state: PassState | None = None

    @contextmanager
    def active(self, state: PassState | None) -> Iterator[PassState | None]:
        previous, self.state = self.state, state
        try:
            yield state
        finally:
            self.state = previous


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's RoPE on x [B, L, H, D]: channel pairs (2i, 2i+1) rotated by the pair's angle.

    The tables hold each angle twice (pair-interleaved), as ``WanRotaryPosEmbed`` returns them; the
    arithmetic runs in the tables' dtype (float64) and is cast back, matching the stock processor.
    """
    even, odd = x[..., 0::2], x[..., 1::2]
    c, s = cos[..., 0::2], sin[..., 1::2]
    return torch.stack((even * c - odd * s, even * s + odd * c), dim=-1).flatten(-2).type_as(x)


def _qkv(attn: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if getattr(attn, "fused_projections", False):
        return attn.to_qkv(x).chunk(3, dim=-1)
    return attn.to_q(x), attn.to_k(x), attn.to_v(x)


class CausalSelfAttnProcessor(WanAttnProcessor):
    """Self-attention of block ``layer``: stock when no pass is active or the pass needs neither a
    block-causal layout nor the cache; otherwise its own path (block-causal through the pass's
    backend, against cached context, appending to the cache when the pass writes). Inherits
    ``_attention_backend`` so ``model.set_attention_backend()`` still applies to its SDPA calls."""

    def __init__(self, context: PassContext, layer: int) -> None:
        super().__init__()
        self.context, self.layer = context, layer

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        state = self.context.state
        if state is None or encoder_hidden_states is not None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        cached = state.context[self.layer] if state.context else None
        if cached is None and state.write_to is None and state.layout is None:
            return super().__call__(attn, hidden_states, None, None, rotary_emb)
        return self._attend(attn, hidden_states, rotary_emb, cached, state)

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return dispatch_attention_fn(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False,
                                     backend=self._attention_backend)

    def _attend(
        self, attn: Any, x: torch.Tensor, rotary_emb: tuple[torch.Tensor, torch.Tensor] | None,
        cached: KV | None, state: PassState,
    ) -> torch.Tensor:
        q, k, v = _qkv(attn, x)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))  # [B, L, H, D]
        if rotary_emb is not None:
            q, k = rotate(q, *rotary_emb), rotate(k, *rotary_emb)
        if state.write_to is not None:
            state.write_to.append(self.layer, k.detach().transpose(1, 2), v.detach().transpose(1, 2))
        if cached is not None:
            k = torch.cat([cached[0].to(k.dtype), k.transpose(1, 2)], dim=2).transpose(1, 2)
            v = torch.cat([cached[1].to(v.dtype), v.transpose(1, 2)], dim=2).transpose(1, 2)
        if state.layout is None:
            out = self._sdpa(q, k, v, None)
        else:
            out = BACKENDS[state.attention](q, k, v, state.layout, self._sdpa)
        out = out.flatten(2, 3).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))
