"""How ranks share the models while training, by name: the ``parallel`` setting of the methods' trainer.

A registry apart from the strategies themselves, so ``fsdp`` can build on ``data_parallel`` without
either importing the other back.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.errors import ConfigError
from harness.parallel.data_parallel import DataParallel, Ranks, SingleProcess
from harness.parallel.fsdp import FullyShardedRanks
from harness.parallel.ranks import is_distributed

STRATEGIES: dict[str, Callable[[], Ranks]] = {"ddp": DataParallel, "fsdp": FullyShardedRanks}


def training_ranks(strategy: str = "ddp") -> Ranks:
    """The process group this process trains in: ``strategy`` (a key of :data:`STRATEGIES`) under
    torchrun, else a world of one."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"parallel strategy '{strategy}' is unknown; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[strategy]() if is_distributed() else SingleProcess()
