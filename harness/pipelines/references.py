"""Reference rows of the paper's tables: the teacher itself, a many-step causal model, real data.

They share the evaluation and sample writing of the distilled rows, so every row of a table is
scored by the same evaluator on the same prompts and noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..pipeline import RunContext
from ..worlds.base import World
from .common import WorldPipeline, evaluate_videos, save_samples, take_prompts, timed


class _Reference(WorldPipeline):
    """Generate (or fetch) videos for the eval prompts, then score and save them like any row."""

    method = "reference"

    def __init__(self, world: World, num_videos: int = 32, videos_per_prompt: int = 2, num_reference: int = 128,
                 sample_seed: int = 0, save_videos: int = 4):
        self.world, self.num_videos, self.videos_per_prompt = world, num_videos, videos_per_prompt
        self.num_reference, self.sample_seed, self.save_videos = num_reference, sample_seed, save_videos

    def videos(self, ctx: RunContext, prompts: list[str]) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        """uint8 videos, the prompts they show, and the row's schedule / NFE / latency."""
        raise NotImplementedError

    def run(self, ctx: RunContext) -> dict[str, Any]:
        prompts = take_prompts(self.world.prompts("eval"), self.num_videos, self.videos_per_prompt)
        videos, prompts, info = self.videos(ctx, prompts)
        metrics = evaluate_videos(ctx, self.world, self.world.evaluator(ctx), videos, prompts, self.num_reference)
        save_samples(ctx, videos, prompts, count=self.save_videos, method=self.method,
                     schedule=str(info["schedule"]), nfe=int(info["nfe"]), seed=self.sample_seed)
        return {**metrics, **info, "method": self.method}


class TeacherReference(_Reference):
    """The bidirectional teacher, Euler on the flow ODE with CFG (the Wan2.1 row).

    Args:
        steps: Euler steps (the paper's teacher row uses 50).
        NFE counts both CFG branches: ``2 · steps``.
    """

    method = "teacher"

    def __init__(self, world: World, steps: int = 50, **kwargs: Any):
        super().__init__(world, **kwargs)
        self.steps = steps

    def videos(self, ctx: RunContext, prompts: list[str]) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        teacher = self.world.teacher(ctx)
        ctx.progress(stage=f"sample teacher {self.steps} steps")
        with torch.no_grad():
            x = self.world.sample_teacher(teacher, prompts, self.sample_seed, steps=self.steps)
            _, latency = timed(lambda: self.world.sample_teacher(teacher, prompts[:1], self.sample_seed,
                                                                  steps=self.steps))
        return self.world.decode(x), prompts, {"schedule": str(self.steps), "nfe": 2 * self.steps,
                                               "latency_s": latency}


class DiffusionForcingReference(_Reference):
    """A causal model trained with diffusion forcing, sampled chunk by chunk with many Euler steps
    (the SkyReels-V2 row).

    Args:
        steps: denoising steps per chunk (the paper's row uses 30).
    """

    method = "diffusion_forcing"

    def __init__(self, world: World, steps: int = 30, **kwargs: Any):
        super().__init__(world, **kwargs)
        self.steps = steps

    def videos(self, ctx: RunContext, prompts: list[str]) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        from ..sampling import dense_schedule, sample_causal

        model = self.world.diffusion_forcing(ctx)
        schedule = dense_schedule(self.steps)
        ctx.progress(stage=f"sample diffusion forcing {self.steps} steps")
        samples = sample_causal(self.world, model, prompts, schedule, self.sample_seed, renoise="ode")
        _, latency = timed(lambda: sample_causal(self.world, model, prompts[:1], schedule, self.sample_seed,
                                                 renoise="ode"))
        return self.world.decode(samples.videos), prompts, {"schedule": str(self.steps), "nfe": samples.nfe,
                                                            "latency_s": latency}


class RealDataReference(_Reference):
    """Real videos of the eval prompts, scored like generated ones: the ceiling of every dimension."""

    method = "real_data"

    def videos(self, ctx: RunContext, prompts: list[str]) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        real = self.world.real_videos_of(prompts, self.sample_seed)
        return self.world.decode(real), prompts, {"schedule": "-", "nfe": 0, "latency_s": 0.0}
