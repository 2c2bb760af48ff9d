"""Key/value cache of the clean context for chunk-by-chunk causal inference.

The contract (Self Forcing inference, docs/references.md#causal-inference-and-the-kv-cache): a
denoising forward *reads* the cache and never grows it; only the extra forward at t = 0 on a clean
chunk *writes* its keys and values, once per layer, inside :meth:`KVCache.writing`. Writing anywhere
else raises, so a sampler cannot silently pollute the context with noisy keys.

``window_frames`` bounds the context like Self Forcing's ``local_attn_size``: the cache keeps the newest
``window_frames`` written frames (a chunk attends to them and to itself) and drops older ones, so generating beyond the trained length costs the same per chunk
however long the video grows. ``num_frames`` keeps counting every frame ever written (it is the position
of the next frame); ``stored_frames`` is what attention sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class KVCache:
    """Per-layer keys and values ``[B, heads, tokens, head_dim]`` of the frames written so far."""

    def __init__(self, window_frames: int | None = None) -> None:
        if window_frames is not None and window_frames < 1:
            raise ValueError(f"KVCache window_frames must be >= 1 or None, got {window_frames}")
        self.window_frames = window_frames
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self.num_frames = 0
        self.stored_frames = 0
        self._pending: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._pending_frames = 0

    # -- reading ---------------------------------------------------------------------------------

    @property
    def batch_size(self) -> int | None:
        return self._keys[0].shape[0] if self._keys else None

    def read(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The committed keys and values of ``layer``, or None while nothing was written."""
        if layer >= len(self._keys):
            return None
        return self._keys[layer], self._values[layer]

    # -- writing ---------------------------------------------------------------------------------

    @property
    def is_writing(self) -> bool:
        return self._pending is not None

    @contextmanager
    def writing(self, frames: int) -> Iterator[KVCache]:
        """Open a write of ``frames`` new frames; committed on success, discarded on error."""
        if self._pending is not None:
            raise RuntimeError("KVCache write already in progress")
        self._pending, self._pending_frames = {}, frames
        try:
            yield self
            self._commit()
        finally:
            self._pending, self._pending_frames = None, 0

    def append(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Stage one layer's keys/values of the new frames; only allowed inside :meth:`writing`."""
        if self._pending is None:
            raise RuntimeError(
                "KVCache is read-only outside `with cache.writing(frames)`: a denoising "
                "forward must not grow the context"
            )
        if layer in self._pending:
            raise RuntimeError(f"KVCache layer {layer} was appended twice in one write")
        self._pending[layer] = (keys, values)

    def _commit(self) -> None:
        layers = sorted(self._pending)
        if layers != list(range(len(layers))) or (self._keys and len(layers) != len(self._keys)):
            raise RuntimeError(
                f"KVCache write covered layers {layers}, expected all {len(self._keys)} layers"
            )
        for layer in layers:
            keys, values = self._pending[layer]
            if layer < len(self._keys):
                self._keys[layer] = torch.cat([self._keys[layer], keys], dim=2)
                self._values[layer] = torch.cat([self._values[layer], values], dim=2)
            else:
                self._keys.append(keys)
                self._values.append(values)
        self.num_frames += self._pending_frames
        self.stored_frames += self._pending_frames
        if self.window_frames is not None and self.stored_frames > self.window_frames:
            self._evict(self.stored_frames - self.window_frames)

    def _evict(self, frames: int) -> None:
        """Drop the ``frames`` oldest frames (tokens are frame-major, so a slice along tokens)."""
        drop = frames * (self._keys[0].shape[2] // self.stored_frames)
        self._keys = [k[:, :, drop:] for k in self._keys]
        self._values = [v[:, :, drop:] for v in self._values]
        self.stored_frames -= frames

    # -- housekeeping ----------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every frame (start a new video)."""
        self._keys, self._values, self.num_frames, self.stored_frames = [], [], 0, 0

    def copy(self) -> KVCache:
        """An independent cache sharing the (immutable) tensors: branches of a rollout can diverge."""
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._keys, twin._values = list(self._keys), list(self._values)
        twin._pending, twin._pending_frames = None, 0
        return twin

    def detach(self) -> KVCache:
        """A copy with every tensor detached, so the context carries no graph into later chunks."""
        twin = self.copy()
        twin._keys = [k.detach() for k in twin._keys]
        twin._values = [v.detach() for v in twin._values]
        return twin

    def __repr__(self) -> str:
        return f"KVCache(frames={self.num_frames}, stored={self.stored_frames}, layers={len(self._keys)})"
