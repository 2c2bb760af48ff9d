"""Where runs execute. The same :class:`RunJob` runs in this process or in a pool of processes;
a cluster backend (Ray, SLURM) implements the same two methods.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor as _Pool, wait as _wait
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from .runner import RunJob, RunOutcome

ProgressSink = Callable[[dict[str, Any]], None]


class Executor(ABC):
    """Runs jobs; outcomes come back in completion order. Cluster backends subclass it."""

    @abstractmethod
    def submit(self, job: "RunJob") -> Any:
        """Queue a job; returns a handle that ``wait`` understands."""

    @abstractmethod
    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator["RunOutcome"]:
        """Yield each job's outcome as it finishes; progress events go to ``progress``."""


class InProcessExecutor(Executor):
    """Runs each job in this process, one after the other: simplest, and easiest to debug."""

    def submit(self, job: "RunJob") -> Any:
        return job

    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator["RunOutcome"]:
        from .runner import execute_run

        for job in handles:
            yield execute_run(job, progress)


def _run_in_child(job: "RunJob", events: Any) -> "RunOutcome":
    from .runner import execute_run

    return execute_run(job, events.put if events is not None else None)


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

    def submit(self, job: "RunJob") -> Any:
        return job

    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator["RunOutcome"]:
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
                    while pending:
                        done, pending = _wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            yield fut.result()
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
