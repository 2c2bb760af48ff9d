"""Data parallelism for the shared training loop: one process per GPU under torchrun, one model copy each.

Why gradients are all-reduced by hand instead of wrapping the models in ``DistributedDataParallel``:
a distillation step is not one ``forward → backward`` of one module. The generator runs several
forwards per step (a KV-cached rollout chunk by chunk, cache writes without gradient, Self Forcing's
truncated steps, ASD's no-grad n+1 branch); the critic is sometimes a ``ModuleDict`` without a
``forward`` of its own (fake score + discriminator head) and is called through other objects; the loop
freezes one part while it trains the other by toggling ``requires_grad``; the frozen teacher needs
no synchronisation at all; and the EMA reads the generator's own state dict. DDP's reducer assumes one
forward through the wrapper per backward and a fixed set of trainable parameters, and it would rename
every state-dict key. Averaging ``.grad`` after ``backward`` and before clipping is the same arithmetic
DDP does (a mean over ranks of each rank's mean-over-its-shard gradient), works for any number of
forwards, and leaves models, checkpoints and the EMA exactly as they are in a single process.

Every rank starts from rank 0's weights (broadcast once, after any resume), applies the same averaged
gradient with the same optimiser, so the weights — and with them the EMA — stay identical on every
rank without further communication.

The batch is sharded through the noise: every rank owns a copy of the run's :class:`NoiseSource`
(same seed, same state) and draws exactly what one process training on the global batch would draw,
in the same order, keeping only its own rows (:class:`ShardedNoise`). Draws shared by the whole batch
(the step count n, the exit step, seeds of sub-streams) therefore agree on every rank, and a step on
W ranks equals one process's step on the full batch up to the order of floating-point sums.

That is the ``ddp`` strategy of :func:`ranks`. Models too large to replicate use ``fsdp``
(:class:`harness.parallel.fsdp.FullyShardedRanks`): the same batch sharding and logging, with every model
sharded by FSDP2 in ``prepare`` and gathered back into a plain copy by ``export``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from harness.diffusion.sampling import NoiseSource
from harness.errors import ConfigError
from harness.parallel.ranks import is_rank_zero, shard


class ShardedNoise(NoiseSource):
    """This rank's view of the run's noise: the global draws, of which it keeps rows ``part``.

    A ``normal``/``uniform`` draw whose leading dimension is this rank's batch size is a per-sample
    draw: it is drawn at the global batch size and sliced. Any other draw (scalars, choices, integers)
    is shared and returned whole. ``take`` slices a per-sample batch the recipe drew itself (prompts,
    real videos, per-sample levels) at the global size.
    """

    def __init__(self, generator: torch.Generator, global_batch: int, part: slice) -> None:
        super().__init__(generator=generator)
        self.global_batch, self.part = global_batch, part
        self.local_batch = part.stop - part.start

    def _per_sample(self, shape: tuple[int, ...]) -> bool:
        return len(shape) > 0 and shape[0] == self.local_batch

    def normal(
        self, shape: Sequence[int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        shape = tuple(shape)
        if not self._per_sample(shape):
            return super().normal(shape, device, dtype)
        full = torch.randn((self.global_batch, *shape[1:]), generator=self.generator, dtype=dtype)
        return full[self.part].to(device)

    def uniform(self, shape: Sequence[int]) -> torch.Tensor:
        shape = tuple(shape)
        if not self._per_sample(shape):
            return super().uniform(shape)
        full = torch.rand((self.global_batch, *shape[1:]), generator=self.generator, dtype=torch.float64)
        return full[self.part]

    def spawn(self) -> ShardedNoise:
        return ShardedNoise(super().spawn().generator, self.global_batch, self.part)

    def take(self, batch: Any) -> Any:
        if len(batch) != self.global_batch:
            raise ValueError(f"take() expects a batch of the global size {self.global_batch}, got {len(batch)}")
        return batch[self.part]


class Ranks(Protocol):
    """What the training loop asks of its process group; a single process answers trivially."""

    writer: bool  # the one process that writes checkpoints and logs

    def prepare(self, recipe: Any) -> None:
        """Before the optimisers are built (FSDP shards the recipe's models here)."""

    def export(self, module: nn.Module) -> nn.Module:
        """``module`` as a plain model with its current weights, on the writer (what the loop returns)."""

    def shard_noise(self, noise: NoiseSource, batch_size: int) -> NoiseSource: ...

    def sync_weights(self, *modules: nn.Module) -> None: ...

    def average_gradients(self, module: nn.Module) -> None: ...

    def mean(self, values: Mapping[str, float]) -> dict[str, float]: ...


class Replicated:
    """Every rank holds whole models: nothing to prepare, nothing to gather."""

    def prepare(self, recipe: Any) -> None:
        pass

    def export(self, module: nn.Module) -> nn.Module:
        return module


class SingleProcess(Replicated):
    """A world of one: every operation is the identity."""

    writer = True

    def shard_noise(self, noise: NoiseSource, batch_size: int) -> NoiseSource:
        return noise

    def sync_weights(self, *modules: nn.Module) -> None:
        pass

    def average_gradients(self, module: nn.Module) -> None:
        pass

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        return dict(values)


class DataParallel(Replicated):
    """Ranks of an initialised process group (torchrun); rank 0 is the writer."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist, self.world = dist, dist.get_world_size()
        self.writer = is_rank_zero()
        nccl = dist.get_backend() == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")

    def shard_noise(self, noise: NoiseSource, batch_size: int) -> NoiseSource:
        if batch_size % self.world:
            raise ConfigError(
                f"train.batch_size {batch_size} does not split evenly over {self.world} ranks; "
                f"use a multiple of {self.world}"
            )
        return ShardedNoise(noise.generator, batch_size, shard(batch_size))

    @torch.no_grad()
    def sync_weights(self, *modules: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (what DDP does when it wraps a model)."""
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                here = tensor.data.to(self.device)
                self.dist.broadcast(here, src=0)
                tensor.data.copy_(here)

    @torch.no_grad()
    def average_gradients(self, module: nn.Module) -> None:
        """Mean gradient over ranks, one flat all-reduce per dtype; ranks must agree on which exist."""
        params = list(module.parameters())
        present = torch.tensor([p.grad is not None for p in params], dtype=torch.int64, device=self.device)
        self.dist.all_reduce(present)
        if bool(((present != 0) & (present != self.world)).any()):
            raise RuntimeError("ranks disagree on which parameters received a gradient this step")
        by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p)
        for group in by_dtype.values():
            flat = torch.cat([p.grad.reshape(-1).to(self.device) for p in group])
            self.dist.all_reduce(flat)
            flat /= self.world
            offset = 0
            for p in group:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """The mean over ranks of each value (same keys on every rank): the full batch's loss terms."""
        if not values:
            return {}
        flat = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        self.dist.all_reduce(flat)
        return dict(zip(values, (flat / self.world).tolist()))

