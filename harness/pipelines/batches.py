"""How a row's evaluation videos are split: fixed batches, a contiguous run of them per rank, and
noise drawn per video.

Video ``i`` draws its noise from its own stream, seeded by ``(sample_seed, i)``, so it is the same
video whatever the batch size (a memory setting) and however many ranks share the work. Batches are
fixed by the video count and the batch size alone, and ranks take whole batches; what a world draws
per call rather than per video (the real-data row's choice of clips) is seeded per batch, so it
depends on the batch size but never on the number of ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from harness.diffusion.sampling import NoiseSource
from harness.errors import ConfigError
from harness.parallel.ranks import share

_VIDEO_STREAM, _BATCH_STREAM = 1, 2  # keep per-video and per-batch seeds apart


def derived_seed(seed: int, stream: int, index: int) -> int:
    """A well-mixed 63-bit seed for item ``index`` of ``stream`` under ``seed`` (any int, negatives too)."""
    words = [seed & (2**64 - 1), stream, index]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def video_seed(seed: int, index: int) -> int:
    """The seed of video ``index``'s noise stream."""
    return derived_seed(seed, _VIDEO_STREAM, index)


class PerVideoNoise(NoiseSource):
    """A batch's noise as independent per-video streams: a draw of shape ``[n, ...]`` stacks each
    video's own draw of ``[...]``, so a video's noise does not depend on the videos batched with it.

    Only per-video draws exist: a draw of another shape, or a shared integer, has no per-video meaning
    and is refused. ``spawn`` spawns every video's stream (the sampler's per-chunk streams).
    """

    def __init__(self, sources: Sequence[NoiseSource], label: str = "per-video noise") -> None:
        if not sources:
            raise ValueError("per-video noise needs at least one video")
        self.sources, self.label = list(sources), label  # no generator of its own: every draw is overridden

    @classmethod
    def of_videos(cls, seed: int, indices: Sequence[int]) -> PerVideoNoise:
        first, last = indices[0], indices[-1]
        return cls([NoiseSource(video_seed(seed, i)) for i in indices],
                   f"per-video noise of sample seed {seed}, videos {first}..{last}")

    def __len__(self) -> int:
        return len(self.sources)

    def __str__(self) -> str:
        return self.label

    def _check(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        if not shape or shape[0] != len(self.sources):
            raise ValueError(f"{self.label}: a draw of shape {list(shape)} is not one row per video "
                             f"({len(self.sources)} videos)")
        return shape[1:]

    def normal(self, shape: Sequence[int], device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        row = self._check(shape)
        return torch.stack([s.normal(row, "cpu", dtype) for s in self.sources]).to(device)

    def uniform(self, shape: Sequence[int]) -> torch.Tensor:
        row = self._check(shape)
        return torch.stack([s.uniform(row) for s in self.sources])

    def integer(self, low: int, high: int) -> int:
        raise ValueError(f"{self.label}: a shared integer draw has no per-video meaning")

    def spawn(self) -> PerVideoNoise:
        return PerVideoNoise([s.spawn() for s in self.sources], self.label)

    def get_state(self) -> torch.Tensor:
        raise ValueError(f"{self.label}: per-video streams are not checkpointed")

    def set_state(self, state: torch.Tensor) -> None:
        raise ValueError(f"{self.label}: per-video streams are not checkpointed")


@dataclass(frozen=True)
class VideoBatch:
    """Batch ``number`` of a row: the global indices ``videos`` of the evaluation set."""

    number: int
    videos: range

    def __len__(self) -> int:
        return len(self.videos)

    def noise(self, seed: int) -> PerVideoNoise:
        """The batch's noise: every video's own stream."""
        return PerVideoNoise.of_videos(seed, self.videos)

    def seed(self, seed: int) -> int:
        """A seed for what a world draws per call (not per video) for this batch."""
        return derived_seed(seed, _BATCH_STREAM, self.number)

    def prompts(self, prompts: Sequence[str]) -> list[str]:
        return [prompts[i] for i in self.videos]


def checked_batch(batch_size: int) -> int:
    """A pipeline's ``sample_batch``, refused unless it is a whole number of videos."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"sample_batch must be a whole number >= 1, got {batch_size!r}")
    return batch_size


def plan_batches(num_videos: int, batch_size: int) -> list[VideoBatch]:
    """Every batch of a row, in order: ``batch_size`` videos each, the last one possibly shorter."""
    checked_batch(batch_size)
    starts = range(0, num_videos, batch_size)
    return [VideoBatch(k, range(s, min(s + batch_size, num_videos))) for k, s in enumerate(starts)]


def my_batches(num_videos: int, batch_size: int) -> list[VideoBatch]:
    """This rank's batches: a contiguous run, the same batches whatever the number of ranks."""
    batches = plan_batches(num_videos, batch_size)
    return [batches[k] for k in share(len(batches))]
