"""A harness for few-step causal video distillation (DMD, Self Forcing, ASD, FFE).

The names a plugin author needs, in one place (``from harness import World, Method, Backbone``);
each resolves on first use, so ``import harness`` stays cheap and imports no torch. Where each one
lives, and how to add a method, a world, a metric or an executor: docs/extending.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC: dict[str, str] = {
    # writing a world
    "World": "harness.worlds.base",
    "Evaluator": "harness.worlds.base",
    "Guidance": "harness.worlds.base",
    "VideoShape": "harness.worlds.base",
    "StageProvider": "harness.worlds.base",
    # the diffusion core a world's backbone and a method's sampler meet in
    "Backbone": "harness.diffusion.backbone",
    "KVCache": "harness.diffusion.kv_cache",
    "NoiseSource": "harness.diffusion.sampling",
    "Samples": "harness.diffusion.sampling",
    "sample_causal": "harness.diffusion.sampling",
    "StepSchedule": "harness.diffusion.schedules",
    # writing a method
    "Method": "methods.base",
    "TrainContext": "harness.training.context",
    "DistillationMethod": "methods.distill",
    "TrainSettings": "harness.training.trainer",
    # writing a pipeline, an executor, a tracker
    "Pipeline": "harness.engine.pipeline",
    "RunContext": "harness.engine.pipeline",
    "WorldPipeline": "harness.pipelines.common",
    "Executor": "harness.engine.executors",
    "Tracker": "harness.tracking",
    # running studies from Python
    "load_study": "harness.engine.study",
    "run_study": "harness.engine.driver",
    # errors a plugin raises
    "HarnessError": "harness.errors",
    "ConfigError": "harness.errors",
    "CheckpointError": "harness.errors",
}

__all__ = [
    "Backbone",
    "CheckpointError",
    "ConfigError",
    "DistillationMethod",
    "Evaluator",
    "Executor",
    "Guidance",
    "HarnessError",
    "KVCache",
    "Method",
    "NoiseSource",
    "Pipeline",
    "RunContext",
    "Samples",
    "StageProvider",
    "StepSchedule",
    "Tracker",
    "TrainContext",
    "TrainSettings",
    "VideoShape",
    "World",
    "WorldPipeline",
    "__version__",
    "load_study",
    "run_study",
    "sample_causal",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve lazily above
    from harness.diffusion.backbone import Backbone
    from harness.diffusion.kv_cache import KVCache
    from harness.diffusion.sampling import NoiseSource, Samples, sample_causal
    from harness.diffusion.schedules import StepSchedule
    from harness.engine.driver import run_study
    from harness.engine.executors import Executor
    from harness.engine.pipeline import Pipeline, RunContext
    from harness.engine.study import load_study
    from harness.errors import CheckpointError, ConfigError, HarnessError
    from harness.pipelines.common import WorldPipeline
    from harness.tracking import Tracker
    from harness.training.context import TrainContext
    from harness.training.trainer import TrainSettings
    from harness.worlds.base import Evaluator, Guidance, StageProvider, VideoShape, World
    from methods.base import Method
    from methods.distill import DistillationMethod
