"""Block-causal self-attention of a pass spanning several chunks: three exact backends, by name.

The queries are latent frames ``offset…offset+F`` of a video, the keys frames ``0…offset+F`` (the
cached context, then the queries' own frames), tokens frame-major; a query sees a key when the key's
chunk (``frame // frames_per_chunk``, absolute) is not after its own. The backends differ only in
cost, which is what matters at 21 frames × 1560 tokens:

* ``dense``: a bool ``[Lq, Lk]`` mask to SDPA. The reference, but the mask alone is 1 GiB at real
  scale and a mask rules out flash kernels.
* ``flex``: ``flex_attention`` with a ``BlockMask`` (one bit per 128×128 tile, so a few KiB), fused
  by ``torch.compile`` on CUDA. On CPU it runs eager, which materialises the scores and warns, and
  torch has no backward for it there: a check of the forward, not a CPU training path. It ignores
  ``set_attention_backend()``.
* ``chunked``: the mask is made of whole chunks, so the queries of chunk j attend to every key up to
  the end of chunk j and to nothing after: one unmasked SDPA per chunk. Exact, no mask at all, and
  the attention backend (flash on GPU) is the one the diffusers model is set to.

``auto`` picks by device (:data:`AUTO`, else :data:`DEFAULT`). A backend is ``fn(q, k, v, layout, sdpa)`` on q/k/v
``[B, L, heads, head_dim]`` (the diffusers dispatch layout), ``sdpa(q, k, v, mask)`` being the
processor's own dispatch, and returns ``[B, Lq, heads, head_dim]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import torch

from harness.errors import ConfigError, MissingDependencyError

SDPA = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class BlockCausal:
    """Where a pass's queries sit among its keys; ints only, so it keys the mask caches."""

    query_frames: int
    frame_offset: int
    tokens_per_frame: int
    frames_per_chunk: int

    @classmethod
    def of(cls, query_frames: int, frame_offset: int, tokens_per_frame: int, frames_per_chunk: int
           ) -> BlockCausal | None:
        """The layout, or None when the queries lie in one chunk: then nothing is masked (plain SDPA)."""
        first, last = frame_offset // frames_per_chunk, (frame_offset + query_frames - 1) // frames_per_chunk
        return None if first == last else cls(query_frames, frame_offset, tokens_per_frame, frames_per_chunk)

    @property
    def query_tokens(self) -> int:
        return self.query_frames * self.tokens_per_frame

    @property
    def key_tokens(self) -> int:
        return (self.frame_offset + self.query_frames) * self.tokens_per_frame

    def spans(self) -> list[tuple[int, int, int]]:
        """Per query chunk: (first query token, end query token, end key token), query tokens relative."""
        fpc, start, tokens = self.frames_per_chunk, self.frame_offset, self.tokens_per_frame
        end = start + self.query_frames
        out = []
        for chunk in range(start // fpc, (end - 1) // fpc + 1):
            first, last = max(chunk * fpc, start), min((chunk + 1) * fpc, end)
            out.append(((first - start) * tokens, (last - start) * tokens, last * tokens))
        return out


@lru_cache(maxsize=4)  # at 21×1560 tokens one mask is 1 GiB: keep only the few shapes a run uses
def dense_mask(layout: BlockCausal, device: torch.device) -> torch.Tensor:
    """Bool mask [1, 1, queries, keys], True where a query may attend."""
    fpc = layout.frames_per_chunk
    query_chunk = torch.arange(layout.frame_offset, layout.frame_offset + layout.query_frames) // fpc
    key_chunk = torch.arange(layout.frame_offset + layout.query_frames) // fpc
    allowed = key_chunk[None, :] <= query_chunk[:, None]
    tokens = layout.tokens_per_frame
    return allowed.repeat_interleave(tokens, 0).repeat_interleave(tokens, 1)[None, None].to(device)


def dense(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: BlockCausal, sdpa: SDPA) -> torch.Tensor:
    return sdpa(q, k, v, dense_mask(layout, q.device))


def chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: BlockCausal, sdpa: SDPA) -> torch.Tensor:
    return torch.cat([sdpa(q[:, a:b], k[:, :end], v[:, :end], None) for a, b, end in layout.spans()], dim=1)


def _flex_module() -> Any:
    try:
        from torch.nn.attention import flex_attention
    except ImportError:
        raise MissingDependencyError(
            f"causal_attention='flex' needs torch>=2.5 (torch.nn.attention.flex_attention), this is torch "
            f"{torch.__version__}; use 'chunked' or 'dense'"
        ) from None
    return flex_attention


@cache
def flex_function(device_type: str) -> Callable[..., torch.Tensor]:
    """``flex_attention``, compiled once per process for CUDA (fused kernels); eager elsewhere."""
    fn = _flex_module().flex_attention
    return torch.compile(fn, dynamic=False) if device_type == "cuda" else fn


@lru_cache(maxsize=8)
def block_mask(layout: BlockCausal, device: torch.device) -> Any:
    """The layout's ``BlockMask`` (broadcast over batch and heads), built once per layout and device."""
    span = layout.frames_per_chunk * layout.tokens_per_frame
    shift = layout.frame_offset * layout.tokens_per_frame

    def visible(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return (q_idx + shift) // span >= kv_idx // span

    return _flex_module().create_block_mask(visible, None, None, layout.query_tokens, layout.key_tokens,
                                            device=device)


def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: BlockCausal, sdpa: SDPA) -> torch.Tensor:
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise ConfigError("causal_attention='flex' has no backward on CPU (torch's FlexAttention); "
                          "train on CPU with 'chunked' or 'dense'")
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # flex wants [B, heads, L, head_dim]
    out = flex_function(q.device.type)(q, k, v, block_mask=block_mask(layout, q.device))
    return out.transpose(1, 2)


BACKENDS: dict[str, Callable[..., torch.Tensor]] = {"dense": dense, "flex": flex, "chunked": chunked}
# What ``auto`` runs, by device type, else DEFAULT. ``chunked`` everywhere for now: on the tiny CPU
# config its forward equals ``dense`` bitwise and is no slower, it needs no compile, and on GPU it gets flash
# kernels with O(L) memory; ``flex`` becomes the CUDA entry once measured faster there.
AUTO: dict[str, str] = {}
DEFAULT = "chunked"


def resolve(name: str, device: torch.device) -> str:
    """The backend a configured name runs on ``device``; one line naming the choices if unknown."""
    if name == "auto":
        return AUTO.get(device.type, DEFAULT)
    if name not in BACKENDS:
        raise ConfigError(f"causal attention backend '{name}' is unknown; choose one of auto, {', '.join(BACKENDS)}")
    return name
