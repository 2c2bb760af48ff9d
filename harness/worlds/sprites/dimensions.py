"""The sprites-bench dimensions: what each measures, computed per video from detections and fits.

Every function takes an :class:`Observation` and returns float [N] with NaN where the dimension does
not apply to a video (e.g. multiple_objects on a one-object prompt). Names follow VBench where the
meaning is the same; the computations are the sprites world's own (it knows what correct looks like).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.worlds.sprites.detect import Detections, Detector
from harness.worlds.sprites.palette import SHAPES
from harness.worlds.sprites.physics import PhysicsFit
from harness.worlds.sprites.prompts import Scene
from harness.worlds.sprites.render import COLOR_NAMES, DIRECTION_NAMES, UNIT_VELOCITY

MOTION_TOLERANCE = 1.0  # px: a trajectory off the physics by this RMS scores 1/e in motion_smoothness
MIN_SPEED = 0.5  # px/frame: slower objects count as static (dynamic_degree, motion_direction)
RESIDUAL_CAP = 32.0  # RGB distance at which a pixel counts as fully off the clean palette (imaging_quality)


@dataclass(frozen=True)
class Observation:
    """Everything the dimensions read. Tracks are (video, colour) pairs present in >= half the frames."""

    frames: np.ndarray  # float32 [N, T, H, W, 3]
    scenes: list[Scene]
    detections: Detections
    track: np.ndarray  # bool [N, C]
    track_shape: np.ndarray  # int64 [N, C], majority shape of the track, -1 if none
    fit: PhysicsFit  # over the tracks, in np.nonzero(track) order
    track_direction: np.ndarray  # int64 [N, C], initial direction of the fitted motion, -1 if static
    track_rms: np.ndarray  # float64 [N, C], inf where no track
    detector: Detector


def subject_consistency(obs: Observation) -> np.ndarray:
    """Object identity kept across frames: VBench's formula, mean over t >= 1 of
    (cos(f_t, f_{t-1}) + cos(f_t, f_0)) / 2 clipped at 0, where f_t holds every colour's shape-template
    IoUs (zero where the colour is absent). Frames without objects have f = 0 and score 0."""
    n, c, t, k = obs.detections.shape_iou.shape
    feats = obs.detections.shape_iou.transpose(0, 2, 1, 3).reshape(n, t, c * k).astype(np.float64)
    unit = feats / np.maximum(np.linalg.norm(feats, axis=-1, keepdims=True), 1e-12)
    prev = np.clip((unit[:, 1:] * unit[:, :-1]).sum(-1), 0, None)
    first = np.clip((unit[:, 1:] * unit[:, :1]).sum(-1), 0, None)
    return ((prev + first) / 2).mean(-1)


def _background_pair_score(obs: Observation, a: int, b: int, remove_mean: bool) -> np.ndarray:
    """1 - mean |F_a - F_b| / 255 over pixels outside every detected object in both frames."""
    static = ~(obs.detections.object_region[:, a] | obs.detections.object_region[:, b])[..., None]
    fa, fb = obs.frames[:, a], obs.frames[:, b]
    count = np.maximum(static.sum((1, 2, 3)), 1) * 1.0
    if remove_mean:
        fa = fa - (fa * static).sum((1, 2), keepdims=True) / count[:, None, None, None]
        fb = fb - (fb * static).sum((1, 2), keepdims=True) / count[:, None, None, None]
    diff = (np.abs(fa - fb) * static).sum((1, 2, 3)) / (3 * count)
    return 1.0 - diff / 255.0


def background_consistency(obs: Observation) -> np.ndarray:
    """The background stays the same scene: VBench's (previous + first frame) formula on the pixels
    outside the objects, after removing each frame's mean colour, so a global brightness flicker
    (temporal_flickering's business) does not count but a changing pattern or scene does."""
    t = obs.frames.shape[1]
    pairs = [
        (_background_pair_score(obs, i, i - 1, True) + _background_pair_score(obs, i, 0, True)) / 2
        for i in range(1, t)
    ]
    return np.mean(pairs, axis=0)


def temporal_flickering(obs: Observation) -> np.ndarray:
    """VBench's formula (255 - mean_t mean|F_t - F_{t+1}|) / 255, on the static region: pixels outside
    the detected objects in both frames (VBench applies it to videos its static filter selected)."""
    t = obs.frames.shape[1]
    return np.mean([_background_pair_score(obs, i, i + 1, False) for i in range(t - 1)], axis=0)


def motion_smoothness(obs: Observation) -> np.ndarray:
    """Trajectories obey the world's physics: exp(-RMS / 1 px) of the best constant-speed, wall-bouncing
    fit per tracked object, averaged over the video's objects; 0 for a video without objects."""
    scores = np.where(obs.track, np.exp(-obs.track_rms / MOTION_TOLERANCE), 0.0)
    return np.where(obs.track.any(1), scores.sum(1) / np.maximum(obs.track.sum(1), 1), 0.0)


def dynamic_degree(obs: Observation) -> np.ndarray:
    """1 if some tracked object moves at >= MIN_SPEED px/frame (VBench: fraction of dynamic videos)."""
    return (obs.track_direction >= 0).any(1).astype(np.float64)


def imaging_quality(obs: Observation) -> np.ndarray:
    """Sharpness and residual noise against clean renders: clean frames hold only the world's exact
    colours, so 1 - mean(min(d, 32)) / 32 with d each pixel's RGB distance to the nearest known colour,
    after removing the frame's median offset (brightness flicker is temporal_flickering's business).
    Blur leaves mixed colours at every edge; noise leaves them everywhere."""
    frames = obs.frames
    nearest, _ = obs.detector.nearest_distance(frames)
    offset = np.median((frames - obs.detector.known[nearest]).reshape(*frames.shape[:2], -1, 3), axis=2)
    _, dist = obs.detector.nearest_distance(frames - offset[:, :, None, None, :])
    return 1.0 - np.minimum(dist, RESIDUAL_CAP).mean((1, 2, 3)) / RESIDUAL_CAP


def _has_shape(obs: Observation, i: int, shape: int) -> np.ndarray:
    """Per frame: some detected object of video i has this shape."""
    return (obs.detections.shape[i] == shape).any(0)


def object_class(obs: Observation) -> np.ndarray:
    """Fraction of (frame, prompt object) pairs where an object of the prompt's class is detected,
    whatever its colour (VBench counts frames where the object class is found)."""
    return np.asarray(
        [
            np.mean([_has_shape(obs, i, SHAPES.index(o.shape)).mean() for o in s.objects])
            for i, s in enumerate(obs.scenes)
        ]
    )


def multiple_objects(obs: Observation) -> np.ndarray:
    """Two-object prompts only: fraction of frames where both prompt classes are detected at once."""
    out = np.full(len(obs.scenes), np.nan)
    for i, scene in enumerate(obs.scenes):
        if len(scene.objects) < 2:
            continue
        wanted = [SHAPES.index(o.shape) for o in scene.objects]
        counts = [(obs.detections.shape[i] == k).sum(0) for k in wanted]  # [T] each
        need = [wanted.count(k) for k in wanted]
        out[i] = np.all([c >= m for c, m in zip(counts, need)], axis=0).mean()
    return out


def color(obs: Observation) -> np.ndarray:
    """Among frames where an object of the prompt's class is detected, the fraction where it has the
    prompt's colour (VBench's conditioning); NaN for a video where no prompt class is ever found."""
    out = np.full(len(obs.scenes), np.nan)
    for i, scene in enumerate(obs.scenes):
        rates = []
        for obj in scene.objects:
            shape = SHAPES.index(obj.shape)
            found = _has_shape(obs, i, shape)
            if found.any():
                right = obs.detections.shape[i, COLOR_NAMES.index(obj.color)] == shape
                rates.append((right & found).sum() / found.sum())
        if rates:
            out[i] = np.mean(rates)
    return out


def motion_direction(obs: Observation) -> np.ndarray:
    """Fraction of prompt objects (with a direction word) whose fitted initial motion goes that way;
    the object is the track of the prompt's colour, else one of the prompt's class."""
    out = np.full(len(obs.scenes), np.nan)
    for i, scene in enumerate(obs.scenes):
        hits = []
        for obj in (o for o in scene.objects if o.direction is not None):
            c = COLOR_NAMES.index(obj.color)
            if not obs.track[i, c]:
                same_class = np.nonzero(obs.track[i] & (obs.track_shape[i] == SHAPES.index(obj.shape)))[0]
                c = same_class[0] if len(same_class) else -1
            hits.append(c >= 0 and obs.track_direction[i, c] == DIRECTION_NAMES.index(obj.direction))
        if hits:
            out[i] = np.mean(hits)
    return out


def direction_of(velocity: np.ndarray) -> np.ndarray:
    """Index into DIRECTION_NAMES of the unit direction closest to each velocity [..., 2]; -1 if slow."""
    closest = (velocity @ UNIT_VELOCITY.T.astype(np.float64)).argmax(-1)
    return np.where(np.linalg.norm(velocity, axis=-1) >= MIN_SPEED, closest, -1)


# name -> (per-video function, raw value when no video applies: None means "refuse to score")
DIMENSIONS: dict[str, tuple[Callable[[Observation], np.ndarray], float | None]] = {
    "subject_consistency": (subject_consistency, None),
    "background_consistency": (background_consistency, None),
    "temporal_flickering": (temporal_flickering, None),
    "motion_smoothness": (motion_smoothness, None),
    "dynamic_degree": (dynamic_degree, None),
    "imaging_quality": (imaging_quality, None),
    "object_class": (object_class, None),
    "color": (color, 0.0),
    "multiple_objects": (multiple_objects, None),
    "motion_direction": (motion_direction, None),
}
