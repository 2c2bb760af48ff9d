"""On-the-fly training data: rendered videos with their prompts, tokens and masks."""

from __future__ import annotations

import numpy as np
import torch

from harness.worlds.sprites.prompts import PromptSuite, Scene, encode_batch, parse_prompt
from harness.worlds.sprites.render import RenderedBatch, Renderer, to_model
from harness.worlds.sprites.world_config import SpritesConfig


class SpritesData:
    """The data API a training loop needs: ``batch(n, seed)`` renders a fresh, deterministic batch."""

    def __init__(self, cfg: SpritesConfig | None = None) -> None:
        self.cfg = cfg or SpritesConfig()
        self.suite = PromptSuite(self.cfg)
        self.renderer = Renderer(self.cfg)

    def batch(
        self, n: int, rng: np.random.Generator | int, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        """(videos float32 [n, T, 3, H, W] in [-1, 1], token ids int64 [n, L], mask bool [n, L], prompts)."""
        rendered = self.render(n, rng, split)
        ids, mask = encode_batch(rendered.prompts)
        videos = torch.from_numpy(to_model(rendered.videos))
        return videos, torch.from_numpy(ids), torch.from_numpy(mask), rendered.prompts

    def render(self, n: int, rng: np.random.Generator | int, split: str = "train") -> RenderedBatch:
        """uint8 videos with ground-truth states for ``n`` scenes sampled from ``split``."""
        rng = np.random.default_rng(rng)
        return self.renderer.render(self.suite.sample(n, rng, split), rng)

    def render_prompts(self, prompts: list[str], rng: np.random.Generator | int) -> RenderedBatch:
        """Real videos for given prompts (reference sets for the Fréchet distance); an object without a
        direction word gets a random direction."""
        scenes: list[Scene] = [parse_prompt(p) for p in prompts]
        return self.renderer.render(scenes, rng)
