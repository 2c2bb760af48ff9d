"""The harness KV cache, plus rewinding: re-writing chunk k replaces it (and what followed) in place.

The Wan backbone reads and writes any :class:`harness.diffusion.kv_cache.KVCache` (the one the
shared sampler creates). Writing a chunk at a frame already in the cache, as Self Forcing does when it
re-encodes a chunk, needs the cache cut back first; :class:`WanKVCache` adds :meth:`truncate` for
that, so a rewrite overwrites and never appends.
"""

from __future__ import annotations

from harness.diffusion.kv_cache import KVCache
from harness.errors import ConfigError


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
        if self.stored_frames != self.num_frames:
            raise ConfigError("cannot truncate a windowed cache that already dropped frames")
        per_frame = self._keys[0].shape[2] // self.num_frames
        keep = frames * per_frame
        self._keys = [k[:, :, :keep] for k in self._keys]
        self._values = [v[:, :, :keep] for v in self._values]
        self.num_frames = self.stored_frames = frames
