"""``SpritesBench``: the sprites world's evaluator, labelled ``sprites-bench`` (never VBench).

Pipeline per chunk of videos: detect objects per colour and frame (detect.py), keep colours present in
at least half the frames as tracks, fit each track with the world's physics (physics.py), then compute
every dimension per video (dimensions.py, where each one's meaning is documented) and average over the
videos a dimension applies to. Aggregation follows VBench's formula (scoring.py). With a feature
classifier and real reference videos it adds the distribution scores (distribution.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.errors import ConfigError
from harness.worlds.sprites.detect import Detector
from harness.worlds.sprites.dimensions import DIMENSIONS, Observation, direction_of
from harness.worlds.sprites.palette import SHAPES
from harness.worlds.sprites.physics import fit_trajectories
from harness.worlds.sprites.prompts import parse_prompt
from harness.worlds.sprites.render import COLOR_NAMES, DIRECTION_NAMES
from harness.worlds.sprites.scoring import LABEL, SCORING_TABLE, SPRITES_BENCH, aggregate, normalize
from harness.worlds.sprites.world_config import SpritesConfig

CHUNK = 64


@dataclass
class SpritesBenchResult:
    raw: dict[str, float]
    normalized: dict[str, float]
    scores: dict[str, float]  # quality, semantic, total
    per_video: list[dict] = field(default_factory=list)
    distribution: dict[str, float] = field(default_factory=dict)
    label: str = LABEL

    def summary(self) -> dict[str, float]:
        """Flat dict for trackers and result files, keys prefixed with the label."""
        flat = {**self.scores, **self.raw, **self.distribution}
        return {f"{LABEL}/{k}": float(v) for k, v in flat.items()}


class SpritesBench:
    """Evaluator protocol: ``dimensions``, ``score(videos, prompts) -> {dimension: raw}``, ``aggregate``."""

    label = name = LABEL
    dimensions: tuple[str, ...] = tuple(SCORING_TABLE)
    groups: dict[str, str] = SPRITES_BENCH.groups()

    def __init__(self, cfg: SpritesConfig | None = None, classifier=None) -> None:
        self.cfg = cfg or SpritesConfig()
        self.detector = Detector(self.cfg)
        self.classifier = classifier

    def score(self, videos: np.ndarray, prompts: list[str]) -> dict[str, float]:
        return self._raw(self.per_video(videos, prompts))

    def aggregate(self, raw: dict[str, float]) -> dict[str, float]:
        return aggregate(raw)

    def evaluate(
        self,
        videos: np.ndarray,
        prompts: list[str],
        reference_videos: np.ndarray | None = None,
        reference_prompts: list[str] | None = None,
    ) -> SpritesBenchResult:
        """Raw, normalised and aggregated scores with per-video details; distribution scores when a
        classifier was given and real ``reference_videos`` are passed."""
        per_video = self.per_video(videos, prompts)
        raw = self._raw(per_video)
        result = SpritesBenchResult(raw, normalize(raw), aggregate(raw), per_video["details"])
        if self.classifier is not None and reference_videos is not None:
            from harness.worlds.sprites.distribution import distribution_scores

            result.distribution = distribution_scores(
                self.classifier, videos, prompts, reference_videos, reference_prompts
            )
        return result

    def per_video(self, videos: np.ndarray, prompts: list[str]) -> dict:
        """{dimension: float [N] (NaN where it does not apply), 'details': [per-video dict]}."""
        videos = self._check(videos, prompts)
        scenes = [parse_prompt(p) for p in prompts]
        columns = {name: [] for name in DIMENSIONS}
        details: list[dict] = []
        for lo in range(0, len(videos), CHUNK):
            obs = self.observe(videos[lo : lo + CHUNK], scenes[lo : lo + CHUNK])
            for name, (fn, _) in DIMENSIONS.items():
                columns[name].append(fn(obs))
            details.extend(_describe(obs))
        out: dict = {name: np.concatenate(parts) for name, parts in columns.items()}
        for i, row in enumerate(details):
            row.update({"prompt": prompts[i], **{d: float(out[d][i]) for d in DIMENSIONS}})
        out["details"] = details
        return out

    def observe(self, videos: np.ndarray, scenes: list) -> Observation:
        """Detections, tracks and physics fits for one chunk of uint8 videos."""
        det = self.detector(videos)
        frames = videos.shape[1]
        track = det.present.sum(-1) >= math.ceil(frames / 2)
        shapes = np.where(det.present, det.shape, -1)
        votes = np.stack([(shapes == k).sum(-1) for k in range(len(SHAPES))], -1)  # [N, C, K]
        track_shape = np.where(track & (votes.max(-1) > 0), votes.argmax(-1), -1)
        fit = fit_trajectories(
            det.top_left[track], det.present[track], self.cfg.travel, self.cfg.speed_max + 1.0
        )
        track_direction = np.full(track.shape, -1)
        track_direction[track] = direction_of(fit.velocity)
        track_rms = np.full(track.shape, np.inf)
        track_rms[track] = fit.rms
        return Observation(
            videos.astype(np.float32),
            scenes,
            det,
            track,
            track_shape,
            fit,
            track_direction,
            track_rms,
            self.detector,
        )

    def _raw(self, per_video: dict) -> dict[str, float]:
        raw = {}
        for name, (_, empty_value) in DIMENSIONS.items():
            values = per_video[name]
            applicable = values[~np.isnan(values)]
            raw[name] = (
                float(applicable.mean())
                if len(applicable)
                else (float("nan") if empty_value is None else empty_value)
            )
        return raw

    def _check(self, videos: np.ndarray, prompts: list[str]) -> np.ndarray:
        videos = np.asarray(videos)
        res = self.cfg.resolution
        if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[2:] != (res, res, 3):
            raise ConfigError(
                f"{LABEL}: videos must be uint8 [N, T, {res}, {res}, 3], got {videos.dtype} {list(videos.shape)}"
            )
        if videos.shape[1] < 3:
            raise ConfigError(f"{LABEL}: videos need at least 3 frames, got {videos.shape[1]}")
        if len(prompts) != len(videos):
            raise ConfigError(f"{LABEL}: {len(videos)} videos but {len(prompts)} prompts")
        return videos


def _describe(obs: Observation) -> list[dict]:
    """Per video: the tracked objects as the evaluator saw them."""
    rows = []
    for i in range(obs.track.shape[0]):
        objects = []
        for c in np.nonzero(obs.track[i])[0]:
            shape, direction = obs.track_shape[i, c], obs.track_direction[i, c]
            objects.append(
                {
                    "color": COLOR_NAMES[c],
                    "shape": SHAPES[shape] if shape >= 0 else None,
                    "direction": DIRECTION_NAMES[direction] if direction >= 0 else None,
                    "trajectory_rms_px": float(obs.track_rms[i, c]),
                }
            )
        rows.append({"objects": objects})
    return rows


def noise_floor(cfg: SpritesConfig | None = None, n: int = 64, seed: int = 0) -> dict[str, float]:
    """Raw scores of uniform-noise videos: the chance floor behind SCORING_TABLE's ``min`` values."""
    from harness.worlds.sprites.data import SpritesData

    data = SpritesData(cfg)
    rendered = data.render(n, seed, split="eval")
    noise = np.random.default_rng(seed).integers(0, 256, size=rendered.videos.shape, dtype=np.uint8)
    return SpritesBench(data.cfg).score(noise, rendered.prompts)
