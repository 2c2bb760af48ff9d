"""Evaluation fed batch by batch, possibly by several ranks: the evaluator decides what is kept.

A pipeline samples and decodes its videos a batch at a time and hands each batch to a collector; rank
0 scores once every rank has closed its collector. Two kinds of evaluator, two collectors:

* an array evaluator (the world ``Evaluator`` protocol: ``score`` / ``aggregate``, optionally
  ``evaluate`` with a real reference) scores uint8 arrays. :class:`ArrayCollector` keeps the batches in
  memory; ranks other than 0 write theirs to one ``.npz`` file each, which rank 0 reads back. Right for
  videos as small as sprites'.
* a :class:`FolderEvaluator` (VBench) scores a folder of mp4s with sidecars. :class:`FolderCollector`
  writes every video there as soon as it is decoded, so no rank holds more than one batch; a video
  whose sidecar exists was written completely (both files are written atomically, the sidecar last)
  and is not sampled again when an interrupted run resumes.

The folder is the rendezvous: each rank writes ``rank-<r>-of-<n>.done`` when its part is there, and
rank 0 waits for every marker by polling it (no collective timeout, however long a shard takes).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.io.atomic import atomic_write_bytes
from harness.io.video import SampleMeta, sidecar_path, write_video
from harness.parallel import ranks

VIDEOS = "videos"  # the collected videos, inside the collector's folder
SCORES = "scores"  # a folder evaluator's own output (VBench's staging, logs and results)

Reference = Callable[[], "tuple[np.ndarray, list[str]] | None"]  # real videos and prompts, built on demand


@runtime_checkable
class FolderEvaluator(Protocol):
    """An evaluator that scores a folder of mp4s with sidecars (``harness.io.video``), written at ``fps``."""

    fps: float

    def check(self) -> None:
        """Raise now, before hours of sampling, if scoring could not run (missing tool or weights)."""

    def score_folder(self, folder: Path, output_dir: Path) -> dict[str, float]:
        """Raw scores of every video in ``folder``; ``output_dir`` takes the evaluator's own files."""

    def aggregate(self, raw: Mapping[str, float]) -> dict[str, float]: ...


def score_arrays(evaluator: Any, videos: np.ndarray, prompts: list[str],
                 reference: tuple[np.ndarray, list[str]] | None) -> dict[str, float]:
    """Raw and aggregated scores of an array evaluator, with distribution scores where it has them."""
    if hasattr(evaluator, "evaluate"):
        result = evaluator.evaluate(videos, prompts, *(reference or (None, None)))
        return {**result.raw, **result.scores, **getattr(result, "distribution", {})}
    raw = evaluator.score(videos, prompts)
    return {**raw, **evaluator.aggregate(raw)}


class _Collector:
    """What both collectors share: the folder, this rank's marker, and rank 0's wait for the others."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.videos_dir = self.folder / VIDEOS

    def _marker(self, rank: int) -> Path:
        return self.videos_dir / f"rank-{rank}-of-{ranks.world_size()}.done"

    def prepare(self) -> None:
        """Rank 0, before any rank adds: forget the markers and shards of an earlier attempt."""
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        stale = ("rank-*.done", "shard-*.npz", ".*.tmp*")  # markers, shards, a killed rank's partial files
        for path in [p for pattern in stale for p in self.videos_dir.glob(pattern)]:
            path.unlink(missing_ok=True)

    def done(self, indices: Sequence[int]) -> bool:
        """Whether these videos are collected already (by an earlier attempt)."""
        return False

    def close(self) -> None:
        """This rank has added every video of its part."""
        atomic_write_bytes(self._marker(ranks.rank()), b"", durable=False)

    def wait(self, on_wait: Callable[[], None] | None = None) -> None:
        """Rank 0: block until every rank has closed."""
        markers = [self._marker(r) for r in range(ranks.world_size())]
        ranks.wait_for_files(markers, on_wait=on_wait)

    def remove(self) -> None:
        """Rank 0, once scored: the folder is scratch."""
        shutil.rmtree(self.folder, ignore_errors=True)


class ArrayCollector(_Collector):
    """Batches kept as arrays; see the module docstring."""

    def __init__(self, folder: Path, evaluator: Any) -> None:
        super().__init__(folder)
        self.evaluator = evaluator
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []  # (global indices, uint8 videos)

    def add(self, videos: np.ndarray, metas: Sequence[SampleMeta], indices: Sequence[int]) -> None:
        self.parts.append((np.asarray(indices, dtype=np.int64), np.asarray(videos)))

    def close(self) -> None:
        if not ranks.is_rank_zero():
            buffer = io.BytesIO()
            np.savez(buffer, **self._joined())
            shard = self.videos_dir / f"shard-{ranks.rank()}.npz"
            atomic_write_bytes(shard, buffer.getvalue(), durable=False)
        super().close()

    def _joined(self) -> dict[str, np.ndarray]:
        if not self.parts:
            return {"indices": np.zeros(0, np.int64), "videos": np.zeros((0, 0, 0, 0, 3), np.uint8)}
        return {"indices": np.concatenate([i for i, _ in self.parts]),
                "videos": np.concatenate([v for _, v in self.parts])}

    def videos(self) -> np.ndarray:
        """Rank 0, after :meth:`wait`: every rank's videos in index order."""
        parts = [self._joined()]
        for r in range(1, ranks.world_size()):
            with np.load(self.videos_dir / f"shard-{r}.npz") as shard:
                parts.append({"indices": shard["indices"], "videos": shard["videos"]})
        parts = [p for p in parts if len(p["indices"])]
        indices = np.concatenate([p["indices"] for p in parts])
        videos = np.concatenate([p["videos"] for p in parts])
        return videos[np.argsort(indices, kind="stable")]

    def score(self, prompts: list[str], reference: Reference) -> dict[str, float]:
        return score_arrays(self.evaluator, self.videos(), prompts, reference())


class FolderCollector(_Collector):
    """Batches written as ``<index>.mp4`` + sidecar for a :class:`FolderEvaluator` (module docstring)."""

    def __init__(self, folder: Path, evaluator: FolderEvaluator) -> None:
        super().__init__(folder)
        self.evaluator = evaluator

    def prepare(self) -> None:
        self.evaluator.check()
        super().prepare()

    def _path(self, index: int) -> Path:
        return self.videos_dir / f"{index:06d}.mp4"

    def done(self, indices: Sequence[int]) -> bool:
        return all(sidecar_path(self._path(i)).is_file() for i in indices)

    def add(self, videos: np.ndarray, metas: Sequence[SampleMeta], indices: Sequence[int]) -> None:
        for video, meta, index in zip(videos, metas, indices, strict=True):
            write_video(self._path(index), video, fps=self.evaluator.fps, meta=meta)

    def score(self, prompts: list[str], reference: Reference) -> dict[str, float]:
        """The folder's scores; a folder evaluator has no real-video reference, so none is built."""
        raw = self.evaluator.score_folder(self.videos_dir, self.folder / SCORES)
        return {**raw, **self.evaluator.aggregate(raw)}


def collector_for(evaluator: Any, folder: Path) -> ArrayCollector | FolderCollector:
    """The collector an evaluator asks for: a folder of mp4s if it scores folders, else arrays."""
    if isinstance(evaluator, FolderEvaluator):
        return FolderCollector(folder, evaluator)
    return ArrayCollector(folder, evaluator)
