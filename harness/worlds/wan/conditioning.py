"""Where the Wan world's text conditioning comes from: the UMT5 embedding store, or hashed random rows.

Both give what the backbone's ``cond`` expects, [B, text_len, text_dim] with the prompt's rows first
and zeros after them (``WanPipeline`` and Self Forcing zero-pad UMT5's output to 512 rows).

* :class:`StoredConditions` (real scale) reads a :class:`~harness.worlds.wan.text.TextEmbeddingStore`
  written by ``python -m harness.worlds.wan.text`` — on first use, so building a world (``harness
  validate``) reads nothing.
* :class:`HashedConditions` (the tiny preset) draws each prompt's rows from a generator seeded by the
  prompt's SHA-256: deterministic on every machine and process, distinct per prompt, one row per word
  plus one (UMT5's end token), no encoder needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from harness.errors import ConfigError
from harness.worlds.wan.text import TextEmbeddingStore, prompt_key


class TextConditions(Protocol):
    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """[len(prompts), text_len, text_dim] float32 embeddings, zero-padded."""


class StoredConditions:
    """Embeddings from a store file, checked against the backbone's ``text_dim``."""

    def __init__(self, path: str | None, text_dim: int) -> None:
        self.path, self.text_dim = path, text_dim
        self._store: TextEmbeddingStore | None = None

    def store(self) -> TextEmbeddingStore:
        if self._store is None:
            if not self.path:
                raise ConfigError("WanWorld.text_embeddings is not set: name the store written by "
                                  "`python -m harness.worlds.wan.text PROMPTS.txt STORE.safetensors`")
            self._store = TextEmbeddingStore.load(Path(self.path).expanduser())
        return self._store

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.store().embed(list(prompts), text_dim=self.text_dim)


class HashedConditions:
    """Deterministic random rows per prompt (the tiny preset's stand-in for UMT5)."""

    def __init__(self, text_dim: int, text_len: int, scale: float = 1.0) -> None:
        self.text_dim, self.text_len, self.scale = text_dim, text_len, scale

    def rows(self, prompt: str) -> torch.Tensor:
        count = min(len(prompt.split()) + 1, self.text_len)
        seed = int(prompt_key(prompt)[:15], 16)
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(count, self.text_dim, generator=gen) * self.scale

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(prompts), self.text_len, self.text_dim)
        for i, prompt in enumerate(prompts):
            rows = self.rows(prompt)
            out[i, : rows.shape[0]] = rows
        return out
