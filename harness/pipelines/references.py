"""Reference rows of the paper's tables: the teacher itself, a many-step causal model, real data.

They share the batched sampling, evaluation and sample writing of the distilled rows
(:mod:`.streaming`), so every row of a table is scored by the same evaluator on the same prompts and
per-video noise.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.engine.pipeline import RunContext
from harness.parallel.ranks import is_rank_zero
from harness.pipelines.batches import VideoBatch, checked_batch
from harness.pipelines.common import WorldPipeline, check_row_sizes, take_prompts
from harness.pipelines.streaming import EvalStream, RowSampler
from harness.worlds.base import World


class _Reference(WorldPipeline):
    """Generate (or fetch) videos for the eval prompts batch by batch, then score and save them like any
    row; with ``resources: {gpus: N}`` the N ranks of torchrun share the batches."""

    method = "reference"

    def __init__(self, world: World, num_videos: int = 32, videos_per_prompt: int = 2,
                 num_reference: int = 128, sample_seed: int = 0, save_videos: int = 4, sample_batch: int = 64,
                 resources: dict[str, float] | None = None):
        check_row_sizes(world, num_videos=num_videos, videos_per_prompt=videos_per_prompt,
                        num_reference=num_reference, save_videos=save_videos)
        self.world, self.num_videos, self.videos_per_prompt = world, num_videos, videos_per_prompt
        self.num_reference, self.sample_seed, self.save_videos = num_reference, sample_seed, save_videos
        self.sample_batch = checked_batch(sample_batch)
        self.resources = dict(resources or {})

    def row(self, ctx: RunContext) -> RowSampler:
        """How this row makes a batch of videos (its models loaded here, once)."""
        raise NotImplementedError

    def run(self, ctx: RunContext) -> dict[str, Any]:
        prompts = take_prompts(self.world.prompts("eval"), self.num_videos, self.videos_per_prompt)
        stream = EvalStream(ctx, self.world, prompts, seed=self.noise_seed(ctx), batch_size=self.sample_batch,
                            save_videos=self.save_videos, num_reference=self.num_reference)
        row = self.row(ctx)
        stream.sample(row)
        info = {"schedule": row.schedule, "method": self.method}
        if not is_rank_zero():  # this rank's videos are collected; rank 0 scores them all
            return info
        nfe, latency = stream.measure(row)
        return {**stream.scores(), **info, "nfe": nfe, "latency_s": latency}


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

    def row(self, ctx: RunContext) -> RowSampler:
        teacher = self.world.teacher(ctx)

        def sample(prompts: list[str], batch: VideoBatch) -> tuple[torch.Tensor, int]:
            noise = batch.noise(self.noise_seed(ctx))
            return self.world.sample_teacher(teacher, prompts, noise, steps=self.steps), 2 * self.steps

        return RowSampler(sample, self.method, str(self.steps))


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

    def row(self, ctx: RunContext) -> RowSampler:
        from harness.diffusion.sampling import dense_schedule, sample_causal

        model = self.world.diffusion_forcing(ctx)
        schedule = dense_schedule(self.steps)

        def sample(prompts: list[str], batch: VideoBatch) -> tuple[torch.Tensor, int]:
            noise = batch.noise(self.noise_seed(ctx))
            out = sample_causal(self.world, model, prompts, schedule, noise, renoise="ode")
            return out.videos, out.nfe

        return RowSampler(sample, self.method, str(self.steps))


class RealDataReference(_Reference):
    """Real videos of the eval prompts, scored like generated ones: the ceiling of every dimension.

    Which real videos a batch gets is drawn per batch (a world picks distinct clips for a prompt's
    repeats within one call), so this row depends on ``sample_batch``, not on the number of ranks.
    """

    method = "real_data"

    def row(self, ctx: RunContext) -> RowSampler:
        def fetch(prompts: list[str], batch: VideoBatch) -> tuple[torch.Tensor, int]:
            return self.world.real_videos_of(prompts, batch.seed(self.noise_seed(ctx))), 0

        return RowSampler(fetch, self.method, "-", timed=False)
