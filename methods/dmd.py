"""``dmd``: CausVid-style distribution matching distillation of a causal few-step student.

The student never sees its own rollouts during training (that is what Self Forcing changes): its
inputs are *real* videos noised per chunk to a level drawn from the warped step list, and each chunk
is denoised with the clean real chunks before it as context (teacher forcing, written into the KV
cache by t = 0 passes). The x̂0 of every chunk together is the sample the DMD loss is applied to
(docs/references.md#causvid-causal-init-and-teacher-forced-dmd). ``context="noisy"`` instead runs one
block-causal forward over the whole noisy video, the diffusion-forcing variant CausVid's released code uses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.diffusion.conventions import add_noise, sigma_from_timestep, warp_timesteps
from harness.diffusion.kv_cache import KVCache
from harness.diffusion.sampling import NoiseSource, predict_x0, write_context
from harness.diffusion.schedules import select_steps
from harness.errors import ConfigError
from harness.training.trainer import StepOutput
from harness.worlds.base import World
from methods.distill import DistillationMethod, ScoreRecipe
from methods.distribution_matching import dmd_loss

__all__ = ["DMD", "CausVidRecipe", "dmd_loss"]  # dmd_loss lives with the other DMD terms

CONTEXT_MODES = ("clean", "noisy")


class CausVidRecipe(ScoreRecipe):
    """Noised real chunks in, x̂0 out, DMD on the x̂0; the critic learns the same x̂0 distribution."""

    def __init__(
        self, method: DMD, world: World, teacher: nn.Module, init: nn.Module, device: torch.device
    ) -> None:
        super().__init__(world, teacher, init, device, method.timesteps, method.train.batch_size)
        levels = select_steps(method.step_list, method.num_steps, method.reading)
        self.levels = torch.tensor(warp_timesteps(levels, method.timesteps.shift), dtype=torch.float32)
        self.context = method.context

    def _student_x0(
        self, noise: NoiseSource
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
        """The student's x̂0 of a noised real batch (graph when grad is on), cond, uncond, metrics."""
        shape = self.world.video_shape
        real, prompts = self.world.real_videos(self.batch_size, noise.integer(0, 2**31 - 1), "train")
        real, prompts = noise.take(real).to(self.device), noise.take(prompts)
        cond = self.world.encode_prompts(prompts).to(self.device)
        uncond = self.world.null_condition(len(prompts)).to(self.device)
        draw = (self.batch_size, shape.num_chunks)
        picks = noise.take(torch.randint(0, len(self.levels), draw, generator=noise.generator))
        chunk_t = self.levels[picks].to(self.device)  # [B, chunks]
        frame_t = chunk_t.repeat_interleave(shape.frames_per_chunk, dim=1)  # [B, F]
        noisy = add_noise(real, noise.normal(real.shape, self.device), sigma_from_timestep(frame_t))
        if self.context == "noisy":
            x0 = predict_x0(self.generator, noisy, frame_t, cond, causal=True)
        else:
            x0 = self._teacher_forced(noisy, real, chunk_t, cond)
        return x0, cond, uncond, {"input_t_mean": float(chunk_t.mean())}

    def _teacher_forced(
        self, noisy: torch.Tensor, real: torch.Tensor, chunk_t: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        fpc = self.world.video_shape.frames_per_chunk
        cache, chunks = KVCache(), []
        for c in range(chunk_t.shape[1]):
            frames = slice(c * fpc, (c + 1) * fpc)
            chunks.append(predict_x0(self.generator, noisy[:, frames], chunk_t[:, c], cond, kv_cache=cache))
            write_context(self.generator, real[:, frames], cond, cache)
        return torch.cat(chunks, dim=1)

    def generator_step(self, step: int, noise: NoiseSource) -> StepOutput:
        x0, cond, uncond, metrics = self._student_x0(noise)
        loss, dm_metrics = self.scores.generator_loss(x0, cond, uncond, noise)
        return StepOutput(loss, {"dmd": loss.detach()}, {**metrics, **dm_metrics})

    def critic_step(self, step: int, noise: NoiseSource) -> StepOutput:
        with torch.no_grad():
            x0, cond, _, _ = self._student_x0(noise)
        return self.critic_output(x0, cond, noise)


class DMD(DistillationMethod):
    """CausVid-style DMD (teacher-forced student inputs, no self-rollout)."""

    name = "dmd"

    def __init__(self, num_steps: int = 4, context: str = "clean", **shared: Any) -> None:
        """
        Args:
            num_steps: noise levels the student is trained at: ``num_steps`` entries of ``step_list``
                (warped).
            context: ``clean`` (teacher-forced real context, via the KV cache) or ``noisy`` (one
                block-causal forward over the noised video, CausVid's released code).
            **shared: the settings of every distillation method (:class:`DistillationMethod`).
        """
        super().__init__(**shared)
        if context not in CONTEXT_MODES:
            raise ConfigError(f"dmd context '{context}' is unknown; choose one of {list(CONTEXT_MODES)}")
        select_steps(self.step_list, num_steps, self.reading)  # validates num_steps
        self.num_steps, self.context = num_steps, context

    def build_recipe(
        self, world: World, teacher: nn.Module, init: nn.Module, device: torch.device
    ) -> CausVidRecipe:
        return CausVidRecipe(self, world, teacher, init, device)
