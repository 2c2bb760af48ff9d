"""A sweep's ``study.json``: its trials' runs listed like a grid study's, so ``ls`` and ``report`` read it.

Every trial is a row (label ``trial: <number>``) with one run per seed; the list is rewritten from the
storage after each trial, by whichever worker finished it, so it never depends on one process's memory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness.engine.driver import write_manifest
from harness.engine.run_spec import RunSpec
from harness.engine.store import RunStore
from harness.sweep.objective import RUNS_ATTR
from harness.sweep.schema import SweepSpec


def trial_run_list(spec: SweepSpec, study: Any) -> list[RunSpec]:
    """The runs every trial so far asked for, in trial order (cheap: read from the trials' attributes)."""
    seeds = list(spec.study.config["seeds"])
    runs: list[RunSpec] = []
    for trial in study.get_trials(deepcopy=False):
        shorts = trial.user_attrs.get(RUNS_ATTR) or []
        for short, seed in zip(shorts, seeds):
            runs.append(RunSpec(spec.name, {"trial": str(trial.number)}, int(seed), {}, str(short)))
    return runs


def write_study_manifest(runs_dir: str | Path, spec: SweepSpec, study: Any) -> None:
    """``<runs>/<study>/study.json`` with the sweep's resolved study and its trials' runs."""
    store = RunStore(runs_dir, spec.name)
    store.path.mkdir(parents=True, exist_ok=True)
    write_manifest(store, dataclasses.replace(spec.study, runs=trial_run_list(spec, study)))


class ManifestCallback:
    """``study.optimize`` callback: rewrite ``study.json`` after each trial (a failure is only logged)."""

    def __init__(self, runs_dir: str | Path, spec: SweepSpec):
        self.runs_dir, self.spec = Path(runs_dir), spec

    def __call__(self, study: Any, trial: Any) -> None:
        import logging

        try:
            write_study_manifest(self.runs_dir, self.spec, study)
        except OSError as exc:
            logging.getLogger(__name__).warning("sweep %s: study.json not updated (%s)", self.spec.name,
                                                exc.strerror or exc)


def recover_study_manifest(folder: Path) -> bool:
    """``study.json`` for a sweep folder written before sweeps kept one, from its storage and its runs'
    ``config.yaml``; False when the storage cannot be read (the folder is then listed by ``ls`` only)."""
    import yaml

    from harness.errors import HarnessError
    from harness.sweep.report import load_optuna_study

    folder = Path(folder)
    try:
        study = load_optuna_study(folder.parent, folder.name)
    except (HarnessError, OSError, ValueError):
        return False
    store = RunStore(folder.parent, folder.name)
    runs, pipeline = [], None
    for trial in study.get_trials(deepcopy=False):
        for short in trial.user_attrs.get(RUNS_ATTR) or []:
            run = store.run(str(short))
            try:
                config = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                config = {}
            pipeline = pipeline or config.get("pipeline")
            labels = {"trial": str(trial.number)}
            seed = config.get("seed")
            runs.append({"hash": str(short), "labels": labels, "seed": seed,
                         "name": "/".join([*labels.values(), f"seed={seed}"])})
    store.write_manifest({"study": folder.name, "config": {"name": folder.name, "pipeline": pipeline or {}},
                          "runs": runs, "recovered": "from the sweep's storage by harness report"})
    return True
