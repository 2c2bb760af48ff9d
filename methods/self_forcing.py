"""``self_forcing``: DMD on the student's own autoregressive rollout (Huang et al. 2025).

Training rolls the generator out chunk by chunk with the KV cache exactly as inference does
(:func:`harness.diffusion.sampling.causal_rollout`): one exit step drawn per iteration and shared by every chunk
(``same_step_across_blocks``), the steps before it without gradient (x̂0 re-noised with fresh noise),
the gradient only through the exit forward, the context written by no-grad passes at t = 0, and the
DMD loss on the whole rolled-out video (docs/references.md#self-forcings-rollout). The student is trained
for one fixed step list: 4 steps is the paper's Self Forcing, 2 and 1 are the retrained † baselines.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.diffusion.sampling import NoiseSource, Rollout, causal_rollout
from harness.diffusion.schedules import StepSchedule
from harness.training.trainer import StepOutput
from harness.worlds.base import World
from methods.distill import DistillationMethod, ScoreRecipe


class SelfRolloutRecipe(ScoreRecipe):
    """Self Forcing's generator and critic steps; ASD extends it with the adversarial branch."""

    def __init__(
        self,
        method: DistillationMethod,
        world: World,
        teacher: nn.Module,
        init: nn.Module,
        device: torch.device,
    ) -> None:
        super().__init__(world, teacher, init, device, method.timesteps, method.train.batch_size)
        self.method = method

    def training_schedule(self, n: int) -> StepSchedule:
        m = self.method
        return StepSchedule.uniform(n, base=m.step_list, reading=m.reading, shift=m.timesteps.shift)

    def rollout(
        self,
        cond: torch.Tensor,
        schedule: StepSchedule,
        noise: NoiseSource,
        *,
        exit_step: int | None = None,
        grad: bool,
    ) -> Rollout:
        return causal_rollout(
            self.generator,
            cond,
            self.world.video_shape,
            schedule,
            noise,
            exit_step=exit_step,
            grad=grad,
            renoise=self.method.renoise,
        )

    def _exit_step(self, noise: NoiseSource) -> int:
        return noise.integer(0, self.method.num_steps)

    def generator_step(self, step: int, noise: NoiseSource) -> StepOutput:
        _, cond, uncond = self.prompt_batch(noise)
        exit_step = self._exit_step(noise)
        video = self.rollout(
            cond, self.training_schedule(self.method.num_steps), noise, exit_step=exit_step, grad=True
        ).video
        loss, metrics = self.scores.generator_loss(video, cond, uncond, noise)
        return StepOutput(loss, {"dmd": loss.detach()}, {**metrics, "exit_step": float(exit_step)})

    def critic_step(self, step: int, noise: NoiseSource) -> StepOutput:
        _, cond, _ = self.prompt_batch(noise)
        exit_step = self._exit_step(noise)
        with torch.no_grad():
            video = self.rollout(
                cond, self.training_schedule(self.method.num_steps), noise, exit_step=exit_step, grad=False
            ).video
        return self.critic_output(video, cond, noise)


class SelfForcing(DistillationMethod):
    """Self Forcing + DMD for a fixed step list (4 = the paper's Self Forcing, 2 / 1 = retrained †)."""

    name = "self_forcing"

    def __init__(self, num_steps: int = 4, **shared: Any) -> None:
        """
        Args:
            num_steps: steps the student is trained for; the exit step is drawn from ``0..num_steps-1``.
            **shared: the settings of every distillation method (:class:`DistillationMethod`; Self Forcing
                trains with ratio 5).
        """
        super().__init__(**shared)
        StepSchedule.uniform(num_steps, base=self.step_list, reading=self.reading)  # validates num_steps
        self.num_steps = num_steps

    def build_recipe(
        self, world: World, teacher: nn.Module, init: nn.Module, device: torch.device
    ) -> SelfRolloutRecipe:
        return SelfRolloutRecipe(self, world, teacher, init, device)
