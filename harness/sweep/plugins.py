"""Samplers and pruners as study-file plugins.

Optuna's own classes live outside the project's plugin allowlist and take no per-worker seed, so a
study names one of these small factories instead (``sampler: {class_path: harness.sweep.GP}``).
Each worker builds its sampler with its own seed: identical seeds make parallel workers propose
identical points.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import Any


def worker_seed(base: int | None, worker_id: str) -> int | None:
    """``base`` shifted by a stable hash of the worker's id: reproducible, yet different per worker."""
    if base is None:
        return None
    return (base + zlib.crc32(worker_id.encode())) % (2**31 - 1)


class SamplerPlugin(ABC):
    """Builds an Optuna sampler for one worker."""

    multi_objective: bool = True  # can it optimise several objectives at once?

    def __init__(self, seed: int | None = None):
        self.seed = seed

    @abstractmethod
    def build(self, worker_id: str) -> Any:
        """The sampler this worker uses."""


class TPE(SamplerPlugin):
    """Optuna's default: multivariate TPE with the constant liar, so parallel workers spread out.

    Args:
        seed: Base seed (shifted per worker); None for an unseeded sampler.
        n_startup_trials: Random trials before the model is used.
    """

    def __init__(self, seed: int | None = None, n_startup_trials: int = 10):
        super().__init__(seed)
        self.n_startup_trials = n_startup_trials

    def build(self, worker_id: str) -> Any:
        import optuna

        return optuna.samplers.TPESampler(seed=worker_seed(self.seed, worker_id),
                                          n_startup_trials=self.n_startup_trials, constant_liar=True)


class GP(SamplerPlugin):
    """Gaussian-process Bayesian optimisation: small budgets over a few continuous weights (needs scipy).

    Args:
        seed: Base seed (shifted per worker).
        n_startup_trials: Random trials before the GP is fitted.
        deterministic_objective: True when a point evaluated twice gives the same value.
    """

    def __init__(self, seed: int | None = None, n_startup_trials: int = 10, deterministic_objective: bool = False):
        super().__init__(seed)
        self.n_startup_trials, self.deterministic_objective = n_startup_trials, deterministic_objective

    def build(self, worker_id: str) -> Any:
        import optuna

        from harness.errors import require

        require("scipy", feature="the GP sampler")
        return optuna.samplers.GPSampler(seed=worker_seed(self.seed, worker_id), n_startup_trials=self.n_startup_trials,
                                         deterministic_objective=self.deterministic_objective)


class NSGAII(SamplerPlugin):
    """The genetic Pareto search, for several objectives (e.g. 1-step and 2-step Total).

    Args:
        seed: Base seed (shifted per worker).
        population_size: Individuals per generation.
        crossover_prob: Probability of a crossover when a child is made.
    """

    def __init__(self, seed: int | None = None, population_size: int = 50, crossover_prob: float = 0.9):
        super().__init__(seed)
        self.population_size, self.crossover_prob = population_size, crossover_prob

    def build(self, worker_id: str) -> Any:
        import optuna

        return optuna.samplers.NSGAIISampler(seed=worker_seed(self.seed, worker_id),
                                             population_size=self.population_size, crossover_prob=self.crossover_prob)


class Random(SamplerPlugin):
    """Independent uniform sampling: a baseline, and the cheapest sampler."""

    def build(self, worker_id: str) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=worker_seed(self.seed, worker_id))


class PrunerPlugin(ABC):
    """Builds an Optuna pruner; pruning needs a single objective and a pipeline that calls ``ctx.report``."""

    @abstractmethod
    def build(self) -> Any:
        """The pruner."""


class NoPruning(PrunerPlugin):
    """Never stops a trial early (the default)."""

    def build(self) -> Any:
        import optuna

        return optuna.pruners.NopPruner()


class Median(PrunerPlugin):
    """Stops a trial whose reported value is worse than the median of earlier trials at the same step.

    Args:
        n_startup_trials: Trials that are never pruned, to build the median first.
        n_warmup_steps: Steps of each trial before pruning may happen.
        interval_steps: Check every this many reported steps.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0, interval_steps: int = 1):
        self.n_startup_trials, self.n_warmup_steps, self.interval_steps = n_startup_trials, n_warmup_steps, interval_steps

    def build(self) -> Any:
        import optuna

        return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials, n_warmup_steps=self.n_warmup_steps,
                                           interval_steps=self.interval_steps)


class Hyperband(PrunerPlugin):
    """Successive halving over several brackets; ``max_resource`` is the last reported step.

    Args:
        min_resource: Steps every trial gets.
        max_resource: Steps of a full trial, or ``auto`` (learned from the first complete trial).
        reduction_factor: 1/fraction of trials that go on at each rung.
    """

    def __init__(self, min_resource: int = 1, max_resource: int | str = "auto", reduction_factor: int = 3):
        self.min_resource, self.max_resource, self.reduction_factor = min_resource, max_resource, reduction_factor

    def build(self) -> Any:
        import optuna

        return optuna.pruners.HyperbandPruner(min_resource=self.min_resource, max_resource=self.max_resource,
                                              reduction_factor=self.reduction_factor)


class Threshold(PrunerPlugin):
    """Stops a trial whose reported value leaves ``[lower, upper]`` (a diverging loss, a collapsed score)."""

    def __init__(self, lower: float | None = None, upper: float | None = None, n_warmup_steps: int = 0):
        if lower is None and upper is None:
            raise ValueError("Threshold pruner needs lower, upper or both")
        self.lower, self.upper, self.n_warmup_steps = lower, upper, n_warmup_steps

    def build(self) -> Any:
        import optuna

        return optuna.pruners.ThresholdPruner(lower=self.lower, upper=self.upper, n_warmup_steps=self.n_warmup_steps)


class Wilcoxon(PrunerPlugin):
    """For objectives that are means over instances (prompts, clips): report one score per instance.

    Args:
        p_threshold: Significance below which the trial is pruned.
        n_startup_steps: Instances always evaluated.
    """

    def __init__(self, p_threshold: float = 0.1, n_startup_steps: int = 2):
        self.p_threshold, self.n_startup_steps = p_threshold, n_startup_steps

    def build(self) -> Any:
        import optuna

        from harness.errors import require

        require("scipy", feature="the Wilcoxon pruner")
        return optuna.pruners.WilcoxonPruner(p_threshold=self.p_threshold, n_startup_steps=self.n_startup_steps)
