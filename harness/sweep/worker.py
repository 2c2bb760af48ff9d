"""Creating or joining a study in its storage, and the worker loop every process runs.

``harness sweep`` = check everything → create/join the study → enqueue the baselines once → work.
``harness worker`` = check everything → join → work. Any number of workers on any machines share
one storage; Optuna hands each trial to exactly one of them (the ask is a storage transaction), and
trials of dead workers are failed and retried (RDB: Optuna's heartbeat; journal: :mod:`.leases`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.engine.locks import FileLock
from harness.engine.provenance import utc_now
from harness.errors import ConfigError
from harness.io.atomic import atomic_write_json
from harness.sweep.leases import WorkerLease, new_worker_id, reap_dead_trials, sweep_dir
from harness.sweep.objective import TrialObjective, TrialRunFailed
from harness.sweep.schema import SweepSpec
from harness.sweep.space import space_signature
from harness.sweep.storage import OpenedStorage, open_storage

log = logging.getLogger(__name__)

SIGNATURE_ATTR = "harness.space"
MANIFEST = "sweep.json"


def open_study_storage(spec: SweepSpec, runs_dir: str | Path, storage: str | None) -> OpenedStorage:
    """``--storage`` wins over ``sweep.storage``; neither means the journal under the study's folder."""
    c = spec.config
    return open_storage(storage or c.storage, runs_dir, spec.name, heartbeat_s=c.heartbeat_s, grace_s=c.grace_s,
                        max_retries=c.max_retries)


def join_study(spec: SweepSpec, opened: OpenedStorage, worker_id: str) -> Any:
    """Create the Optuna study or load it; refuse one of the same name with another space or objectives."""
    import optuna

    sampler, pruner = spec.config.sampler.build(worker_id), spec.config.pruner.build()
    try:
        study = optuna.create_study(study_name=spec.name, storage=opened.storage, directions=spec.directions,
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
    except ValueError as exc:  # e.g. a stored study with other directions
        raise ConfigError(f"study '{spec.name}' in storage '{opened.label}': {exc}") from None
    _name_objectives(study, spec.objective_names)
    signature = space_signature(spec.params, spec.config.objectives)
    stored = study.user_attrs.get(SIGNATURE_ATTR)
    if stored is None:
        study.set_user_attr(SIGNATURE_ATTR, signature)
    elif stored != signature:
        raise ConfigError(f"study '{spec.name}' already exists in storage '{opened.label}' with a different search "
                          f"space or objectives; rename the study or use another storage")
    return study


def _name_objectives(study: Any, names: list[str]) -> None:
    """The objectives' names in the storage, so optuna-dashboard and ``optuna.load_study`` show ``total``,
    not ``Objective 0``."""
    import warnings

    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is marked experimental
            study.set_metric_names(list(names))


def enqueue_baselines(study: Any, spec: SweepSpec) -> int:
    """Enqueue each baseline point once per study (a restarted sweep skips those already there)."""
    for point in spec.config.baselines:
        study.enqueue_trial(dict(point), user_attrs={"harness.baseline": True}, skip_if_exists=True)
    return len(spec.config.baselines)


def write_sweep_manifest(runs_dir: str | Path, spec: SweepSpec, opened: OpenedStorage) -> None:
    """Where the study's trials live, so reports and dashboards find the storage again."""
    path = Path(runs_dir) / spec.name / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    label = opened.label
    if opened.kind == "journal" and Path(label).resolve().parent == path.parent.resolve():
        label = Path(label).name  # the default journal: no machine path in the manifest
    atomic_write_json(path, {"study": spec.name, "storage": label, "storage_kind": opened.kind,
                             "objectives": spec.config.objectives, "params": [p.name for p in spec.params],
                             "updated": utc_now()})


@dataclass
class WorkerReport:
    worker_id: str
    trials: list[int] = field(default_factory=list)
    reaped: list[int] = field(default_factory=list)


def run_worker(spec: SweepSpec, study: Any, opened: OpenedStorage, *, runs_dir: str | Path, cache_dir: str | Path,
               n_trials: int, timeout_s: float | None = None, worker_id: str | None = None,
               callbacks: list[Callable] = ()) -> WorkerReport:
    """Run up to ``n_trials`` trials (stopping early at ``timeout_s`` or the study's ``max_trials``)."""
    worker_id = worker_id or new_worker_id()
    report = WorkerReport(worker_id)
    objective = TrialObjective(spec, Path(runs_dir), Path(cache_dir), worker_id)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with WorkerLease(runs_dir, spec.name, worker_id):
        while len(report.trials) < n_trials and (deadline is None or time.monotonic() < deadline):
            if not opened.has_heartbeat:
                report.reaped += reap_dead_trials(study, runs_dir, grace_s=spec.config.grace_s,
                                                  max_retries=spec.config.max_retries)
            if _cap_reached(study, spec.config.max_trials):
                break
            count = len(report.trials)
            study.optimize(objective, n_trials=1, catch=(TrialRunFailed,), gc_after_trial=False,
                           callbacks=[lambda _s, t: report.trials.append(t.number), *callbacks],
                           show_progress_bar=False)
            if len(report.trials) == count:  # no trial finished (cannot happen with optuna's contract)
                break
    return report


def _cap_reached(study: Any, max_trials: int | None) -> bool:
    if max_trials is None:
        return False
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= max_trials


def study_lock(runs_dir: str | Path, name: str) -> FileLock:
    """Serialises study creation and baseline enqueueing between ``harness sweep`` processes on one box."""
    return FileLock(sweep_dir(runs_dir, name) / "create.lock")
