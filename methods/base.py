"""The Method interface: ``distill`` a causal few-step generator, ``sample`` it with any schedule.

Every method (DMD, Self Forcing, ASD) distils from the same three things a world provides — a
bidirectional teacher (the real score), a causal initialisation of the student, and the world's
prompts — and returns a causal generator that the one shared sampler runs with any
:class:`~harness.diffusion.schedules.StepSchedule`. FFE is a schedule, not a method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import nn

from harness.diffusion.sampling import Samples
from harness.diffusion.schedules import StepSchedule
from harness.training.context import TrainContext
from harness.worlds.base import World


class Method(ABC):
    """A distillation method; its ``__init__`` arguments are its config (plugins in study files)."""

    name: str = "method"
    # False for a reference that samples the causal init as is: no distillation stage is built for it
    trains: ClassVar[bool] = True
    # Bumped when what a subclass computes for the same config changes (loss, training loop, sampling);
    # enters the hash of every run and distillation it is part of (the rule: harness/engine/versions.py).
    version: ClassVar[int] = 1

    @property
    def display_name(self) -> str:
        """What logs, progress lines, sample sidecars and result.json call this method's runs: its
        ``name``, unless a subclass knows better (ASD at α = 0 is step-unified DMD). The stage cache keeps
        ``name``, so renaming never re-keys a distillation."""
        return self.name

    @abstractmethod
    def distill(self, world: World, teacher: nn.Module, init: nn.Module, ctx: TrainContext) -> nn.Module:
        """Train a causal generator from ``init`` against ``teacher``; return it (EMA weights if any)."""

    def schedule(self, spec: StepSchedule | str | int) -> StepSchedule:
        """The schedule a spec means for this method; pipelines resolve every spec here, so a method's
        own sampling settings (FFE inference, step list, reading, shift) reach the sampler."""
        return spec if isinstance(spec, StepSchedule) else StepSchedule.from_spec(spec)

    def sample(self, world: World, generator: nn.Module, prompts: list[str], schedule: Any, seed: int,
               *, trace: bool = False) -> Samples:
        """Sample with the shared causal sampler; methods only override this to change inference."""
        from harness.diffusion.sampling import sample_causal

        return sample_causal(world, generator, prompts, schedule, seed, trace=trace)
