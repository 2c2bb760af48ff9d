"""The pipeline's side of evaluation while training: score a model on a fixed set of train prompts.

:class:`FixedSetScores` is the ``evaluate`` callable a distillation's :class:`~methods.base.TrainContext`
carries (the loop's side is :mod:`harness.training.evaluation`). The set is the world's first train prompts,
one video each, with the hook's own noise seed: a recipe chosen on these curves is never chosen on the
eval prompts and noise the study reports.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import nn

from harness.errors import ConfigError
from harness.evaluation.streaming import FolderEvaluator, score_arrays
from harness.pipelines.batches import plan_batches
from harness.pipelines.common import flat_metrics, take_prompts
from harness.worlds.base import StageProvider, World
from methods.base import Method


class FixedSetScores:
    """Sample ``num_videos`` train prompts at a schedule with ``method``, decode, score (no reference set)."""

    def __init__(self, world: World, method: Method, stages: StageProvider, batch_size: int) -> None:
        self.world, self.method, self.stages, self.batch_size = world, method, stages, batch_size
        self._evaluator = None

    def evaluator(self):
        if self._evaluator is None:
            evaluator = self.world.evaluator(self.stages)
            if isinstance(evaluator, FolderEvaluator):
                raise ConfigError(f"train.eval: the {self.world.name} world's evaluator scores folders of mp4s "
                                  "(VBench), too slow to run inside training; set train.eval.every: 0")
            self._evaluator = evaluator
        return self._evaluator

    def __call__(self, model: nn.Module, spec: str, *, num_videos: int, seed: int) -> Mapping[str, float]:
        prompts = take_prompts(self.world.prompts("train"), num_videos)
        schedule = self.method.schedule(spec)
        videos = []
        for batch in plan_batches(num_videos, self.batch_size):
            out = self.method.sample(self.world, model, batch.prompts(prompts), schedule, batch.noise(seed))
            videos.append(self.world.decode(out.videos))
        scores = score_arrays(self.evaluator(), np.concatenate(videos), prompts, None)
        return {k: v for k, v in flat_metrics(scores).items() if isinstance(v, float)}
