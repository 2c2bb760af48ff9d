"""Pieces every pipeline shares: the eval prompts, the real reference, flat metrics, saved samples."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from harness.engine.pipeline import Pipeline, RunContext
from harness.errors import ConfigError
from harness.io.video import SampleMeta, write_video
from harness.worlds.base import World

# What every pipeline adds to the evaluator's scores.
ROW_METRICS = frozenset({"nfe", "latency_s"})

REFERENCE_SEED = 10_000  # real videos the distribution scores compare against; the same for every run
REFERENCE_PER_PROMPT = 2  # real videos per eval prompt in the distribution reference
# A row's evaluation set: the paper's VBench rows are ~5k videos per model; far beyond that is a typo.
MAX_ROW_VIDEOS = 200_000


class WorldPipeline(Pipeline):
    """A pipeline whose rows are scored by its world's evaluator; headline: the evaluator's total."""

    headline = "total"
    world: World
    sample_seed: int

    def noise_seed(self, ctx: RunContext) -> int:
        """Seed of the row's sampling noise (or real clips): the study's seed offset by ``sample_seed``.
        Every row of a seed shares it, so rows pair by seed, and the seeds of a table measure sampling
        spread as well as training spread (a reference row would otherwise repeat one run)."""
        return self.sample_seed + ctx.seed

    def metric_names(self) -> set[str] | None:
        names = self.world.metric_names()
        return None if names is None else set(names) | ROW_METRICS


def check_row_sizes(world: World, *, num_videos: int, videos_per_prompt: int = 1, num_reference: int = 0,
                    save_videos: int = 0, trace_videos: int = 0) -> None:
    """Refuse counts no row can mean, at validation time rather than after hours of training.

    The upper bound names the memory the row's videos would take in backbone space, the least any
    evaluator holds or writes for them.
    """
    counts = {"num_videos": (num_videos, 1), "videos_per_prompt": (videos_per_prompt, 1),
              "num_reference": (num_reference, 0), "save_videos": (save_videos, 0), "trace_videos": (trace_videos, 0)}
    for key, (value, low) in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key} must be a whole number >= {low}, got {value!r}")
    shape = world.video_shape
    per_video = 4 * shape.frames * shape.channels * shape.height * shape.width
    for key in ("num_videos", "num_reference"):
        value = counts[key][0]
        if value > MAX_ROW_VIDEOS:
            raise ConfigError(f"{key}={value} is more than {MAX_ROW_VIDEOS} videos: in backbone space alone they "
                              f"would take {_human_bytes(value * per_video)} ({_human_bytes(per_video)} each)")


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PB"


def reference_videos(world: World, num_reference: int) -> tuple[np.ndarray, list[str]] | None:
    """Real videos the distribution scores compare against, with their prompts (None for 0 of them)."""
    if num_reference <= 0:
        return None
    # the eval prompts, each twice, like the generated rows: reference diversity is then defined
    real_prompts = take_prompts(world.prompts("eval"), num_reference, REFERENCE_PER_PROMPT)
    return world.decode(world.real_videos_of(real_prompts, REFERENCE_SEED)), real_prompts


def flat_metrics(metrics: Mapping[str, float]) -> dict[str, Any]:
    """Finite scores as floats. A score can be undefined for a sample set (diversity needs two samples
    of one prompt): it is left out and named, so tables show it as missing rather than as a number."""
    out: dict[str, Any] = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    undefined = sorted(k for k in metrics if k not in out)
    if undefined:
        out["undefined"] = undefined
    return out


def save_samples(ctx: RunContext, videos: np.ndarray, metas: Sequence[SampleMeta], indices: Sequence[int], *,
                 count: int, fps: float = 8.0) -> list[str]:
    """The videos among the first ``count`` of the row as mp4 with sidecars, named so reports can line
    them up. Any rank may hold them: they go to the run folder itself (a follower's context points its
    own ``samples_dir`` at scratch)."""
    names = []
    for video, meta, index in zip(videos, metas, indices, strict=True):
        if index < count:
            name = f"sample_{index:03d}.mp4"
            ctx.run_dir.samples_dir.mkdir(parents=True, exist_ok=True)
            write_video(ctx.run_dir.samples_dir / name, video, fps=fps, meta=meta)
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
