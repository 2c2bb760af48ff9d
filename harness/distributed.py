"""Rank and world helpers for runs launched by torchrun (one process per GPU).

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without
them a process is rank 0 of a world of 1, so the same code runs alone or under DDP. Rank 0 alone
writes results and talks to Optuna and W&B: guard those calls with :func:`is_rank_zero`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator


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
