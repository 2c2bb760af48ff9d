"""The stage cache as one rank of a torchrun group sees it: rank 0 builds and writes, the others wait.

A build that holds collectives (data-parallel training) is marked with :func:`every_rank` and runs on
every rank in rank 0's build folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.engine.stages import Artifact, StageCache
from harness.parallel.ranks import barrier, broadcast_object, is_rank_zero


class EveryRank:
    """A stage build every rank must run because it holds collectives (data-parallel training)."""

    def __init__(self, build: Callable[[Path], Any]) -> None:
        self.build = build

    def __call__(self, folder: Path) -> Any:
        return self.build(folder)


def every_rank(build: Callable[[Path], Any]) -> EveryRank:
    """Mark a stage build as collective; outside torchrun it is the build itself."""
    return EveryRank(build)


class RankStageCache(StageCache):
    """The stage cache one rank of a torchrun group sees; rank 0 alone writes artifacts.

    A plain build runs on rank 0 alone, under the usual lock; the other ranks wait for its manifest
    (polling the folder, so a long build hits no collective timeout). An :func:`every_rank` build runs
    on every rank in rank 0's build folder — rank 0 holds the lock, tells the others the folder, and
    publishes the artifact once every rank has finished. If rank 0 fails, torchrun stops the others.
    """

    poll_s = 0.5

    def get(self, name: str, config: Any, build: Callable[[Path], Any], inputs: Iterable[Artifact | str] = (),
            *, on_wait: Callable[[], None] | None = None, version: int = 1) -> Artifact:
        inputs = list(inputs)
        if isinstance(build, EveryRank):
            return self._collective(name, config, build, inputs, on_wait, version)
        if is_rank_zero():
            return super().get(name, config, build, inputs, on_wait=on_wait, version=version)
        return self._published(name, config, inputs, version, wait=True)

    def _collective(self, name: str, config: Any, build: EveryRank, inputs: list, on_wait: Any,
                    version: int) -> Artifact:
        if not is_rank_zero():
            folder = broadcast_object(None)
            if folder is not None:
                build(Path(folder))
                barrier()  # done writing into the build folder
                barrier()  # rank 0 has published the artifact
            return self._published(name, config, inputs, version, wait=False)
        started: list[Path] = []

        def lead(folder: Path) -> None:
            broadcast_object(str(folder))
            started.append(folder)
            build(folder)
            barrier()

        artifact = super().get(name, config, lead, inputs, on_wait=on_wait, version=version)
        if started:
            barrier()
        else:  # built before: nothing for the other ranks to do
            broadcast_object(None)
        return artifact

    def _published(self, name: str, config: Any, inputs: list, version: int, *, wait: bool) -> Artifact:
        while True:
            found = self.lookup(name, config, inputs, version)
            if found is not None:
                return found
            if not wait:
                raise RuntimeError(f"stage '{name}' was not published by rank 0")
            time.sleep(self.poll_s)
