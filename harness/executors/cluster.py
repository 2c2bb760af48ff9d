"""Executors past one machine: Ray tasks and SLURM jobs (submitit), behind :class:`Executor`.

Both run the very same :func:`harness.executors.execute_job` on a :class:`RunJob`, so the run store,
locks, resume and trackers behave as locally. The run store (``runs_root``) and the stage cache must
be on a filesystem every node sees. Ray and submitit are optional and imported only when used.

Resources: each run asks for the executor's defaults, overridden per run by a ``resources`` mapping
in the pipeline's ``init_args`` (``{cpus: 4, gpus: 2}``) when the pipeline has one. A run with more
than one GPU runs under torchrun inside its task or job, one rank per GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.engine.executors import Executor, ProgressSink, run_resources
from harness.errors import require

if TYPE_CHECKING:
    from harness.engine.runner import RunJob, RunOutcome


def _execute(job: RunJob) -> RunOutcome:
    from harness.engine.executors import execute_job

    return execute_job(job)  # under torchrun when the run asks for several GPUs


class RayExecutor(Executor):
    """One Ray task per run on a Ray cluster (``ray start --head`` on one node, ``--address`` on others).

    Args:
        address: ``ray.init`` address: ``auto`` to join the local node's cluster, ``ray://host:10001``,
            or None to start a private local instance.
        cpus: CPUs each run asks for.
        gpus: GPUs each run asks for (fractions share a GPU).
        num_cpus: CPUs of a private local instance (ignored when joining a cluster).
    """

    def __init__(self, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0, num_cpus: int | None = None):
        self.address, self.cpus, self.gpus, self.num_cpus = address, cpus, gpus, num_cpus

    def _ray(self) -> Any:
        ray = require("ray", feature="the Ray executor")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(address=self.address, **kwargs)
        return ray

    def submit(self, job: RunJob) -> Any:
        ray = self._ray()
        cpus, gpus = run_resources(job, self.cpus, self.gpus)
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_execute)
        return task.remote(job)

    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator[RunOutcome]:
        if not handles:
            return
        ray = self._ray()
        pending = list(handles)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)


class SubmititExecutor(Executor):
    """One SLURM job per run through submitit; ``cluster: local`` or ``debug`` runs the same code here.

    Args:
        folder: Where submitit keeps job scripts and logs (``%j`` is the job id).
        cluster: ``slurm``, ``local`` (subprocesses) or ``debug`` (in this process, for pdb).
        timeout_min: Job time limit in minutes.
        cpus: CPUs per run (``cpus_per_task``).
        gpus: GPUs per run (``gpus_per_node``).
        partition: SLURM partition (None: the cluster's default).
        slurm_args: Further ``slurm_*`` parameters of submitit, e.g. ``{slurm_qos: high}``.
    """

    def __init__(self, folder: str = "runs/.submitit/%j", cluster: str = "slurm", timeout_min: int = 240,
                 cpus: int = 1, gpus: int = 0, partition: str | None = None, slurm_args: dict[str, Any] | None = None):
        if cluster not in ("slurm", "local", "debug"):
            raise ValueError(f"cluster must be slurm, local or debug, got {cluster!r}")
        self.folder, self.cluster, self.timeout_min = folder, cluster, timeout_min
        self.cpus, self.gpus, self.partition, self.slurm_args = cpus, gpus, partition, dict(slurm_args or {})

    def _executor(self, cpus: float, gpus: float) -> Any:
        submitit = require("submitit", feature="the submitit (SLURM) executor")
        executor = submitit.AutoExecutor(folder=str(Path(self.folder)), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "cpus_per_task": max(1, int(cpus))}
        if gpus:
            params["gpus_per_node"] = int(gpus)
        if self.cluster == "slurm":
            if self.partition:
                params["slurm_partition"] = self.partition
            params.update(self.slurm_args)
        executor.update_parameters(**params)
        return executor

    def submit(self, job: RunJob) -> Any:
        cpus, gpus = run_resources(job, self.cpus, self.gpus)
        return self._executor(cpus, gpus).submit(_execute, job)

    def wait(self, handles: list[Any], progress: ProgressSink | None = None) -> Iterator[RunOutcome]:
        import time

        pending = list(handles)
        while pending:
            finished = [h for h in pending if h.done()]
            for handle in finished:
                pending.remove(handle)
                yield handle.result()
            if pending and not finished:
                time.sleep(0.5)
