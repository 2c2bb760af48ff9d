"""``ToyWorld``: the sprites DiT (``smoke`` preset) with random, untrained weights.

The teacher and the causal init are seeded random networks whose zero-initialised output layers are
re-drawn, so every forward is non-trivial. Prompts become hashed word ids; "real" videos are seeded
Gaussian clips. A real world replaces each of these with the genuine article and keeps the signatures.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.worlds.base import Guidance, StageProvider, VideoShape, World
from harness.worlds.sprites.backbone import build_sprites_dit
from harness.worlds.toy.evaluator import MeanBrightness

PROMPTS = [
    "a red circle",
    "a blue square",
    "a green triangle",
    "a yellow circle moving left",
    "a red square moving up",
    "a blue triangle moving right",
]


def randomise_backbone(model: nn.Module, seed: int, std: float = 0.05) -> nn.Module:
    """Give every zero-initialised layer (adaLN modulations, final projection) random weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 1 and not bool(param.any()):
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    return model


class ToyWorld(World):
    """``frames`` frames of 3×16×16 in chunks of 2; a random teacher (``teacher_seed``) and init."""

    name = "toy"

    def __init__(
        self,
        frames: int = 4,
        preset: str = "smoke",
        teacher_seed: int = 1,
        init_seed: int = 2,
        guidance_scale: float = 3.0,
    ) -> None:
        self.preset = preset
        self._model_config = build_sprites_dit(preset).config
        cfg = self._model_config
        self._shape = VideoShape(frames, cfg.channels, cfg.height, cfg.width, cfg.frames_per_chunk)
        self.teacher_seed, self.init_seed = teacher_seed, init_seed
        self._guidance = Guidance(scale=guidance_scale, form="standard")

    @property
    def video_shape(self) -> VideoShape:
        return self._shape

    @property
    def guidance(self) -> Guidance:
        return self._guidance

    def prompts(self, split: str) -> list[str]:
        return list(PROMPTS)

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        cfg = self._model_config
        ids = torch.full((len(prompts), cfg.max_prompt_len), cfg.pad_id, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            for col, word in enumerate(prompt.split()[: cfg.max_prompt_len]):
                ids[row, col] = 1 + zlib.crc32(word.encode()) % (cfg.vocab_size - 1)
        return ids

    def null_condition(self, batch: int) -> torch.Tensor:
        return self.encode_prompts([""] * batch)

    def real_videos(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, list[str]]:
        gen = torch.Generator().manual_seed(seed)
        videos = 0.5 * torch.randn(self._shape.tensor_shape(n), generator=gen)
        picks = torch.randint(0, len(PROMPTS), (n,), generator=gen).tolist()
        return videos, [PROMPTS[i] for i in picks]

    def real_videos_of(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return 0.5 * torch.randn(self._shape.tensor_shape(len(prompts)), generator=gen)

    def make_backbone(self) -> nn.Module:
        return build_sprites_dit(self.preset)

    def _random_backbone(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return randomise_backbone(self.make_backbone(), seed)

    def teacher(self, stages: StageProvider | None = None) -> nn.Module:
        # a real world builds this once as a cached stage: stages.stage("teacher", recipe, build)
        return self._random_backbone(self.teacher_seed).eval()

    def causal_init(self, stages: StageProvider | None = None) -> nn.Module:
        return self._random_backbone(self.init_seed)

    def decode(self, x: torch.Tensor) -> np.ndarray:
        frames = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return frames.permute(0, 1, 3, 4, 2).cpu().numpy()

    def evaluator(self, stages: StageProvider | None = None) -> MeanBrightness:
        return MeanBrightness()

    def config(self) -> dict[str, Any]:
        return {"world": self.name, "frames": self._shape.frames, "preset": self.preset}
