"""Latents → uint8 frames through diffusers' ``AutoencoderKLWan``, loaded on first use.

The VAE only runs for evaluation (the methods train in latent space). Wan's latents are normalised
per channel; the decoder takes ``z · std + mean`` (``WanPipeline``: ``latents / (1 / std) + mean``),
with ``latents_mean`` / ``latents_std`` from the VAE's own config. 21 latent frames become 81 frames
(4× in time, the first frame alone) and 60×104 becomes 480×832 (8× in space). Videos are decoded one
at a time: a decoded 81×480×832 clip is ~0.4 GB in fp32 before it is turned into uint8.

The tiny preset uses the same class with a tiny config (``base_dim=8``, one residue block, 0.67 M
parameters) built locally from a fixed seed: the whole real decode path — normalisation, the causal
temporal upsampling, the value range — runs in tests, on random weights, in about half a second per
6×8×8 latent video (→ 21×64×64 frames).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import CheckpointError
from harness.worlds.wan import deps
from harness.worlds.wan.sources import checked_source

TINY_VAE = {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 1,
            "temperal_downsample": [False, True, True]}
TINY_VAE_SEED = 0


def tiny_vae() -> Any:
    """The tiny preset's ``AutoencoderKLWan``: random weights from a fixed seed (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_VAE_SEED)
        return deps.diffusers().AutoencoderKLWan(**TINY_VAE).eval()


def load_vae(source: str, dtype: torch.dtype) -> Any:
    """The ``vae/`` of a Wan diffusers pipeline (hub id or folder; a bare VAE folder works too)."""
    source = checked_source(source, "vae")
    cls = deps.diffusers().AutoencoderKLWan
    subfolder = None if (Path(source) / "config.json").is_file() else "vae"
    try:
        return cls.from_pretrained(source, subfolder=subfolder, torch_dtype=dtype).eval()
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"WanWorld.vae: cannot load AutoencoderKLWan from {source} ({exc})") from None


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Decoder output [1, 3, T, H, W] in [-1, 1] → [T, H, W, 3] uint8."""
    frames = ((pixels[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).cpu().numpy()


class WanDecoder:
    """Decodes harness latents [n, F, 16, h, w]; builds or loads the VAE the first time it is asked."""

    def __init__(self, source: str | None, *, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        self.source, self.device, self.dtype = source, device, dtype
        self._vae: Any = None

    @property
    def vae(self) -> Any:
        if self._vae is None:
            vae = tiny_vae() if self.source is None else load_vae(self.source, self.dtype)
            self._vae = vae.to(self.device).requires_grad_(False)  # dtype set at build or load
        return self._vae

    def _stats(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.vae.config
        shape = (1, channels, 1, 1, 1)
        mean = torch.tensor(config.latents_mean, dtype=torch.float32).view(shape)
        std = torch.tensor(config.latents_std, dtype=torch.float32).view(shape)
        return mean.to(self.device), std.to(self.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """uint8 videos [n, T, H, W, 3]."""
        mean, std = self._stats(latents.shape[2])
        videos = []
        for video in latents:
            z = video.unsqueeze(0).transpose(1, 2).to(self.device, torch.float32) * std + mean
            pixels = self.vae.decode(z.to(self.dtype), return_dict=False)[0]
            videos.append(to_uint8(pixels))
        return np.stack(videos)
