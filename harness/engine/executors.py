"""Where runs execute. The same :class:`RunJob` runs in this process or in a pool of processes;
a cluster backend (Ray, SLURM) implements the same two methods.

Every backend executes a job with :func:`execute_job`: a run whose resources ask for several GPUs
(``resources: {gpus: N}`` in the pipeline's ``init_args``) is launched as
``python -m torch.distributed.run --nproc_per_node=N --standalone -m harness.engine.runner JOB OUTCOME``, one
process per GPU (gloo on CPUs); rank 0 writes the run folder and sends progress and pruning questions
back here, where the tracker of the sweep and the Optuna trial live.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import ProcessPoolExecutor as _Pool
from concurrent.futures import wait as _wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.engine.pipeline import ProgressSink
from harness.engine.store import FAILED
from harness.errors import ConfigError
from harness.parallel import ranks

if TYPE_CHECKING:
    from harness.engine.pipeline import Reporter
    from harness.engine.runner import RunJob, RunOutcome



def run_resources(job: RunJob, cpus: float, gpus: float) -> tuple[float, float]:
    """The CPUs and GPUs one run asks for: the executor's defaults or the run's own ``resources``."""
    init_args = job.spec.config.get("pipeline", {}).get("init_args") or {}
    res = init_args.get("resources") if isinstance(init_args.get("resources"), dict) else {}
    return float(res.get("cpus", cpus)), float(res.get("gpus", gpus))


def ranks_for(job: RunJob) -> int:
    """Processes a run needs: one per GPU when its resources ask for more than one, else one."""
    _, gpus = run_resources(job, 0.0, 0.0)
    if gpus <= 1:
        return 1
    if gpus != int(gpus):
        raise ConfigError(f"run {job.spec.name}: resources.gpus {gpus} must be a whole number above 1")
    return int(gpus)


def execute_job(job: RunJob, progress: ProgressSink | None = None,
                reporter: Reporter | None = None) -> RunOutcome:
    """Execute one run here, or under torchrun when it asks for several GPUs (and this is no rank yet)."""
    from harness.engine.runner import execute_run

    nproc = ranks_for(job)
    if nproc > 1 and ranks.world_size() == 1:
        return run_under_torchrun(job, nproc, progress, reporter)
    return execute_run(job, progress, reporter)


def torchrun_job_command(nproc: int, job_file: Path, outcome_file: Path) -> list[str]:
    return ranks.torchrun_command(nproc, "-m", "harness.engine.runner", str(job_file), str(outcome_file))


def run_under_torchrun(job: RunJob, nproc: int, progress: ProgressSink | None = None,
                       reporter: Reporter | None = None) -> RunOutcome:
    """Launch the job on ``nproc`` local ranks and return rank 0's outcome.

    When rank 0 failed because another rank failed first (rank 0 then sees only a consequence, e.g.
    "connection closed by peer"), or no outcome comes back at all (a rank crashed and torchrun stopped
    the rest), the run is recorded as failed with the root cause, the launch's output in ``error.log``.
    """
    with tempfile.TemporaryDirectory(prefix="harness-torchrun-") as tmp:
        job_file, outcome_file, log_file = Path(tmp) / "job.pkl", Path(tmp) / "outcome.pkl", Path(tmp) / "out.log"
        job_file.write_bytes(pickle.dumps(job))
        channel = ranks.LauncherChannel(progress, reporter)
        try:
            with open(log_file, "wb") as log:
                code = subprocess.run(torchrun_job_command(nproc, job_file, outcome_file),
                                      env={**os.environ, **channel.env()}, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, check=False).returncode
        finally:
            channel.close()
        first = _first_failure(Path(tmp))
        if outcome_file.exists():
            outcome = pickle.loads(outcome_file.read_bytes())
            if outcome.state != FAILED or first is None or first["rank"] == 0:
                return outcome
        output = log_file.read_text(errors="replace")
    reason = (f"rank {first['rank']}: {first['reason']}" if first is not None
              else f"torchrun on {nproc} processes exited with code {code}: {_last_error(output)}")
    return _record_failure(job, reason, output)


def _first_failure(folder: Path) -> dict[str, Any] | None:
    """The earliest failure a rank recorded (see :func:`harness.engine.runner.rank_main`), if any."""
    import json

    records = [json.loads(p.read_text()) for p in folder.glob("outcome.pkl.rank*.json")]
    return min(records, key=lambda r: r["time"]) if records else None


def _last_error(output: str) -> str:
    """The last line that names an exception, else the last non-empty line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0].split()[-1] if ":" in line else ""
        if head.endswith(("Error", "Exception", "Diverged")):
            return line
    return lines[-1] if lines else "no output"


