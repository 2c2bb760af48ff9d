"""The training loop every distillation method shares (Self Forcing's ``trainer/distillation.py`` recipe).

One *step* is one critic update; the generator is updated on steps where ``step %
critic_updates_per_generator == 0`` (Self Forcing: 5, so its "600 iterations" are 120 generator
updates). Both optimisers are AdamW with betas (0, 0.999); gradients are clipped; an EMA of the
generator starts at ``ema_start_step`` and is what ``run`` returns. Every ``checkpoint_every`` steps
the whole state — weights, optimisers, EMA, the noise generator's state and the step — goes to
``ctx.workdir/checkpoints``, and a new run in the same folder resumes from the newest one exactly
(the same losses as an uninterrupted run). A NaN/Inf loss term or gradient norm raises
:class:`TrainingDiverged` naming the step and the term.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from harness.checkpoints import CheckpointStore
from harness.errors import CheckpointError, ConfigError, TrainingDiverged
from harness.sampling import NoiseSource
from methods.base import TrainContext


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation of a distillation: Self Forcing's ratios, with learning rates scaled for sprites.

    Self Forcing (research/reference_code.md §1.3): AdamW betas (0, 0.999), weight decay 0.01, clip 10,
    ``lr_critic = lr_generator / 5`` (2e-6 / 4e-7 there), ratio 5, EMA 0.99 from step 200 of 600.
    The absolute learning rates and step counts here are assumptions sized for the CPU sprites world.
    """

    steps: int = 300
    batch_size: int = 4
    lr_generator: float = 1e-4
    lr_critic: float = 2e-5
    betas: tuple[float, float] = (0.0, 0.999)
    weight_decay: float = 0.01
    max_grad_norm: float = 10.0
    critic_updates_per_generator: int = 5
    ema_decay: float = 0.99
    ema_start_step: int = 100
    checkpoint_every: int = 50
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "critic_updates_per_generator", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_generator <= 0 or self.lr_critic <= 0 or self.max_grad_norm <= 0:
            raise ConfigError("train.lr_generator, train.lr_critic and train.max_grad_norm must be > 0")


DEFAULT_TRAIN = TrainSettings()


@dataclass
class StepOutput:
    """What one generator or critic step computed: the loss to minimise, its named terms, extra numbers."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class TrainingRecipe(Protocol):
    """What a method hands the loop: the two trainable parts and one step of each."""

    generator: nn.Module
    critic: nn.Module  # everything the critic optimiser updates (fake score, discriminator head)

    def generator_step(self, step: int, noise: NoiseSource) -> StepOutput: ...

    def critic_step(self, step: int, noise: NoiseSource) -> StepOutput: ...


class EMA:
    """Exponential moving average of a model's floating-point state, created at ``start_step``."""

    def __init__(self, decay: float, start_step: int) -> None:
        self.decay, self.start_step = decay, start_step
        self.shadow: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if step < self.start_step:
            return
        state = model.state_dict()
        if not self.shadow:
            self.shadow = {k: v.detach().clone() for k, v in state.items()}
            return
        for key, value in state.items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value, 1.0 - self.decay)
            else:
                self.shadow[key].copy_(value)

    def averaged(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` carrying the EMA weights (the model itself when no EMA exists yet)."""
        if not self.shadow:
            return model
        twin = copy.deepcopy(model)
        twin.load_state_dict(self.shadow)
        return twin


def _set_trainable(module: nn.Module, flag: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(flag)


class Trainer:
    """Runs a :class:`TrainingRecipe` for ``settings.steps`` steps with checkpoints, resume and logging."""

    def __init__(self, settings: TrainSettings, ctx: TrainContext) -> None:
        self.settings, self.ctx = settings, ctx
        self.store = CheckpointStore(ctx.workdir / "checkpoints", keep=settings.keep_checkpoints)

    def _optimiser(self, module: nn.Module, lr: float) -> torch.optim.AdamW:
        s = self.settings
        return torch.optim.AdamW(
            module.parameters(), lr=lr, betas=tuple(s.betas), weight_decay=s.weight_decay
        )

    def run(self, recipe: TrainingRecipe, noise: NoiseSource) -> nn.Module:
        """Train (resuming from the newest checkpoint if any); return the EMA generator (or the generator)."""
        s = self.settings
        self.opt_g = self._optimiser(recipe.generator, s.lr_generator)
        self.opt_c = self._optimiser(recipe.critic, s.lr_critic)
        self.ema = EMA(s.ema_decay, s.ema_start_step)
        step = self._resume(recipe, noise)
        while step < s.steps:
            row: dict[str, float] = {}
            if step % s.critic_updates_per_generator == 0:
                g_step = recipe.generator_step
                row.update(
                    self._update(
                        "generator", g_step, recipe.generator, recipe.critic, self.opt_g, step, noise
                    )
                )
                self.ema.update(recipe.generator, step)
            c_step = recipe.critic_step
            row.update(
                self._update("critic", c_step, recipe.critic, recipe.generator, self.opt_c, step, noise)
            )
            self.ctx.log(row, step)
            step += 1
            self.ctx.progress(stage="distill", step=step, total=s.steps)
            if step % s.checkpoint_every == 0 or step == s.steps:
                self._save(recipe, noise, step)
        return self.ema.averaged(recipe.generator)

    def _update(
        self,
        role: str,
        compute: Callable[[int, NoiseSource], StepOutput],
        trained: nn.Module,
        frozen: nn.Module,
        optimiser: torch.optim.Optimizer,
        step: int,
        noise: NoiseSource,
    ) -> dict[str, float]:
        """One optimiser step of ``role``; the other part is frozen so no gradient is spent on it."""
        _set_trainable(frozen, False)
        try:
            optimiser.zero_grad(set_to_none=True)
            out = compute(step, noise)
            row = {f"{role}/loss": _finite(out.loss, f"{role} loss", step)}
            row.update({f"{role}/{name}": _finite(term, name, step) for name, term in out.terms.items()})
            out.loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(trained.parameters(), self.settings.max_grad_norm)
            row[f"{role}/grad_norm"] = _finite(norm, f"{role} gradient norm", step)
            optimiser.step()
        finally:
            _set_trainable(frozen, True)
        row.update({f"{role}/{k}": float(v) for k, v in out.metrics.items()})
        return row

    # -- checkpoints ------------------------------------------------------------------------------

    def _save(self, recipe: TrainingRecipe, noise: NoiseSource, step: int) -> None:
        self.store.save(
            step,
            {
                "generator": recipe.generator.state_dict(),
                "critic": recipe.critic.state_dict(),
                "opt_generator": self.opt_g.state_dict(),
                "opt_critic": self.opt_c.state_dict(),
                "ema": self.ema.shadow,
                "noise_rng": noise.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
        )

    def _resume(self, recipe: TrainingRecipe, noise: NoiseSource) -> int:
        latest = self.store.latest()
        if latest is None:
            return 0
        step, state = latest
        try:
            recipe.generator.load_state_dict(state["generator"])
            recipe.critic.load_state_dict(state["critic"])
            self.opt_g.load_state_dict(state["opt_generator"])
            self.opt_c.load_state_dict(state["opt_critic"])
        except (KeyError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"{self.store.path(step).name} does not match this method's models: {first}"
            ) from None
        self.ema.shadow = dict(state["ema"])
        noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        return step


def _finite(value: torch.Tensor, term: str, step: int) -> float:
    number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(number):
        raise TrainingDiverged(f"training diverged at step {step}: {term} is {number}")
    return number
