"""Evaluation while a distillation trains: is it converging, and is the fake score learning at all?

Every ``every`` generator updates (and before the first, and after the last) the trainer hands the
generator, and its EMA once there is one, to :class:`TrainingEval`, which samples a fixed set of
videos at each of ``schedules`` and scores them with the world's evaluator through the
:data:`Evaluate` callable the pipeline supplies. The hook draws its noise from its own seed, restores
torch's global random state afterwards and runs without gradients in eval mode, so a run trains the
very same weights with the hook on or off.

Scores are logged as ``eval/<raw|ema>/<schedule>/<metric>`` beside ``eval/updates`` (generator
updates so far) and ``eval/train_seconds`` (training wall time, the hook's own time excluded), so
learning curves can be drawn against either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from harness.errors import ConfigError, HarnessError

log = logging.getLogger(__name__)

class Evaluate(Protocol):
    """Scores of ``model`` sampled at ``spec`` on the caller's fixed set of ``num_videos`` videos."""

    def __call__(self, model: nn.Module, spec: str, *, num_videos: int, seed: int) -> Mapping[str, float]: ...


@dataclass
class EvalSettings:
    """When and what the training loop evaluates.

    Args:
        every: Generator updates between evaluations; 0 turns the hook off.
        schedules: Schedules each evaluation samples (bare counts follow the method's reading and FFE mode).
        num_videos: Videos per schedule; each train prompt's first videos, so the reported eval prompts
            are never what a recipe is chosen on.
        seed: Seed of the evaluation noise, the same at every evaluation (and apart from the study's).
        ema: Also evaluate the EMA generator once it exists.
    """

    every: int = 0
    schedules: list[str] = field(default_factory=lambda: ["1", "2"])
    num_videos: int = 32
    seed: int = 7919
    ema: bool = True

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ConfigError(f"train.eval.every must be >= 0 (0 turns it off), got {self.every}")
        if self.every and (self.num_videos < 1 or not self.schedules):
            raise ConfigError("train.eval needs num_videos >= 1 and at least one schedule when every > 0")

    def due(self, updates: int, last: bool) -> bool:
        """Whether an evaluation follows ``updates`` generator updates (0: before training)."""
        return self.every > 0 and (updates % self.every == 0 or last)


class TrainingEval:
    """Runs the evaluations of one distillation and keeps the training clock."""

    def __init__(self, settings: EvalSettings, evaluate: Evaluate | None, seconds: float = 0.0) -> None:
        self.settings, self.evaluate = settings, evaluate
        self.train_seconds = seconds  # training time so far, carried across resumes by the checkpoints
        self._since = time.perf_counter()

    @property
    def active(self) -> bool:
        return self.evaluate is not None and self.settings.every > 0

    def tick(self) -> float:
        """Add the time since the last tick to the training clock; return the clock."""
        now = time.perf_counter()
        self.train_seconds += now - self._since
        self._since = now
        return self.train_seconds

    def run(self, updates: int, models: Mapping[str, nn.Module]) -> dict[str, float]:
        """Score each model at each schedule; the caller's random state and modes are left as they were."""
        self.tick()
        row: dict[str, float] = {"eval/updates": float(updates), "eval/train_seconds": self.train_seconds}
        rng = torch.get_rng_state()
        try:
            with torch.no_grad():
                for name, model in models.items():
                    was_training = model.training
                    model.eval()
                    try:
                        for spec in self.settings.schedules:
                            row.update(self._scores(name, model, str(spec)))
                    finally:
                        model.train(was_training)
        finally:
            torch.set_rng_state(rng)
        self._since = time.perf_counter()  # the hook's own time is not training time
        return row

    def _scores(self, name: str, model: nn.Module, spec: str) -> dict[str, float]:
        """One model at one schedule. A set the evaluator cannot score (a dimension undefined on these
        few videos) is a warning: a diagnostic never stops the training it watches."""
        try:
            scores = self.evaluate(model, spec, num_videos=self.settings.num_videos, seed=self.settings.seed)
        except HarnessError as exc:
            log.warning("evaluation while training skipped for %s at %s steps: %s (raise train.eval.num_videos?)",
                        name, spec, exc)
            return {}
        return {f"eval/{name}/{spec}/{k}": float(v) for k, v in scores.items() if isinstance(v, (int, float))}