def _record_failure(job: RunJob, reason: str, output: str) -> RunOutcome:
    """Record the root cause of a failed launch in the run folder (rank 0 saw only a consequence, or
    was stopped before it could write anything)."""
    from harness.engine.provenance import utc_now
    from harness.engine.runner import RunOutcome
    from harness.engine.store import COMPLETE, RunStore
    from harness.io.atomic import atomic_write_text

    run_dir = RunStore(job.runs_root, job.spec.study).run(job.spec.short)
    lock = run_dir.lock()
    if run_dir.path.is_dir() and lock.acquire(blocking=False):
        try:
            if run_dir.read_status().get("state") != COMPLETE:
                atomic_write_text(run_dir.path / "error.log", output)
                run_dir.write_status(FAILED, reason=reason, ended=utc_now())
        finally:
            lock.release()
    return RunOutcome(job.spec.hash, job.spec.name, FAILED, reason=reason)


class Executor(ABC):
    """Runs jobs; outcomes come back in completion order. Cluster backends subclass it."""

    @abstractmethod
    def submit(self, job: RunJob) -> Any:
        """Queue a job; returns a handle that ``wait`` understands."""

    @abstractmethod
    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator[RunOutcome]:
        """Yield each job's outcome as it finishes; progress events go to ``progress``."""


class InProcessExecutor(Executor):
    """Runs each job in this process, one after the other: simplest, and easiest to debug."""

    def submit(self, job: RunJob) -> Any:
        return job

    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator[RunOutcome]:
        for job in handles:
            yield execute_job(job, progress)


def _run_in_child(job: RunJob, events: Any) -> RunOutcome:
    return execute_job(job, events.put if events is not None else None)


class ProcessPoolExecutor(Executor):
    """A local pool of ``workers`` processes (spawned, so each starts from a clean interpreter).

    Args:
        workers: Number of runs executing at once; on a CPU box keep workers × torch threads ≤ cores.
        threads_per_worker: torch intra-op threads in each worker.
    """

    def __init__(self, workers: int = 2, threads_per_worker: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads_per_worker = threads_per_worker

    def submit(self, job: RunJob) -> Any:
        return job

    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator[RunOutcome]:
        if not handles:
            return
        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager:
            events = manager.Queue() if progress is not None else None
            stop = threading.Event()
            pump = threading.Thread(target=_pump, args=(events, progress, stop), daemon=True)
            if events is not None:
                pump.start()
            try:
                with _Pool(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                           initargs=(self.threads_per_worker,)) as pool:
                    pending: set[Future] = {pool.submit(_run_in_child, job, events) for job in handles}
                    try:
                        while pending:
                            done, pending = _wait(pending, return_when=FIRST_COMPLETED)
                            for fut in done:
                                yield fut.result()
                    except BaseException:  # e.g. a full disk ends the study: start no queued run
                        for fut in pending:
                            fut.cancel()
                        raise
            finally:
                stop.set()
                if pump.is_alive():
                    pump.join(timeout=2)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def _pump(events: Any, progress: ProgressSink | None, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        if progress is not None:
            progress(event)
