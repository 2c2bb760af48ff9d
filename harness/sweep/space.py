"""The search space: named ranges and choices over keys of the pipeline's ``init_args``.

A key is a dotted path, as in grid overrides (``method.init_args.alpha``). Each entry is one of::

    method.init_args.alpha: {low: 0.01, high: 1.0, log: true}      # float (low/high are floats)
    method.init_args.train.critic_updates_per_generator: {low: 1, high: 8}   # int (both ints)
    schedule: {choices: ["1", "1*"]}                                 # categorical
    lr: {type: float, low: 1, high: 10, step: 0.5}                   # explicit type wins
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from harness.errors import ConfigError

KINDS = ("float", "int", "categorical")
_ALLOWED = {"float": {"type", "low", "high", "log", "step"}, "int": {"type", "low", "high", "log", "step"},
            "categorical": {"type", "choices"}}


@dataclass(frozen=True)
class Param:
    """One searched key."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and int(value) != value:
            return False
        return self.low <= value <= self.high

    def extremes(self) -> list[Any]:
        """Values that exercise the whole range when checking that a key is accepted."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


def _kind(name: str, entry: Mapping[str, Any], where: str) -> str:
    if "type" in entry:
        if entry["type"] not in KINDS:
            raise ConfigError(f"{where}.type: must be one of {', '.join(KINDS)}, got {entry['type']!r}")
        return entry["type"]
    if "choices" in entry:
        return "categorical"
    if "low" not in entry or "high" not in entry:
        raise ConfigError(f"{where}: give low and high (a numeric range) or choices (a list)")
    ints = all(isinstance(entry[k], int) and not isinstance(entry[k], bool) for k in ("low", "high"))
    return "int" if ints and not isinstance(entry.get("step"), float) else "float"


def parse_param(name: str, entry: Any, where: str) -> Param:
    """One entry of ``sweep.space`` → a :class:`Param`, or a one-line error naming the bad field."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be a mapping like {{low: 0.1, high: 1.0}} or {{choices: [...]}}")
    kind = _kind(name, entry, where)
    unknown = sorted(set(entry) - _ALLOWED[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown field '{unknown[0]}' for a {kind} parameter "
                          f"(accepted: {', '.join(sorted(_ALLOWED[kind]))})")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: must be a non-empty list")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise ConfigError(f"{where}.choices: Optuna stores only None, bool, int, float or str, got {c!r}")
        return Param(name, kind, choices=tuple(choices))
    for field in ("low", "high"):
        value = entry.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}.{field}: must be a finite number, got {value!r}")
    low, high, log, step = entry["low"], entry["high"], bool(entry.get("log", False)), entry.get("step")
    if low > high:
        raise ConfigError(f"{where}: inverted range, low {low} is above high {high}")
    if log and low <= 0:
        raise ConfigError(f"{where}.low: a log range must start above 0, got {low}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"{where}.step: must be a positive number, got {step!r}")
    if log and step is not None and not (kind == "int" and step == 1):
        raise ConfigError(f"{where}: log and step cannot be combined")
    if kind == "int":
        if int(low) != low or int(high) != high:
            raise ConfigError(f"{where}: an int range needs whole-number low and high")
        return Param(name, kind, int(low), int(high), log, int(step) if step is not None else None)
    return Param(name, kind, float(low), float(high), log, float(step) if step is not None else None)


def parse_space(raw: Any, source: str) -> list[Param]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{source}: key 'sweep.space' must map at least one init_args key to a range or choices")
    return [parse_param(str(name), entry, f"{source}: key 'sweep.space.{name}'") for name, entry in raw.items()]


def space_signature(params: list[Param], objectives: Mapping[str, str]) -> str:
    """Canonical JSON of the space and objectives: a stored study must match it to be joined."""
    body = {"space": [asdict(p) | {"choices": list(p.choices)} for p in sorted(params, key=lambda p: p.name)],
            "objectives": [[k, v] for k, v in objectives.items()]}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))
