"""Noticing trials whose worker died, for storages without Optuna's heartbeat (the journal).

Each worker holds an exclusive ``flock`` on ``<study>/.sweep/workers/<worker id>.lock`` for its whole
life and stamps its id on every trial it runs. The kernel drops the lock when the process dies, so a
RUNNING trial whose worker's lock is free belongs to a dead worker: it is failed and its point is
enqueued again (at most ``max_retries`` times). A trial not yet stamped counts as dead only after
``grace_s`` seconds. The reap is serialised by a study-wide lock so a point is re-enqueued once.
flock works across processes of one machine and on most shared filesystems (NFSv4 emulates it).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.engine.locks import FileLock

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

WORKER_ATTR = "harness.worker"
RETRIES_ATTR = "harness.retries"
RETRY_OF_ATTR = "harness.retry_of"
FAILURE_ATTR = "harness.failure"


def sweep_dir(runs_dir: str | Path, study: str) -> Path:
    return Path(runs_dir) / study / ".sweep"


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerLease:
    """Held while a worker lives; others read a free lock as 'this worker is dead'."""

    def __init__(self, runs_dir: str | Path, study: str, worker_id: str):
        self.worker_id = worker_id
        self.lock = FileLock(sweep_dir(runs_dir, study) / "workers" / f"{worker_id}.lock")

    def __enter__(self) -> Self:
        self.lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def worker_alive(runs_dir: str | Path, study: str, worker_id: str) -> bool:
    return FileLock(sweep_dir(runs_dir, study) / "workers" / f"{worker_id}.lock").is_locked_elsewhere()


def _age_s(trial: Any) -> float:
    start = trial.datetime_start
    if start is None:
        return 0.0
    now = _dt.datetime.now(start.tzinfo) if start.tzinfo else _dt.datetime.now()
    return (now - start).total_seconds()


def reap_dead_trials(study: Any, runs_dir: str | Path, *, grace_s: float, max_retries: int) -> list[int]:
    """Fail the RUNNING trials of dead workers and enqueue their points again; returns their numbers."""
    from optuna.trial import TrialState

    reaped: list[int] = []
    with FileLock(sweep_dir(runs_dir, study.study_name) / "reap.lock"):
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = trial.user_attrs.get(WORKER_ATTR)
            dead = (not worker_alive(runs_dir, study.study_name, owner)) if owner else _age_s(trial) > grace_s
            if not dead:
                continue
            study._storage.set_trial_user_attr(trial._trial_id, FAILURE_ATTR, f"worker {owner or '?'} died")
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            retries = int(trial.user_attrs.get(RETRIES_ATTR, 0))
            if retries < max_retries and trial.params:
                study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF_ATTR: trial.number,
                                                                    RETRIES_ATTR: retries + 1})
            log.warning("trial %d: worker %s died; trial failed%s", trial.number, owner,
                        ", point enqueued again" if retries < max_retries else "")
            reaped.append(trial.number)
    return reaped
