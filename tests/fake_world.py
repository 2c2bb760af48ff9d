"""A tiny World for method tests: the sprites DiT (``smoke`` preset) with random, untrained weights.

Nothing here is trained: the teacher and the causal init are seeded random networks whose zero-
initialised output layers are re-drawn, so every forward is non-trivial. Prompts are hashed word ids;
"real" videos are seeded Gaussian clips. That is all a method needs to exercise its losses, rollouts,
logging and checkpoints in milliseconds (and, with ``preset="default"``, to time them).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.worlds.base import Guidance, StageProvider, VideoShape, World
from harness.worlds.sprites.backbone import build_sprites_dit

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


class MeanBrightness:
    """A one-dimension evaluator: the mean pixel value in [0, 1] (enough to run an evaluation path)."""

    name = "mean-brightness"
    dimensions = ("brightness",)

    def score(self, videos: np.ndarray, prompts: list[str]) -> dict[str, float]:
        return {"brightness": float(np.asarray(videos, dtype=np.float64).mean() / 255.0)}

    def aggregate(self, raw: Mapping[str, float]) -> dict[str, float]:
        return {"total": raw["brightness"]}


class FakeWorld(World):
    """``frames`` frames of 3×16×16 in chunks of 2; a random teacher (``teacher_seed``) and init."""

    name = "fake"

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

    def real_videos_of(self, prompts, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return 0.5 * torch.randn(self._shape.tensor_shape(len(prompts)), generator=gen)

    def make_backbone(self) -> nn.Module:
        return build_sprites_dit(self.preset)

    def _random_backbone(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return randomise_backbone(self.make_backbone(), seed)

    def teacher(self, stages: StageProvider | None = None) -> nn.Module:
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


def distill_log(
    method: Any, world: World, workdir: Path, seed: int = 0
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Distil on ``world`` in ``workdir``; return the generator and the logged rows (with their step)."""
    from methods.base import TrainContext

    rows: list[dict[str, float]] = []
    ctx = TrainContext(
        workdir=workdir, seed=seed, log=lambda metrics, step: rows.append({"step": step, **metrics})
    )
    generator = method.distill(world, world.teacher(), world.causal_init(), ctx)
    return generator, rows
