"""A row's evaluation videos, sampled and decoded a batch at a time, and scored once.

At paper scale a row is 4730 Wan videos: too many to hold, and hours of sampling that torchrun's ranks
share. :class:`EvalStream` splits them (:mod:`.batches`), has every rank sample, decode and hand its
batches to the evaluator's collector (:mod:`harness.evaluation.streaming`: arrays for cheap evaluators,
a folder of mp4s for VBench), writes the row's first samples to the run folder, and lets rank 0 score
once every rank is done. The collector's folder is ``<run>/eval``, scratch removed once scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harness.engine.pipeline import RunContext
from harness.evaluation.streaming import collector_for
from harness.io.video import SampleMeta
from harness.parallel.ranks import barrier, is_rank_zero, world_size
from harness.pipelines.batches import VideoBatch, my_batches
from harness.pipelines.common import flat_metrics, reference_videos, save_samples, timed
from harness.worlds.base import World

EVAL_FOLDER = "eval"

# (the batch's prompts, the batch) -> (backbone-space videos [n, F, C, H, W], network evaluations per video)
SampleBatch = Callable[[list[str], VideoBatch], "tuple[torch.Tensor, int]"]


@dataclass
class RowSampler:
    """How a row makes the videos of a batch, and the labels its samples carry.

    ``timed``: whether one video's wall time is the row's latency (not for fetched real videos).
    """

    sample: SampleBatch
    method: str
    schedule: str
    timed: bool = True


class EvalStream:
    """One row's evaluation set on this rank: its batches sampled, its part collected; rank 0 scores.

    Building it is a collective under torchrun (every rank must): rank 0 clears what an earlier
    attempt left in the collector's folder before any rank writes there.
    """

    def __init__(self, ctx: RunContext, world: World, prompts: list[str], *, seed: int, batch_size: int,
                 save_videos: int, num_reference: int) -> None:
        self.ctx, self.world, self.prompts, self.seed = ctx, world, prompts, seed
        self.save_videos, self.num_reference = save_videos, num_reference
        self.batches = my_batches(len(prompts), batch_size)
        self.evaluator = world.evaluator(ctx)
        self.collector = collector_for(self.evaluator, ctx.run_dir.path / EVAL_FOLDER)
        if is_rank_zero():
            self.collector.prepare()
        barrier()

    def sample(self, row: RowSampler) -> None:
        """Sample, decode, save and collect this rank's batches (skipping any an earlier attempt
        collected), then tell rank 0 this part is done."""
        for step, batch in enumerate(self.batches):
            self.ctx.progress(stage=f"sample {row.method} {row.schedule}", step=step, total=len(self.batches))
            if self.collector.done(batch.videos):
                continue
            with torch.no_grad():
                x, nfe = row.sample(batch.prompts(self.prompts), batch)
            videos = self.world.decode(x)
            metas = [SampleMeta(prompt=self.prompts[i], seed=self.seed, method=row.method,
                                schedule=row.schedule, nfe=nfe, extra={"index": i, "run": self.ctx.run_dir.hash})
                     for i in batch.videos]
            save_samples(self.ctx, videos, metas, batch.videos, count=self.save_videos)
            self.collector.add(videos, metas, batch.videos)
        self.collector.close()

    def measure(self, row: RowSampler) -> tuple[int, float]:
        """Network evaluations per video, and the row's latency: the best wall time of one video."""
        first = VideoBatch(0, range(1))
        with torch.no_grad():
            (_, nfe), seconds = timed(lambda: row.sample(self.prompts[:1], first),
                                      repeats=2 if row.timed else 1)
        return nfe, seconds if row.timed else 0.0

    def scores(self) -> dict[str, Any]:
        """Rank 0: every rank's videos scored once all are collected; the scratch folder removed."""
        if world_size() > 1:
            self.ctx.progress(stage="evaluate (waiting for every rank's videos)")
        self.collector.wait()
        self.ctx.progress(stage="evaluate")
        metrics = self.collector.score(self.prompts, lambda: reference_videos(self.world, self.num_reference))
        self.collector.remove()
        out = flat_metrics(metrics)
        groups = getattr(self.evaluator, "groups", None)
        if groups:  # the evaluator's quality/semantic split, so reports group columns without knowing the world
            out["dimension_groups"] = dict(groups)
        return out
