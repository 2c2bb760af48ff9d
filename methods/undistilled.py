"""``causal_init``: the student before distillation, sampled with the students' schedules.

A reference row, not a method anyone would ship: every distilled row of a table is read against it
at the same schedule (did distillation help at all?), as the teacher's own few-step rows frame what
distillation must beat. Nothing trains, so no stage is built for it.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from torch import nn

from harness.diffusion.conventions import DEFAULT_SHIFT, DEFAULT_STEP_LIST
from harness.diffusion.sampling import sample_causal
from harness.diffusion.schedules import STEP_READINGS, StepSchedule
from harness.errors import ConfigError
from harness.worlds.base import World
from methods.base import Method, Samples, TrainContext


class Undistilled(Method):
    """The causal init as the generator, read with the same step list, reading, shift and re-noising as
    the distilled students (:class:`~methods.distill.DistillationMethod`'s defaults)."""

    name = "causal_init"
    trains: ClassVar[bool] = False

    def __init__(self, step_list: tuple[float, ...] = DEFAULT_STEP_LIST, reading: str = "prefix",
                 shift: float = DEFAULT_SHIFT, renoise: str = "sde") -> None:
        if reading not in STEP_READINGS:
            raise ConfigError(f"reading '{reading}' is unknown; choose one of {sorted(STEP_READINGS)}")
        self.step_list, self.reading, self.shift, self.renoise = tuple(float(s) for s in step_list), reading, shift, renoise
        StepSchedule(self.step_list)  # validates the list with a clear error

    def distill(self, world: World, teacher: nn.Module, init: nn.Module, ctx: TrainContext) -> nn.Module:
        return copy.deepcopy(init).eval()

    def schedule(self, spec: StepSchedule | str | int) -> StepSchedule:
        if isinstance(spec, StepSchedule):
            return spec
        return StepSchedule.from_spec(spec, base=self.step_list, reading=self.reading, shift=self.shift)

    def sample(self, world: World, generator: nn.Module, prompts: list[str], schedule: Any, seed: Any,
               *, trace: bool = False) -> Samples:
        return sample_causal(world, generator, prompts, self.schedule(schedule), seed, trace=trace,
                             renoise=self.renoise)
