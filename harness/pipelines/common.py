"""Pieces every pipeline shares: evaluating decoded videos and writing samples the reports read."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np

from ..pipeline import Pipeline, RunContext
from ..video import SampleMeta, write_video
from ..worlds.base import Evaluator, World

# What every pipeline adds to the evaluator's scores.
ROW_METRICS = frozenset({"nfe", "latency_s"})

REFERENCE_SEED = 10_000
REFERENCE_PER_PROMPT = 2  # real videos per eval prompt in the distribution reference


class WorldPipeline(Pipeline):
    """A pipeline whose rows are scored by its world's evaluator; headline: the evaluator's total."""

    headline = "total"
    world: World

    def metric_names(self) -> set[str] | None:
        names = self.world.metric_names()
        return None if names is None else set(names) | ROW_METRICS  # real videos the distribution scores compare against; the same for every run


def evaluate_videos(ctx: RunContext, world: World, evaluator: Evaluator, videos: np.ndarray,
                    prompts: list[str], num_reference: int) -> dict[str, Any]:
    """Scores of ``videos`` as flat metrics: total / quality / semantic, every dimension, distribution."""
    ctx.progress(stage="evaluate")
    reference = None
    if num_reference > 0:
        # the eval prompts, each twice, like the generated rows: reference diversity is then defined
        real_prompts = take_prompts(world.prompts("eval"), num_reference, REFERENCE_PER_PROMPT)
        reference = (world.decode(world.real_videos_of(real_prompts, REFERENCE_SEED)), real_prompts)
    if hasattr(evaluator, "evaluate"):
        result = evaluator.evaluate(videos, prompts, *(reference or (None, None)))
        metrics = {**result.raw, **result.scores, **getattr(result, "distribution", {})}
    else:
        raw = evaluator.score(videos, prompts)
        metrics = {**raw, **evaluator.aggregate(raw)}
    # A score can be undefined for a sample set (diversity needs two samples of one prompt): it is
    # left out and named, so tables show it as missing rather than as a number.
    out: dict[str, Any] = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    undefined = sorted(k for k in metrics if k not in out)
    if undefined:
        out["undefined"] = undefined
    return out


def save_samples(ctx: RunContext, videos: np.ndarray, prompts: list[str], *, count: int, method: str,
                 schedule: str, nfe: int, seed: int, fps: float = 8.0) -> list[str]:
    """The first ``count`` videos as mp4 with sidecars, named so reports can line them up."""
    names = []
    for i in range(min(count, len(videos))):
        name = f"sample_{i:03d}.mp4"
        write_video(ctx.samples_dir / name, videos[i], fps=fps,
                    meta=SampleMeta(prompt=prompts[i], seed=seed, method=method, schedule=schedule, nfe=nfe,
                                    extra={"index": i, "run": ctx.run_dir.hash}))
        names.append(f"samples/{name}")
    return names


def take_prompts(prompts: list[str], n: int, per_prompt: int = 1) -> list[str]:
    """``n`` videos' prompts: the first prompts of the list, each ``per_prompt`` times in a row
    (several samples of one prompt are what per-prompt diversity measures); cycles when short."""
    per_prompt = max(1, per_prompt)
    return [prompts[(i // per_prompt) % len(prompts)] for i in range(n)]


def timed(fn: Callable[[], Any], repeats: int = 2) -> tuple[Any, float]:
    """Result of ``fn`` and its best wall time over ``repeats`` calls (the first one warms up caches)."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def component_config(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A plugin's resolved config inside the pipeline's, for stage keys."""
    return dict((config.get("init_args") or {}).get(key) or {})
