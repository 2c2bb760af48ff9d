"""What DMD, Self Forcing and ASD have in common: the models they train, their batches, how they sample.

:class:`DistillationMethod` turns a method's config into a :class:`~harness.training.trainer.TrainingRecipe`
(``build_recipe``) and runs it with the shared :class:`~harness.training.trainer.Trainer`. :class:`ScoreRecipe`
holds the parts every recipe here needs: the generator (a copy of the causal init), the critic (DMD's
fake score, ``world.critic_init(teacher)``: a copy of the teacher unless the world says otherwise), the
frozen teacher (real score) and the DMD losses.

FFE is orthogonal to the method: ``inference="ffe"`` makes a bare step count given to
:meth:`DistillationMethod.sample` mean ``n*`` instead of ``n``; a full spec (``"2*"``, ``"[1000,500]"``)
or a :class:`StepSchedule` is always used as written.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from typing import Any

import torch
from torch import nn

from harness.diffusion.conventions import DEFAULT_STEP_LIST
from harness.diffusion.sampling import NoiseSource, sample_causal
from harness.diffusion.schedules import STEP_READINGS, StepSchedule
from harness.errors import ConfigError
from harness.training.trainer import DEFAULT_TRAIN, StepOutput, Trainer, TrainingRecipe, TrainSettings
from harness.worlds.base import World
from methods.base import Method, Samples, TrainContext
from methods.distribution_matching import DEFAULT_TIMESTEPS, DistributionMatching, ScoreTimesteps

INFERENCE_MODES = ("uniform", "ffe")


class ScoreRecipe:
    """Generator, critic and frozen teacher of one distillation, plus batches of prompts."""

    def __init__(
        self,
        world: World,
        teacher: nn.Module,
        init: nn.Module,
        device: torch.device,
        timesteps: ScoreTimesteps,
        batch_size: int,
    ) -> None:
        self.world, self.batch_size, self.device = world, batch_size, device
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        self.generator: nn.Module = world.freeze_text_encoder(
            copy.deepcopy(init).to(device).train().requires_grad_(True))
        self.fake_score = world.freeze_text_encoder(world.critic_init(teacher).to(device).train().requires_grad_(True))
        self.critic: nn.Module = self.fake_score
        self.scores = DistributionMatching(self.teacher, self.fake_score, world.guidance, timesteps)
        self.train_prompts = list(world.prompts("train"))
        if not self.train_prompts:
            raise ConfigError(f"world '{world.name}' has no train prompts to distil on")

    def prompt_batch(self, noise: NoiseSource) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """``batch_size`` train prompts drawn with the run's noise source (this rank's share under
        data parallelism), their cond and the null cond."""
        prompts = noise.take([noise.choice(self.train_prompts) for _ in range(self.batch_size)])
        cond = self.world.encode_prompts(prompts).to(self.device)
        return prompts, cond, self.world.null_condition(len(prompts)).to(self.device)

    def critic_output(self, sample: torch.Tensor, cond: torch.Tensor, noise: NoiseSource) -> StepOutput:
        """The fake score's flow loss on a detached generator sample."""
        loss = self.scores.critic_loss(sample.detach(), cond, noise)
        return StepOutput(loss, {"flow": loss.detach()})


class DistillationMethod(Method):
    """A method trained by the shared loop and sampled by the shared causal sampler.

    The settings every distillation method shares are its constructor's; a subclass takes its own and
    passes the rest on (``**shared``), so study files write all of them flat under ``init_args``.

    Args:
        step_list: un-shifted full step list (Self Forcing ``denoising_step_list``, ``[1000, 750, 500, 250]``).
        reading: how ``n`` steps are taken from ``step_list``: ``prefix`` or ``skip``
            (:mod:`harness.diffusion.schedules`).
        inference: ``uniform`` or ``ffe``: what a bare step count means when sampling.
        renoise: re-noise rule of rollouts and the sampler: ``sde`` (fresh noise, Self Forcing) or ``ode``.
        train: the shared optimisation settings.
        timesteps: the DMD / critic noise-level sampler (shift 5, clamp [20, 980]).
    """

    def __init__(
        self,
        *,
        step_list: tuple[float, ...] = DEFAULT_STEP_LIST,
        reading: str = "prefix",
        inference: str = "uniform",
        renoise: str = "sde",
        train: TrainSettings = DEFAULT_TRAIN,
        timesteps: ScoreTimesteps = DEFAULT_TIMESTEPS,
    ) -> None:
        if inference not in INFERENCE_MODES:
            raise ConfigError(f"inference '{inference}' is unknown; choose one of {list(INFERENCE_MODES)}")
        if reading not in STEP_READINGS:
            raise ConfigError(f"reading '{reading}' is unknown; choose one of {sorted(STEP_READINGS)}")
        self.train = train
        self.timesteps = timesteps
        self.step_list = tuple(float(s) for s in step_list)
        StepSchedule(self.step_list)  # validates the list with a clear error
        self.reading, self.inference, self.renoise = reading, inference, renoise

    @abstractmethod
    def build_recipe(
        self, world: World, teacher: nn.Module, init: nn.Module, device: torch.device
    ) -> TrainingRecipe:
        """The models and the two steps this method trains with."""

    def distill(self, world: World, teacher: nn.Module, init: nn.Module, ctx: TrainContext) -> nn.Module:
        torch.manual_seed(ctx.seed)
        recipe = self.build_recipe(world, teacher, init, ctx.device)
        generator = Trainer(self.train, ctx).run(recipe, NoiseSource(ctx.seed))
        return generator.eval()

    def schedule(self, spec: StepSchedule | str | int) -> StepSchedule:
        """Resolve a schedule: a bare step count follows ``inference`` (``ffe`` → ``n*``) and ``reading``."""
        if isinstance(spec, StepSchedule):
            return spec
        text = str(spec).strip()
        if text.isdigit():
            make = StepSchedule.ffe if self.inference == "ffe" else StepSchedule.uniform
            return make(int(text), base=self.step_list, reading=self.reading, shift=self.timesteps.shift)
        return StepSchedule.from_spec(
            text, base=self.step_list, reading=self.reading, shift=self.timesteps.shift
        )

    def sample(
        self,
        world: World,
        generator: nn.Module,
        prompts: list[str],
        schedule: Any,
        seed: int,
        *,
        trace: bool = False,
    ) -> Samples:
        return sample_causal(
            world, generator, prompts, self.schedule(schedule), seed, trace=trace, renoise=self.renoise
        )
