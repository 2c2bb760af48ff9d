"""Step schedules: which timesteps each chunk is denoised at, and what that costs in forwards.

A schedule is orthogonal to the method: the same distilled generator is sampled with ``1``, ``2``, ``4``
steps or with First-Frame Enhancement ``1*`` / ``2*`` (the first chunk with the full 4-step list, later
chunks with n). Step lists are written un-shifted, as in the Self Forcing configs, and warped with the
time shift when read (``timesteps_for_chunk``).

Two readings of "n steps" exist and the paper does not say which it uses
(docs/references.md#the-asd-paper):

* ``prefix``: the first n entries of the list, ``2 → [1000, 750]`` (exit early; nested, so the
  (n+1)-step rollout of ASD extends the n-step one);
* ``skip``: an evenly strided subset, ``2 → [1000, 500]``, entry ``k·len(list)//n`` for k < n.

Spec strings for YAML: ``"2"``, ``"1*"``, ``"[1000,500]"``, ``"[1000,500]*"``; the reading of a bare
number comes from the ``reading`` argument.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.diffusion.conventions import (
    DEFAULT_SHIFT,
    DEFAULT_STEP_LIST,
    NUM_TRAIN_TIMESTEPS,
    warp_timesteps,
)
from harness.errors import ConfigError


def _prefix(base: Sequence[float], n: int) -> tuple[float, ...]:
    return tuple(base[:n])


def _skip(base: Sequence[float], n: int) -> tuple[float, ...]:
    return tuple(base[k * len(base) // n] for k in range(n))


STEP_READINGS: dict[str, Callable[[Sequence[float], int], tuple[float, ...]]] = {
    "prefix": _prefix,
    "skip": _skip,
}


def select_steps(base: Sequence[float], n: int, reading: str = "prefix") -> tuple[float, ...]:
    """The n-step list taken from ``base`` under the named reading."""
    if reading not in STEP_READINGS:
        raise ConfigError(f"step reading '{reading}' is unknown; choose one of {sorted(STEP_READINGS)}")
    if not 1 <= n <= len(base):
        raise ConfigError(f"steps must be between 1 and {len(base)} (the length of the step list), got {n}")
    return STEP_READINGS[reading](base, n)


def _check_step_list(steps: Sequence[float], what: str) -> tuple[float, ...]:
    steps = tuple(float(s) for s in steps)
    if not steps:
        raise ConfigError(f"{what} is empty")
    if any(not 0.0 < s <= NUM_TRAIN_TIMESTEPS for s in steps):
        raise ConfigError(f"{what} {list(steps)} has a step outside (0, {NUM_TRAIN_TIMESTEPS:g}]")
    if any(b >= a for a, b in itertools.pairwise(steps)):
        raise ConfigError(f"{what} {list(steps)} must be strictly decreasing")
    return steps


def _format_steps(steps: Sequence[float]) -> str:
    return "[" + ",".join(f"{s:g}" for s in steps) + "]"


@dataclass(frozen=True)
class StepSchedule:
    """Un-shifted step lists per chunk: ``first_steps`` for chunk 0 (FFE) and ``steps`` for the rest.

    ``first_steps is None`` means every chunk uses ``steps`` (a uniform schedule).
    """

    steps: tuple[float, ...]
    first_steps: tuple[float, ...] | None = None
    shift: float = DEFAULT_SHIFT
    spec: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _check_step_list(self.steps, "step list"))
        if self.first_steps is not None:
            object.__setattr__(
                self, "first_steps", _check_step_list(self.first_steps, "first-chunk step list")
            )
        if not self.spec:
            object.__setattr__(self, "spec", _format_steps(self.steps) + ("*" if self.is_ffe else ""))

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def uniform(
        cls,
        n: int,
        *,
        base: Sequence[float] = DEFAULT_STEP_LIST,
        reading: str = "prefix",
        shift: float = DEFAULT_SHIFT,
    ) -> StepSchedule:
        """n steps for every chunk, taken from ``base`` under ``reading``."""
        spec = str(n) if reading == "prefix" else _format_steps(select_steps(base, n, reading))
        return cls(select_steps(base, n, reading), None, shift, spec)

    @classmethod
    def ffe(
        cls,
        n: int,
        *,
        base: Sequence[float] = DEFAULT_STEP_LIST,
        reading: str = "prefix",
        shift: float = DEFAULT_SHIFT,
    ) -> StepSchedule:
        """First-Frame Enhancement ``n*``: chunk 0 with the whole ``base`` list, later chunks with n."""
        spec = f"{n}*" if reading == "prefix" else _format_steps(select_steps(base, n, reading)) + "*"
        return cls(select_steps(base, n, reading), tuple(base), shift, spec)

    @classmethod
    def from_spec(
        cls,
        spec: str | int,
        *,
        base: Sequence[float] = DEFAULT_STEP_LIST,
        reading: str = "prefix",
        shift: float = DEFAULT_SHIFT,
    ) -> StepSchedule:
        """Parse ``"2"``, ``"1*"``, ``"[1000,500]"`` or ``"[1000,500]*"`` (a trailing ``*`` means FFE)."""
        text = str(spec).replace(" ", "")
        ffe = text.endswith("*")
        body = text[:-1] if ffe else text
        if re.fullmatch(r"\d+", body):
            make = cls.ffe if ffe else cls.uniform
            return make(int(body), base=base, reading=reading, shift=shift)
        if re.fullmatch(r"\[\d+(\.\d+)?(,\d+(\.\d+)?)*\]", body):
            steps = tuple(float(s) for s in body[1:-1].split(","))
            return cls(steps, tuple(base) if ffe else None, shift, text)
        raise ConfigError(
            f"schedule '{spec}' is not a step count ('2'), FFE ('1*') or a step list ('[1000,500]')"
        )

    # -- reading ----------------------------------------------------------------------------------

    @property
    def is_ffe(self) -> bool:
        return self.first_steps is not None

    @property
    def num_steps(self) -> int:
        """Steps of the later (or every) chunk: the n of ``n`` / ``n*``."""
        return len(self.steps)

    @property
    def label(self) -> str:
        """How reports print it: ``"1"``, ``"2"``, ``"1*"``, ``"2*"``."""
        return f"{self.num_steps}{'*' if self.is_ffe else ''}"

    def raw_steps_for_chunk(self, chunk: int) -> tuple[float, ...]:
        """Un-shifted step list of chunk ``chunk`` (0-based)."""
        if chunk < 0:
            raise ValueError(f"chunk index must be >= 0, got {chunk}")
        return self.first_steps if (chunk == 0 and self.first_steps is not None) else self.steps

    def timesteps_for_chunk(self, chunk: int) -> list[float]:
        """Warped network timesteps (``t = 1000·σ'``) chunk ``chunk`` is denoised at, in order."""
        return warp_timesteps(self.raw_steps_for_chunk(chunk), self.shift)

    def steps_for_chunk(self, chunk: int) -> int:
        return len(self.raw_steps_for_chunk(chunk))

    def nfe(self, num_chunks: int) -> int:
        """Network forwards for a video: Σ over chunks of (steps + 1 cache pass at t = 0)."""
        return sum(self.steps_for_chunk(i) + 1 for i in range(num_chunks))

    def __str__(self) -> str:
        return self.spec
