"""FSDP2 for the shared training loop: each transformer block one shard unit, then the root.

Why shard at all: the paper's models do not fit replicated. The 1.3B student alone is 21 GiB as fp32
weights plus AdamW moments, the critic the same again, the frozen 14B teacher 28 GiB in bf16; DDP would
hold all of that on every GPU next to the activations of a 21-frame rollout. With ``fully_shard`` each
rank keeps 1/N of every parameter and of its optimiser state, and only one block's full weights exist at a
time (all-gathered before the block, freed after it). Per block, not Self Forcing's size-based FSDP1
policy, under which the whole 1.3B transformer is a single unit
(docs/references.md#self-forcings-training-recipe); the torchtitan / FastVideo layout is per block then
the root.

* **Policy**: a module that lists its units with ``fsdp_units()`` (``WanBackbone``: its transformer
  blocks) gets one unit per entry and then the root; a container with no ``forward`` of its own (ASD's
  ``ModuleDict`` critic: fake score + discriminator head) has each child sharded as its own root,
  since a root's parameters are only gathered when its forward runs; any other module is one unit.
* **Precision**: on GPUs bf16 compute (parameters all-gathered in bf16), fp32 gradient reduction and
  fp32 outputs, while the sharded parameters — the master weights the optimiser updates — keep their
  own dtype (fp32 for the student and critic). On CPUs (the gloo tests) fp32 throughout.
* **State**: checkpoints keep the single-process format. :func:`gather_state` turns every DTensor
  of a state dict (model, optimiser, EMA) into its full tensor — a collective every rank joins, only
  the writer keeping the result — and :func:`scatter_state` / :func:`load_optimizer_state`
  distribute full tensors like the live sharded ones. Plain tensors pass through both untouched, so
  the training loop calls them unconditionally and a run resumes on any number of ranks.

:class:`FullyShardedRanks` is the ``fsdp`` strategy of :func:`harness.parallel.strategies.training_ranks`
(``train: {parallel: fsdp}``): the loop's :class:`~harness.parallel.data_parallel.DataParallel` with sharding
in ``prepare`` and a gathered plain copy of the generator in ``export``. A run gets ranks by asking
for ``resources: {gpus: N}``: every executor then launches it as ``python -m torch.distributed.run
--nproc_per_node=N --standalone -m harness.engine.runner JOB OUTCOME`` (:mod:`harness.executors`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from harness.parallel.data_parallel import DataParallel

PRECISIONS = ("auto", "bf16", "fp32")


def _dtensor_type() -> type | None:
    if not torch.distributed.is_available():
        return None
    from torch.distributed.tensor import DTensor

    return DTensor


def mixed_precision(device: torch.device, precision: str = "auto") -> Any:
    """The ``MixedPrecisionPolicy``: bf16 compute / fp32 reduce and outputs on GPU (``auto``), fp32 on CPU."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision not in PRECISIONS:
        from harness.errors import ConfigError

        raise ConfigError(f"FSDP precision '{precision}' is unknown; choose one of {list(PRECISIONS)}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                output_dtype=torch.float32)


def has_own_forward(module: nn.Module) -> bool:
    return type(module).forward is not nn.Module.forward


def shard_module(module: nn.Module, mesh: Any, policy: Any) -> nn.Module:
    """``fully_shard`` ``module`` in place by the policy of the module docstring; returns it."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if isinstance(module, FSDPModule):
        return module  # a teacher shared by two recipes of one process is sharded once
    if not has_own_forward(module):
        for child in module.children():
            shard_module(child, mesh, policy)
        return module
    units = getattr(module, "fsdp_units", None)
    for unit in units() if callable(units) else ():
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(module, mesh=mesh, mp_policy=policy)
    return module


# -- state dicts in the single-process format ------------------------------------------------------


def gather_state(state: Any, *, keep: bool = True) -> Any:
    """``state`` (nested dicts / lists of tensors) with every DTensor replaced by its full tensor.

    A collective when DTensors are present: every rank calls it with the same structure; ranks with
    ``keep=False`` join the all-gathers and get None back (holding N full copies of a 1.3B model and its
    optimiser on one node's CPUs is what sharding avoids). Full tensors are moved to the CPU.
    """
    dtensor = _dtensor_type()

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(walk(v) for v in value)
        if dtensor is not None and isinstance(value, dtensor):
            full = value.full_tensor()
            return full.cpu() if keep else None
        return value

    gathered = walk(state)
    return gathered if keep else None


def _like(full: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``full`` distributed like ``reference`` when that is a DTensor (every rank holds ``full``)."""
    dtensor = _dtensor_type()
    if dtensor is None or not isinstance(reference, dtensor):
        return full
    from torch.distributed.tensor import distribute_tensor

    mesh = reference.device_mesh
    local = full.to(device=mesh.device_type, dtype=reference.dtype)
    return distribute_tensor(local, mesh, reference.placements, src_data_rank=None)


def scatter_state(module: nn.Module, full: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for ``module.load_state_dict``: ``full`` distributed like the module's own state.

    Keys are passed through as they are, so a strict ``load_state_dict`` still names missing and
    unexpected tensors.
    """
    reference = module.state_dict()
    return {key: _like(value, reference[key]) if key in reference else value for key, value in full.items()}


def load_optimizer_state(optimiser: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """``optimiser.load_state_dict`` of a full (single-process format) state, each per-parameter tensor
    distributed like its parameter."""
    params = [p for group in optimiser.param_groups for p in group["params"]]
    per_param = dict(state.get("state", {}))
    for index, values in per_param.items():
        param = params[int(index)]
        per_param[index] = {
            name: _like(v, param) if torch.is_tensor(v) and v.shape == param.shape else v
            for name, v in values.items()
        }
    optimiser.load_state_dict({**state, "state": per_param})


# -- the training loop's strategy ------------------------------------------------------------------


class FullyShardedRanks(DataParallel):
    """Data parallel over an initialised process group, with FSDP2-sharded models.

    The batch, the logged means and rank 0's role as the writer are :class:`DataParallel`'s. Models are
    broadcast from rank 0 once, then sharded (``prepare``); FSDP reduces gradients itself (mean over
    ranks), so ``average_gradients`` and ``sync_weights`` have nothing left to do.
    """

    def __init__(self, precision: str = "auto") -> None:
        super().__init__()
        from torch.distributed.device_mesh import init_device_mesh

        self.mesh = init_device_mesh(self.device.type, (self.world,))
        self.policy = mixed_precision(self.device, precision)
        self._plain: dict[int, nn.Module] = {}

    def prepare(self, recipe: Any) -> None:
        """Shard the generator, the critic and the recipe's frozen ``teacher`` (when it has one).

        The writer first keeps an unsharded CPU copy of the generator: what :meth:`export` fills with the
        gathered weights at the end.
        """
        critic = getattr(recipe, "critic", None)
        DataParallel.sync_weights(self, *(m for m in (recipe.generator, critic) if m is not None))
        if self.writer:
            self._plain[id(recipe.generator)] = copy.deepcopy(recipe.generator).cpu()
        teacher = getattr(recipe, "teacher", None)
        for module in (recipe.generator, critic, teacher):
            if module is not None:
                shard_module(module, self.mesh, self.policy)

    def sync_weights(self, *modules: nn.Module) -> None:
        pass  # every rank loaded the same weights (broadcast in prepare, or one checkpoint file)

    def average_gradients(self, module: nn.Module) -> None:
        pass  # reduce-scattered (and averaged) by FSDP during backward

    def export(self, module: nn.Module) -> nn.Module:
        """The writer's unsharded copy of ``module`` with its current weights; other ranks get ``module``.

        A collective (every rank gathers)."""
        full = gather_state(module.state_dict(), keep=self.writer)
        if not self.writer:
            return module
        plain = self._plain.get(id(module))
        if plain is None:
            raise RuntimeError("FullyShardedRanks.export: the module was not sharded by prepare()")
        plain.load_state_dict(full)
        return plain
