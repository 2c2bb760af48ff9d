"""One model trained on a loss of its own: the teacher, the diffusion-forcing model and the causal init.

The caller gives the loss of step ``k`` (it owns its data and random streams) and its recipe's
optimisation fields; :func:`fit` runs them through the one training loop (:class:`Trainer`) as a recipe
without a critic, in this process alone, keeping no checkpoints: fused AdamW, linear warm-up then cosine
decay to ``min_lr_ratio``, the clipped gradient step, the divergence check, and an EMA with a warmed-up
decay averaged from the weights before training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from harness.diffusion.sampling import NoiseSource
from harness.parallel.data_parallel import SingleProcess
from harness.training.context import TrainContext
from harness.training.trainer import LoopOptions, StepOutput, Trainer, TrainSettings

Progress = Callable[[int, int], None]


class Optimisation(Protocol):
    """The fields of a recipe the loop reads (FlowRecipe, CausalInitRecipe's optimisation view)."""

    steps: int
    lr: float
    warmup: int
    min_lr_ratio: float
    weight_decay: float
    betas: tuple[float, float]
    grad_clip: float
    ema_decay: float


def lr_factor(step: int, settings: Optimisation) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < settings.warmup:
        return (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class FitResult:
    """The averaged model and how training went."""

    model: nn.Module
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return {"first_loss": self.losses[0], "final_loss": float(sum(tail) / len(tail))}


class _OneModel:
    """A recipe without a critic: the generator is the model, its step the caller's loss."""

    critic = None

    def __init__(self, model: nn.Module, step_loss: Callable[[int], torch.Tensor]) -> None:
        self.generator, self.step_loss = model, step_loss

    def generator_step(self, step: int, noise: NoiseSource) -> StepOutput:
        return StepOutput(self.step_loss(step))


def fit(model: nn.Module, trained: Sequence[nn.Parameter], step_loss: Callable[[int], torch.Tensor],
        settings: Optimisation, *, what: str, progress: Progress | None = None) -> FitResult:
    """Train ``model`` for ``settings.steps`` steps on ``step_loss(step)``; return its EMA in eval mode.

    ``trained`` are the parameters that learn (the others have ``requires_grad`` off, e.g. a frozen
    prompt encoder). A non-finite loss raises :class:`~harness.errors.TrainingDiverged` naming ``what``.
    """
    if {id(p) for p in trained} != {id(p) for p in model.parameters() if p.requires_grad}:
        raise ValueError("fit: `trained` must be exactly the model's parameters that require grad")
    losses: list[float] = []
    loop = TrainSettings(steps=settings.steps, lr_generator=settings.lr, betas=tuple(settings.betas),
                         weight_decay=settings.weight_decay, max_grad_norm=settings.grad_clip,
                         ema_decay=settings.ema_decay, ema_start_step=0)
    ctx = TrainContext(workdir=None, seed=0, log=lambda row, step: losses.append(row["generator/loss"]),
                       progress=lambda **kw: progress(kw["step"], kw["total"]) if progress and "step" in kw else None)
    options = LoopOptions(lr_schedule=lambda k: lr_factor(k, settings), fused=True, clip_foreach=True,
                          ema_warmup=True, ranks=SingleProcess(), loss_name=what)
    started = time.perf_counter()
    model.train()
    averaged = Trainer(loop, ctx, options).run(_OneModel(model, step_loss), NoiseSource(0))
    return FitResult(averaged.requires_grad_(False).eval(), losses, time.perf_counter() - started)
