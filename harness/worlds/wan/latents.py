"""Real videos of the Wan world, as VAE latents: a folder of files at real scale, noise for the tiny preset.

Only CausVid-style DMD (``methods.dmd``) trains on real videos; Self Forcing and ASD are data-free, and
VBench has no real-data reference, so the paper studies need a latent folder for the DMD row alone.
Format of the folder (``WanWorld.real_latents``): one ``*.safetensors`` per clip holding a tensor
``latents`` [F, 16, h, w] in the harness layout (normalised latents, as the VAE encoder's output goes
into the pipeline: ``(z − mean) / std``), with the clip's prompt in the file's metadata under
``prompt``. Files are indexed on first use by reading their headers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from harness.errors import CheckpointError, ConfigError

TENSOR = "latents"


class LatentFolder:
    """Clips of a latent folder, drawn reproducibly by seed."""

    def __init__(self, path: str, shape: tuple[int, int, int, int]) -> None:
        self.path, self.shape = Path(path).expanduser(), shape
        self._index: list[tuple[Path, str]] | None = None

    def index(self) -> list[tuple[Path, str]]:
        if self._index is None:
            from safetensors import safe_open

            if not self.path.is_dir():
                raise CheckpointError(f"WanWorld.real_latents: {self.path}: no such folder")
            entries = []
            for file in sorted(self.path.glob("*.safetensors")):
                try:
                    with safe_open(str(file), framework="pt") as handle:
                        meta = handle.metadata() or {}
                except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for bad headers
                    raise CheckpointError(f"{file}: unreadable safetensors file ({exc})") from None
                if "prompt" not in meta:
                    raise CheckpointError(f"{file}: no 'prompt' in its metadata")
                entries.append((file, meta["prompt"]))
            if not entries:
                raise CheckpointError(f"WanWorld.real_latents: {self.path} holds no *.safetensors clip")
            self._index = entries
        return self._index

    def load(self, file: Path) -> torch.Tensor:
        from safetensors.torch import load_file

        latents = load_file(str(file)).get(TENSOR)
        if latents is None or tuple(latents.shape) != self.shape:
            found = None if latents is None else list(latents.shape)
            raise CheckpointError(
                f"{file}: tensor '{TENSOR}' has shape {found}, the world expects {list(self.shape)}")
        return latents.float()

    def sample(self, n: int, seed: int, prompts: Sequence[str] = ()) -> tuple[torch.Tensor, list[str]]:
        """``n`` clips drawn with replacement, with their own prompts (``prompts`` is not used: a folder
        has no splits)."""
        entries = self.index()
        picks = np.random.default_rng(seed).integers(0, len(entries), size=n)
        return torch.stack([self.load(entries[i][0]) for i in picks]), [entries[i][1] for i in picks]

    def of(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        by_prompt: dict[str, list[Path]] = {}
        for file, prompt in self.index():
            by_prompt.setdefault(prompt, []).append(file)
        rng = np.random.default_rng(seed)
        order = {p: list(rng.permutation(len(files))) for p, files in by_prompt.items()}
        clips = []
        for k, prompt in enumerate(prompts):
            if prompt not in by_prompt:
                raise ConfigError(f"WanWorld.real_latents: no clip of prompt {prompt[:60]!r} in {self.path}")
            files, seen = by_prompt[prompt], sum(1 for p in prompts[:k] if p == prompt)
            clips.append(self.load(files[order[prompt][seen % len(files)]]))  # repeats: distinct clips first
        return torch.stack(clips)


class NoiseLatents:
    """The tiny preset's "real" videos: seeded Gaussian latents (no data exists for random weights)."""

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        self.shape = shape

    def sample(self, n: int, seed: int, prompts: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
        """``n`` clips labelled with prompts drawn from ``prompts`` (the split's list)."""
        gen = torch.Generator().manual_seed(seed)
        picks = torch.randint(0, len(prompts), (n,), generator=gen).tolist()
        return torch.randn((n, *self.shape), generator=gen), [prompts[i] for i in picks]

    def of(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((len(prompts), *self.shape), generator=gen)
