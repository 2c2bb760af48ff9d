"""The training loop every distillation method shares (Self Forcing's ``trainer/distillation.py`` recipe).

One *step* is one critic update; the generator is updated on steps where ``step %
critic_updates_per_generator == 0`` (Self Forcing: 5, so its "600 iterations" are 120 generator
updates). Both optimisers are AdamW with betas (0, 0.999); gradients are clipped; an EMA of the
generator starts at ``ema_start_step`` and is what ``run`` returns. Every ``checkpoint_every`` steps
the whole state — weights, optimisers, EMA, the noise generator's state and the step — goes to
``ctx.workdir/checkpoints``, and a new run in the same folder resumes from the newest one exactly
(the same losses as an uninterrupted run). A NaN/Inf loss term or gradient norm raises
:class:`TrainingDiverged` naming the step and the term.

Under torchrun the same loop is data parallel (:mod:`harness.parallel.data_parallel`, whose docstring says why
gradients are all-reduced rather than the models wrapped in DDP): each rank draws the global batch's
noise and keeps its shard, gradients are averaged before clipping, so every rank holds the same weights
after every step; logged values are means over ranks. Rank 0 alone logs, reports progress and writes
checkpoints; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from harness.diffusion.sampling import NoiseSource
from harness.engine.checkpoints import CheckpointStore
from harness.errors import CheckpointError, ConfigError, TrainingDiverged
from harness.parallel import ranks
from harness.parallel.data_parallel import Ranks
from harness.parallel.fsdp import gather_state, load_optimizer_state, scatter_state
from harness.parallel.strategies import STRATEGIES, training_ranks
from harness.training.context import TrainContext
from harness.training.ema import EMA
from harness.training.evaluation import EvalSettings, TrainingEval


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation of a distillation: Self Forcing's ratios, with learning rates scaled for sprites.

    Self Forcing (docs/references.md#self-forcings-training-recipe): AdamW betas (0, 0.999), weight decay 0.01, clip 10,
    ``lr_critic = lr_generator / 5`` (2e-6 / 4e-7 there), ratio 5, EMA 0.99 from step 200 of 600.
    The absolute learning rates and step counts here are assumptions sized for the CPU sprites world.
    ``batch_size`` is the global batch: under torchrun each rank trains on its equal share of it.
    ``parallel`` is how ranks share the models under torchrun: ``ddp`` (a full copy each, gradients
    averaged) or ``fsdp`` (FSDP2 shards per block, :mod:`harness.parallel.fsdp`: for models that do not fit
    replicated); one process ignores it.
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
    parallel: str = "ddp"
    eval: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "critic_updates_per_generator", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_generator <= 0 or self.lr_critic <= 0 or self.max_grad_norm <= 0:
            raise ConfigError("train.lr_generator, train.lr_critic and train.max_grad_norm must be > 0")
        if self.parallel not in STRATEGIES:
            raise ConfigError(
                f"train.parallel '{self.parallel}' is unknown; choose one of {sorted(STRATEGIES)}"
            )


DEFAULT_TRAIN = TrainSettings()


@dataclass
class StepOutput:
    """What one generator or critic step computed: the loss to minimise, its named terms, extra numbers."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class TrainingRecipe(Protocol):
    """What a method hands the loop: the generator, an optional critic, and one step of each.

    ``critic`` is everything the critic optimiser updates (fake score, discriminator head); a method
    without one (``critic = None``, no ``critic_step``) gets no critic optimiser, and its generator is
    updated on every step."""

    generator: nn.Module
    critic: nn.Module | None
    # optional ``critic_param_groups() -> list[dict]``: the critic optimiser's parameter groups (ASD gives
    # its discriminator head its own lr and betas); without it one group holds ``critic.parameters()``

    def generator_step(self, step: int, noise: NoiseSource) -> StepOutput: ...

    def critic_step(self, step: int, noise: NoiseSource) -> StepOutput: ...


def _hold(module: nn.Module) -> set[str]:
    """Stop gradients into ``module`` for one update; returns the names of the parameters to release
    afterwards (the trainable ones: a part its world keeps frozen, e.g. a prompt encoder, stays frozen)."""
    held = {name for name, param in module.named_parameters() if param.requires_grad}
    _set_trainable(module, held, False)
    return held


def _set_trainable(module: nn.Module, names: set[str], flag: bool) -> None:
    # by name, not by tensor: between hold and release FSDP may register other tensors (its unsharded
    # views) under the same names, and those are what the next forward uses
    for name, param in module.named_parameters():
        if name in names:
            param.requires_grad_(flag)


