"""Distillation methods behind one distill/sample interface, and their registry.

``build_method("asd", alpha=20)`` builds a registered method by name. A *preset* is a name for a
method plus fixed constructor arguments, nothing more: ``asd_ffe`` is ``ASD(inference="ffe")``, i.e.
ASD trained as usual and sampled with First-Frame Enhancement whenever a bare step count is asked for
(``1`` → ``1*``). In a study file the same preset is written out as
``{class_path: methods.asd.ASD, init_args: {inference: ffe}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError
from methods.asd import ASD
from methods.base import Method, Samples, TrainContext
from methods.distribution_matching import dmd_loss
from methods.dmd import DMD
from methods.self_forcing import SelfForcing
from methods.undistilled import Undistilled

METHODS: dict[str, type[Method]] = {"dmd": DMD, "self_forcing": SelfForcing, "asd": ASD, "causal_init": Undistilled}


@dataclass(frozen=True)
class Preset:
    """A registered method with some constructor arguments fixed."""

    method: str
    init_args: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {"asd_ffe": Preset("asd", {"inference": "ffe"})}


def method_names() -> list[str]:
    return sorted([*METHODS, *PRESETS])


def build_method(name: str, **init_args: Any) -> Method:
    """The method or preset registered as ``name``; ``init_args`` override the preset's."""
    if name in PRESETS:
        preset = PRESETS[name]
        return build_method(preset.method, **{**preset.init_args, **init_args})
    if name not in METHODS:
        raise ConfigError(f"method '{name}' is unknown; choose one of {method_names()}")
    return METHODS[name](**init_args)


__all__ = [
    "ASD",
    "DMD",
    "METHODS",
    "PRESETS",
    "Method",
    "Preset",
    "Samples",
    "SelfForcing",
    "TrainContext",
    "Undistilled",
    "build_method",
    "dmd_loss",
    "method_names",
]
