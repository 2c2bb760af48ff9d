"""Rank and world helpers for runs launched by torchrun (one process per GPU).

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without
them a process is rank 0 of a world of 1, so the same code runs alone or under DDP. Rank 0 alone
writes results and talks to Optuna and W&B: guard those calls with :func:`is_rank_zero`.

Besides the rank helpers: the link between rank 0 and the process that launched torchrun (:class:`LauncherChannel` / :class:`LauncherLink`), through which rank 0 forwards
progress and asks a sweep's pruner, since only the launching process holds the Optuna trial.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_rank_zero() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def default_backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


@contextmanager
def process_group(backend: str | None = None) -> Iterator[None]:
    """Join torchrun's process group for the duration of a block; a no-op in a world of one."""
    import torch
    import torch.distributed as dist

    if world_size() <= 1 or dist.is_initialized():
        yield
        return
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, rank=rank(), world_size=world_size())
    try:
        yield
    finally:
        dist.destroy_process_group()


def device() -> Any:
    """This rank's device: its GPU under torchrun with CUDA, else the CPU."""
    import torch

    return torch.device(f"cuda:{local_rank()}") if torch.cuda.is_available() else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def all_reduce_mean(tensor: Any) -> Any:
    """Average a tensor over ranks in place (identity in a world of one); returns it."""
    if is_distributed():
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s value on every rank (e.g. a pruning decision or a trial's parameters)."""
    if not is_distributed():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(batch_size: int) -> slice:
    """This rank's contiguous slice of a global batch (the last rank takes any remainder)."""
    per = batch_size // world_size()
    start = rank() * per
    stop = batch_size if rank() == world_size() - 1 else start + per
    return slice(start, stop)


def torchrun_command(nproc: int, *program: str, standalone: bool = True) -> list[str]:
    """``torchrun`` on ``nproc`` processes of this node; ``program`` is a script or ``-m module`` and its args."""
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if standalone:
        cmd.append("--standalone")
    return [*cmd, *program]


# -- rank 0 ↔ the launching process -----------------------------------------------------------------

CHANNEL_ENV = "HARNESS_LAUNCHER_ADDRESS"
CHANNEL_KEY_ENV = "HARNESS_LAUNCHER_KEY"
REPORTS_ENV = "HARNESS_LAUNCHER_REPORTS"


class LauncherChannel:
    """The launching process's end: rank 0's progress events go to ``progress``; its reports are
    answered by ``reporter`` (a sweep's pruner). Local TCP with a random key, one client."""

    def __init__(self, progress: Callable[[dict], None] | None,
                 reporter: Callable[[float, int], bool] | None) -> None:
        from multiprocessing.connection import Listener

        self.progress, self.reporter, self.key = progress, reporter, os.urandom(16)
        self.connected = threading.Event()
        self.listener = Listener(("127.0.0.1", 0), authkey=self.key)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def env(self) -> dict[str, str]:
        host, port = self.listener.address
        return {CHANNEL_ENV: f"{host}:{port}", CHANNEL_KEY_ENV: self.key.hex(),
                REPORTS_ENV: "1" if self.reporter is not None else "0"}

    def _serve(self) -> None:
        try:
            conn = self.listener.accept()
        except OSError:
            return
        self.connected.set()
        with conn:
            while True:
                try:
                    kind, *payload = conn.recv()
                except (EOFError, OSError):
                    return
                if kind == "close":
                    return
                if kind == "progress" and self.progress is not None:
                    self.progress(payload[0])
                elif kind == "report":
                    conn.send(bool(self.reporter(*payload)) if self.reporter is not None else False)

    def close(self) -> None:
        """Stop serving; wakes a server still waiting for rank 0 (which may never have connected)."""
        from multiprocessing.connection import Client

        if self.thread.is_alive() and not self.connected.is_set():
            try:
                with Client(self.listener.address, authkey=self.key) as wake:
                    wake.send(("close",))
            except OSError:
                pass
        self.thread.join(timeout=5)
        self.listener.close()


class LauncherLink:
    """Rank 0's end of :class:`LauncherChannel`, built from the environment the launcher set."""

    def __init__(self, address: str, key: bytes, reports: bool) -> None:
        from multiprocessing.connection import Client

        host, port = address.rsplit(":", 1)
        self.conn = Client((host, int(port)), authkey=key)
        self.reports, self.lock = reports, threading.Lock()

    @classmethod
    def from_env(cls) -> LauncherLink | None:
        address = os.environ.get(CHANNEL_ENV)
        if not address:
            return None
        return cls(address, bytes.fromhex(os.environ[CHANNEL_KEY_ENV]), os.environ.get(REPORTS_ENV) == "1")

    def progress(self, event: dict) -> None:
        with self.lock:
            self.conn.send(("progress", dict(event)))

    def report(self, value: float, step: int) -> bool:
        with self.lock:
            self.conn.send(("report", float(value), int(step)))
            return bool(self.conn.recv())

    def close(self) -> None:
        self.conn.close()


# -- work split over ranks, and rendezvous through files -------------------------------------------


def share(count: int) -> range:
    """This rank's contiguous part of ``count`` work items, part sizes differing by at most one (unlike
    :func:`shard`, which splits a training batch that must divide evenly)."""
    size = world_size()
    return range(rank() * count // size, (rank() + 1) * count // size)


def wait_for_files(paths: Iterable[Path], poll_s: float = 0.5,
                   on_wait: Callable[[], None] | None = None) -> None:
    """Block until every path exists, polling: a long wait on slower ranks hits no collective timeout
    (a rank that dies makes torchrun stop this one)."""
    pending = [Path(p) for p in paths]
    while pending := [p for p in pending if not p.exists()]:
        if on_wait is not None:
            on_wait()
        time.sleep(poll_s)
