"""Optuna sweeps over a study's pipeline: every trial is a run in the store, so caching and resume apply.

Public API; the code lives in one module per concern (schema, space, storage, leases, objective,
worker, W&B callback, report).
"""

from harness.sweep.plugins import (
    GP,
    NSGAII,
    TPE,
    Hyperband,
    Median,
    NoPruning,
    PrunerPlugin,
    Random,
    SamplerPlugin,
    Threshold,
    Wilcoxon,
)
from harness.sweep.schema import SweepConfig, SweepSpec, check_sweep, parse_sweep

__all__ = [
    "GP",
    "NSGAII",
    "TPE",
    "Hyperband",
    "Median",
    "NoPruning",
    "PrunerPlugin",
    "Random",
    "SamplerPlugin",
    "SweepConfig",
    "SweepSpec",
    "Threshold",
    "Wilcoxon",
    "check_sweep",
    "parse_sweep",
]
