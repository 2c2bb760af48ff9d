"""The harness KV cache, plus rewinding: re-writing chunk k replaces it (and what followed) in place.

The Wan backbone reads and writes any :class:`harness.worlds.sprites.kv_cache.KVCache` (the one the
shared sampler creates). Writing a chunk at a frame already in the cache, as Self Forcing does when it
re-encodes a chunk, needs the cache cut back first; :class:`WanKVCache` adds :meth:`truncate` for
that, so a rewrite overwrites and never appends.
"""

from __future__ import annotations

from harness.errors import ConfigError
from harness.worlds.sprites.kv_cache import KVCache


class WanKVCache(KVCache):
    """A :class:`KVCache` whose clean context can be cut back to its first ``frames`` frames."""

    def truncate(self, frames: int) -> None:
        """Forget every frame from ``frames`` on (tokens are frame-major, so a slice along tokens)."""
        if self.is_writing:
            raise RuntimeError("KVCache.truncate during a write")
        if not 0 <= frames <= self.num_frames:
            raise ConfigError(f"cannot truncate a cache of {self.num_frames} frames to {frames}")
        if frames == self.num_frames:
            return
        if frames == 0:
            self.clear()
            return
        per_frame = self._keys[0].shape[2] // self.num_frames
        keep = frames * per_frame
        self._keys = [k[:, :, :keep] for k in self._keys]
        self._values = [v[:, :, :keep] for v in self._values]
        self.num_frames = frames

    def copy(self) -> WanKVCache:
        twin = WanKVCache()
        twin._keys, twin._values, twin.num_frames = list(self._keys), list(self._values), self.num_frames
        return twin

    def detach(self) -> WanKVCache:
        twin = self.copy()
        twin._keys = [k.detach() for k in twin._keys]
        twin._values = [v.detach() for v in twin._values]
        return twin
