"""The ``sweep`` section of a study file, typed and checked before any trial runs.

``Study.sweep`` is kept as a plain mapping by the study schema; this module parses it with its own
jsonargparse parser, so its errors read ``key 'sweep.<field>'`` and ``harness run`` never needs it::

    sweep:
      objectives: {total: maximize}                 # metric names of result.json → direction
      space: {method.init_args.alpha: {low: 0.01, high: 1.0, log: true}}
      sampler: {class_path: harness.sweep.TPE, init_args: {seed: 0}}
      pruner: {class_path: harness.sweep.Median}
      baselines: [{method.init_args.alpha: 0.1}]    # enqueued once, before the sampler's own points
      constraints: {critic/heldout_acc_min: 0.6}    # training-log term → lowest feasible value
      n_trials: 20                                  # trials each worker process runs (--n-trials)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonargparse import ArgumentError, ArgumentParser, lazy_instance

from harness.engine.config import format_parse_error
from harness.engine.pipeline import Pipeline
from harness.engine.study import ResolvedStudy, expand_runs, instantiate_plugin
from harness.errors import ConfigError
from harness.sweep.plugins import TPE, NoPruning, PrunerPlugin, SamplerPlugin
from harness.sweep.space import Param, parse_space

Direction = Literal["minimize", "maximize"]


@dataclass
class SweepConfig:
    """What ``harness sweep`` searches and how.

    Args:
        objectives: Metric names of the run's result (``result.json`` metrics) → minimize | maximize.
            Several objectives make a Pareto search (no pruning then).
        space: Dotted ``init_args`` keys of the pipeline → range (low/high/log/step) or choices.
        sampler: Which sampler proposes points (TPE; GP; NSGAII for several objectives; Random).
        pruner: Which pruner stops weak trials from ``ctx.report`` values (default: none).
        baselines: Points evaluated first, enqueued once per study (skipped if already there).
        constraints: Training-log terms → the lowest acceptable value (the mean over the trial's seeds of
            the term's last logged value); trials below it are infeasible to the sampler (:mod:`.constraints`).
        n_trials: Trials each worker process runs, unless ``--n-trials`` says otherwise.
        max_trials: Stop every worker once the study holds this many complete trials (None: no cap).
        timeout_s: Stop starting trials after this many seconds (``--timeout``).
        storage: Optuna storage: an RDB URL, or a journal file path; default RUNS_DIR/<study>/optuna.log.
        heartbeat_s: RDB storages only: heartbeat period of running trials.
        grace_s: A running trial with no heartbeat (RDB) or no live worker (journal) for this long is failed.
        max_retries: How often the point of a trial whose worker died is tried again.
    """

    objectives: dict[str, Direction]
    space: dict[str, dict[str, Any]]
    sampler: SamplerPlugin = field(default_factory=lambda: lazy_instance(TPE))
    pruner: PrunerPlugin = field(default_factory=lambda: lazy_instance(NoPruning))
    baselines: list[dict[str, Any]] = field(default_factory=list)
    constraints: dict[str, float] = field(default_factory=dict)
    n_trials: int = 20
    max_trials: int | None = None
    timeout_s: float | None = None
    storage: str | None = None
    heartbeat_s: int = 10
    grace_s: int = 30
    max_retries: int = 2


@dataclass
class SweepSpec:
    """A parsed sweep plus what it needs from its study."""

    config: SweepConfig
    params: list[Param]
    study: ResolvedStudy

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def objective_names(self) -> list[str]:
        return list(self.config.objectives)

    @property
    def directions(self) -> list[str]:
        return list(self.config.objectives.values())


@functools.cache
def _parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(SweepConfig, as_group=False)
    return parser


def parse_sweep(study: ResolvedStudy) -> SweepSpec:
    """Parse ``study.config['sweep']`` into a :class:`SweepSpec`; one-line errors naming the field."""
    source = str(study.source)
    raw = study.config.get("sweep")
    if not raw:
        raise ConfigError(f"{source}: no 'sweep' section; harness sweep needs sweep.objectives and sweep.space")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: key 'sweep' must be a mapping")
    parser = _parser()
    try:
        cfg = parser.instantiate(parser.parse_object(dict(raw)))
    except ArgumentError as exc:
        raise ConfigError(f"{source}: {format_parse_error(str(exc), {'sweep': raw}, 'sweep')}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: key 'sweep': {exc}") from None
    config = SweepConfig(**{k: getattr(cfg, k) for k in SweepConfig.__dataclass_fields__})
    params = parse_space(config.space, source)
    if not config.objectives:
        raise ConfigError(f"{source}: key 'sweep.objectives' must name at least one metric")
    for name in ("n_trials", "heartbeat_s", "grace_s"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{source}: key 'sweep.{name}' must be at least 1, got {getattr(config, name)}")
    if config.grace_s <= config.heartbeat_s:
        raise ConfigError(f"{source}: key 'sweep.grace_s' ({config.grace_s}) must exceed sweep.heartbeat_s "
                          f"({config.heartbeat_s}), or live trials are failed as stale")
    return SweepSpec(config, params, study)


def check_sweep(spec: SweepSpec) -> None:
    """Everything that can be wrong before a trial runs: keys, sampler fit, baselines, objectives."""
    source, cfg = str(spec.study.source), spec.config
    if len(cfg.objectives) > 1 and not getattr(cfg.sampler, "multi_objective", True):
        raise ConfigError(f"{source}: key 'sweep.sampler': {type(cfg.sampler).__name__} optimises one objective, "
                          f"but sweep.objectives names {len(cfg.objectives)}")
    if len(cfg.objectives) > 1 and not isinstance(cfg.pruner, NoPruning):
        raise ConfigError(f"{source}: key 'sweep.pruner': Optuna cannot prune a search over several objectives")
    for param in spec.params:
        for value in param.extremes():
            _resolve_point(spec, {param.name: value}, f"key 'sweep.space.{param.name}'")
    by_name = {p.name: p for p in spec.params}
    for i, point in enumerate(cfg.baselines):
        where = f"key 'sweep.baselines[{i}]'"
        for key, value in point.items():
            if key not in by_name:
                raise ConfigError(f"{source}: {where}: '{key}' is not a key of sweep.space")
            if not by_name[key].contains(value):
                raise ConfigError(f"{source}: {where}: {key}={value!r} lies outside its sweep.space range")
    _check_objectives(spec)


def _resolve_point(spec: SweepSpec, point: Mapping[str, Any], where: str) -> None:
    source = str(spec.study.source)
    try:
        expand_runs(spec.name, spec.study.config["pipeline"], [{"point": {"p": dict(point)}}], [0], source,
                    spec.study.allow_modules)
    except ConfigError as exc:
        detail = str(exc).split(": ", 2)[-1]
        raise ConfigError(f"{source}: {where}: {detail}") from None


def _check_objectives(spec: SweepSpec) -> None:
    """Objectives must be metrics the pipeline declares (when it declares them)."""
    source = str(spec.study.source)
    pipeline: Pipeline = instantiate_plugin(spec.study.config["pipeline"], Pipeline, source, "pipeline")
    produced = pipeline.metric_names()
    if produced is None:
        return
    for name in spec.objective_names:
        if name not in produced:
            raise ConfigError(f"{source}: key 'sweep.objectives.{name}': {type(pipeline).__name__} does not produce "
                              f"a metric '{name}' (it produces: {', '.join(sorted(produced))})")
