"""One trial = one run per study seed, in the run store: the trial's point overrides the pipeline.

Because a trial is an ordinary run (resolved config → hash → ``runs/<study>/<hash>/``), a point that
was computed before is read back instead of recomputed, a point whose worker died resumes from its
last checkpoint, and ``harness ls`` shows sweep runs like any others. Only the first seed's run
reports intermediate values to the pruner (Optuna keeps one curve per trial).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engine.executors import execute_job
from harness.engine.run_spec import RunSpec
from harness.engine.runner import BUSY, CACHED, PRUNED, RunJob, RunOutcome
from harness.engine.store import COMPLETE, RunStore
from harness.engine.study import expand_runs
from harness.sweep.constraints import constraint_values
from harness.sweep.leases import WORKER_ATTR
from harness.sweep.schema import SweepSpec

RUNS_ATTR = "harness.runs"


class TrialRunFailed(Exception):
    """A trial's run failed; the trial is marked failed and the worker goes on."""


def trial_runs(spec: SweepSpec, params: dict[str, Any], number: int) -> list[RunSpec]:
    """The runs of one trial: the study's pipeline with ``params`` applied, once per seed."""
    study = spec.study
    return expand_runs(spec.name, study.config["pipeline"], [{"trial": {str(number): dict(params)}}],
                       study.config["seeds"], str(study.source), study.allow_modules)


@dataclass
class TrialObjective:
    """The callable handed to ``study.optimize``: suggest, run (or reuse) the runs, return the values."""

    spec: SweepSpec
    runs_dir: Path
    cache_dir: Path
    worker_id: str

    def __call__(self, trial: Any) -> float | list[float]:
        trial.set_user_attr(WORKER_ATTR, self.worker_id)
        params = {p.name: p.suggest(trial) for p in self.spec.params}
        runs = trial_runs(self.spec, params, trial.number)
        trial.set_user_attr(RUNS_ATTR, [r.short for r in runs])
        outcomes = [self._execute(run, trial if i == 0 else None) for i, run in enumerate(runs)]
        values = [self._value(outcomes, name) for name in self.spec.objective_names]
        if self.spec.config.constraints:  # Optuna's samplers prefer trials whose constraints are all <= 0
            folders = [RunStore(self.runs_dir, run.study).run(run.short).path for run in runs]
            for term, value in zip(self.spec.config.constraints, constraint_values(self.spec.config.constraints,
                                                                                    folders), strict=True):
                trial.set_constraint(term, value)
        return values[0] if len(values) == 1 else values

    def _execute(self, run: RunSpec, trial: Any | None) -> RunOutcome:
        import optuna

        job = RunJob(run, str(self.runs_dir), str(self.cache_dir), self.spec.study.tracker_config)
        reporter = _pruning_reporter(trial, len(self.spec.objective_names)) if trial is not None else None
        outcome = execute_job(job, reporter=reporter)  # rank 0 relays its reports here under torchrun
        if outcome.state == BUSY:  # the same point is running in another trial: wait and share its result
            outcome = _await_run(RunStore(self.runs_dir, run.study), run)
        if outcome.state == PRUNED:
            raise optuna.TrialPruned(outcome.reason)
        if outcome.state not in (COMPLETE, CACHED):
            raise TrialRunFailed(f"run {run.short} failed: {outcome.reason}")
        return outcome

    def _value(self, outcomes: list[RunOutcome], name: str) -> float:
        values = []
        for o in outcomes:
            value = o.metrics.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TrialRunFailed(f"run {o.hash[:16]}: objective '{name}' missing or not a finite number "
                                     f"in its result (got {value!r})")
            values.append(float(value))
        return sum(values) / len(values)


def _pruning_reporter(trial: Any, n_objectives: int):
    """``ctx.report`` → ``trial.report`` + ``should_prune``; Optuna cannot prune several objectives."""
    if n_objectives > 1:
        return None

    def report(value: float, step: int) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return report


def _await_run(store: RunStore, run: RunSpec) -> RunOutcome:
    run_dir = store.run(run.short)
    with run_dir.lock():
        status = run_dir.read_status()
    result = run_dir.read_result()
    if status.get("state") == COMPLETE and result is not None:  # an unreadable result.json is no result
        return RunOutcome(run.hash, run.name, CACHED, metrics=result.get("metrics", {}), headline=result.get("headline"))
    state = PRUNED if status.get("pruned_step") is not None else "failed"
    return RunOutcome(run.hash, run.name, state, reason=status.get("reason", "ended elsewhere without a result"))