@dataclass(frozen=True)
class LoopOptions:
    """How the loop runs beyond the settings a study writes (none enters a run's hash): what a world's
    one-model training (:func:`harness.training.fit.fit`) sets and a distillation leaves at the defaults."""

    lr_schedule: Callable[[int], float] | None = None  # factor of the generator's lr after k updates
    fused: bool = False  # fused AdamW (one kernel for all parameters)
    clip_foreach: bool | None = None  # clip_grad_norm_'s multi-tensor path (None: torch's choice)
    ema_warmup: bool = False  # EMA with a warmed-up decay, averaged from the weights before training
    ranks: Ranks | None = None  # default: ``settings.parallel`` under torchrun, else one process
    loss_name: str = "generator loss"  # how a divergence names the generator's loss


class Trainer:
    """Runs a :class:`TrainingRecipe` for ``settings.steps`` steps with checkpoints, resume and logging.

    The one training loop: distillation methods (a generator and a critic), and with a recipe
    without a critic and no workdir (no checkpoints) the teacher, diffusion forcing and the causal init.
    """

    def __init__(self, settings: TrainSettings, ctx: TrainContext, options: LoopOptions = LoopOptions()) -> None:
        self.settings, self.ctx, self.options = settings, ctx, options
        self.store = (CheckpointStore(ctx.workdir / "checkpoints", keep=settings.keep_checkpoints)
                      if ctx.workdir is not None else None)
        self.ranks: Ranks = options.ranks or training_ranks(settings.parallel)

    def _optimiser(self, module: nn.Module, lr: float) -> torch.optim.AdamW:
        s = self.settings
        return torch.optim.AdamW(
            module.parameters(), lr=lr, betas=tuple(s.betas), weight_decay=s.weight_decay,
            **({"fused": True} if self.options.fused else {}),
        )

    def _critic_optimiser(self, recipe: TrainingRecipe) -> torch.optim.AdamW:
        """One group, or the recipe's groups; what a group leaves out comes from the train settings."""
        groups = getattr(recipe, "critic_param_groups", None)
        if groups is None:
            return self._optimiser(recipe.critic, self.settings.lr_critic)
        s = self.settings
        return torch.optim.AdamW(groups(), lr=s.lr_critic, betas=tuple(s.betas), weight_decay=s.weight_decay)

    def run(self, recipe: TrainingRecipe, noise: NoiseSource) -> nn.Module:
        """Train (resuming from the newest checkpoint if any); return the EMA generator (or the generator)."""
        s = self.settings
        self.ranks.prepare(recipe)  # FSDP shards the models here, before the optimisers see them
        self.opt_g = self._optimiser(recipe.generator, s.lr_generator)
        schedule = self.options.lr_schedule
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.opt_g, schedule) if schedule else None
        critic = getattr(recipe, "critic", None)
        self.opt_c = self._critic_optimiser(recipe) if critic is not None else None
        self.ema = EMA(s.ema_decay, s.ema_start_step, warmup=self.options.ema_warmup)
        if self.options.ema_warmup:
            self.ema.track(recipe.generator)
        self.hook = TrainingEval(s.eval, self._evaluator())
        step = self._resume(recipe, noise)
        self.ranks.sync_weights(*(m for m in (recipe.generator, critic) if m is not None))
        noise = self.ranks.shard_noise(noise, s.batch_size)  # the same generator, this rank's rows
        ratio = s.critic_updates_per_generator if critic is not None else 1
        if step == 0 and self.ranks.writer and (before := self._evaluate(recipe, 0)):
            self.ctx.log(before, 0)  # its own row: with eval.every 1 the first update's scores share step 0
        row: dict[str, float] = {}
        while step < s.steps:
            if step % ratio == 0:
                g_step = recipe.generator_step
                row.update(
                    self._update(
                        "generator", g_step, recipe.generator, critic, self.opt_g, step, noise
                    )
                )
                if self.lr_schedule is not None:
                    self.lr_schedule.step()
                self.ema.update(recipe.generator, step)
                updates = step // ratio + 1
                if s.eval.due(updates, last=step + ratio >= s.steps):
                    row.update(self._evaluate(recipe, updates))
            if critic is not None:
                c_step = recipe.critic_step
                row.update(self._update("critic", c_step, critic, recipe.generator, self.opt_c, step, noise))
            if self.ranks.writer:  # rank 0 alone logs, reports and writes checkpoints
                self.ctx.log(row, step)
            row = {}
            step += 1
            if self.ranks.writer:
                self.ctx.progress(stage="distill", step=step, total=s.steps)
            if self.store is not None and (step % s.checkpoint_every == 0 or step == s.steps):
                self._save(recipe, noise, step)
        # full tensors: a collective under FSDP, where export also gathers the writer's plain copy
        shadow = gather_state(self.ema.shadow, keep=self.ranks.writer)
        return self.ema.averaged(self.ranks.export(recipe.generator), shadow or {})

    def _evaluator(self):
        """The pipeline's evaluation on the writer; none where the generator is sharded across ranks
        (sampling would need every rank) or the caller offers none."""
        fsdp = self.settings.parallel == "fsdp" and ranks.is_distributed()
        return self.ctx.evaluate if self.ranks.writer and not fsdp else None

    def _evaluate(self, recipe: TrainingRecipe, updates: int) -> dict[str, float]:
        """Scores of the generator (and its EMA) after ``updates`` generator updates, when the hook is on."""
        if not self.hook.active:
            return {}
        self.ctx.progress(stage=f"evaluate after {updates} updates")
        models = {"raw": recipe.generator}
        if self.settings.eval.ema and self.ema.shadow:
            models["ema"] = self.ema.averaged(recipe.generator)
        return self.hook.run(updates, models)

    def _update(
        self,
        role: str,
        compute: Callable[[int, NoiseSource], StepOutput],
        trained: nn.Module,
        frozen: nn.Module | None,
        optimiser: torch.optim.Optimizer,
        step: int,
        noise: NoiseSource,
    ) -> dict[str, float]:
        """One optimiser step of ``role``; the other part is frozen so no gradient is spent on it.

        Loss terms are averaged over ranks before they are checked, so every rank raises together.
        """
        held = _hold(frozen) if frozen is not None else set()
        try:
            optimiser.zero_grad(set_to_none=True)
            out = compute(step, noise)
            terms = {f"{role}/loss": (out.loss, self.options.loss_name if role == "generator" else f"{role} loss")}
            terms.update({f"{role}/{name}": (term, name) for name, term in out.terms.items()})
            means = self.ranks.mean({key: _number(value) for key, (value, _) in terms.items()})
            row = {key: _finite(means[key], name, step) for key, (_, name) in terms.items()}
            out.loss.backward()
            self.ranks.average_gradients(trained)
            norm = torch.nn.utils.clip_grad_norm_(trained.parameters(), self.settings.max_grad_norm,
                                                  foreach=self.options.clip_foreach)
            row[f"{role}/grad_norm"] = _finite(norm, f"{role} gradient norm", step)
            optimiser.step()
        finally:
            if frozen is not None:
                _set_trainable(frozen, held, True)
        metrics = self.ranks.mean({k: float(v) for k, v in out.metrics.items()})
        row.update({f"{role}/{k}": v for k, v in metrics.items()})
        return row

    # -- checkpoints ------------------------------------------------------------------------------

    def _save(self, recipe: TrainingRecipe, noise: NoiseSource, step: int) -> None:
        """Every rank gathers sharded state into full tensors (a collective under FSDP, a no-op
        otherwise: checkpoints have the single-process format); the writer alone writes."""
        models = {"generator": recipe.generator.state_dict(), "opt_generator": self.opt_g.state_dict(),
                  "ema": self.ema.shadow}
        if self.lr_schedule is not None:
            models["lr_schedule"] = self.lr_schedule.state_dict()
        if self.opt_c is not None:
            models.update(critic=recipe.critic.state_dict(), opt_critic=self.opt_c.state_dict())
        full = gather_state(models, keep=self.ranks.writer)
        if self.ranks.writer:
            rng = {"noise_rng": noise.get_state(), "torch_rng": torch.get_rng_state()}
            self.store.save(step, {**full, **rng, "train_seconds": self.hook.tick()})
        # the file is on disk before any rank goes on: a rank that finishes first and starts another run
        # in this folder must not resume from an older step than the writer does
        ranks.barrier()

    def _resume(self, recipe: TrainingRecipe, noise: NoiseSource) -> int:
        """Every rank resumes from the step the writer found; ranks that chose on their own could
        pick different steps (a file being written or pruned) and then wait forever in a collective.
        The writer takes the newest checkpoint that loads, setting corrupt ones aside."""
        if self.store is None:  # a loop without a workdir keeps no checkpoints
            return 0
        found = self.store.latest() if self.ranks.writer else None
        step = ranks.broadcast_object(found[0] if found is not None else 0)
        if step == 0:
            return 0
        state = found[1] if found is not None else self.store.load(step)
        try:
            recipe.generator.load_state_dict(scatter_state(recipe.generator, state["generator"]))
            load_optimizer_state(self.opt_g, state["opt_generator"])
            if self.lr_schedule is not None:
                self.lr_schedule.load_state_dict(state["lr_schedule"])
            if self.opt_c is not None:
                recipe.critic.load_state_dict(scatter_state(recipe.critic, state["critic"]))
                load_optimizer_state(self.opt_c, state["opt_critic"])
            ema = state["ema"]
            self.ema.shadow = scatter_state(recipe.generator, ema) if ema else {}
        except (KeyError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"{self.store.path(step).name} does not match this method's models: {first}"
            ) from None
        noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "train_seconds" in state:  # older checkpoints carry no clock
            self.hook.train_seconds = float(state["train_seconds"])
        return step


def _number(value: torch.Tensor | float) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _finite(value: torch.Tensor | float, term: str, step: int) -> float:
    number = _number(value)
    if not math.isfinite(number):
        raise TrainingDiverged(f"training diverged at step {step}: {term} is {number}")
    return number
