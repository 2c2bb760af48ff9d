"""sprites-bench scoring table and the VBench-style aggregation into Quality / Semantic / Total.

Same formula as VBench (docs/references.md#vbench-scoring): ``norm = (raw - min) / (max - min) * weight``
without clipping, Quality = sum(norm) / sum(weights) over the Quality group, Semantic likewise, and Total
= (4 * Quality + 1 * Semantic) / 5. ``min`` is the chance floor: the raw score of uniform-noise videos at
the default config (``noise_floor`` in evaluator.py recomputes it; a test keeps the two in step), so noise
maps to about 0 and a perfect render to 1. dynamic_degree weighs 0.5, as in VBench. The arithmetic is
harness.evaluation.vbench.ScoringTable's (``SPRITES_BENCH``); this module reports it on a 0-1 scale. The
label is always ``sprites-bench``: these numbers are not comparable with VBench's.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.evaluation.vbench import Dimension, ScoringTable

LABEL = "sprites-bench"
QUALITY, SEMANTIC = "quality", "semantic"  # the group names of harness.evaluation.vbench
GROUP_WEIGHTS = {QUALITY: 4.0, SEMANTIC: 1.0}


@dataclass(frozen=True)
class DimensionScale:
    group: str
    min: float
    max: float
    weight: float


SCORING_TABLE: dict[str, DimensionScale] = {
    "subject_consistency": DimensionScale(QUALITY, 0.0, 1.0, 1.0),
    "background_consistency": DimensionScale(QUALITY, 0.665, 1.0, 1.0),
    "temporal_flickering": DimensionScale(QUALITY, 0.665, 1.0, 1.0),
    "motion_smoothness": DimensionScale(QUALITY, 0.0, 1.0, 1.0),
    "dynamic_degree": DimensionScale(QUALITY, 0.0, 1.0, 0.5),
    "imaging_quality": DimensionScale(QUALITY, 0.0, 1.0, 1.0),
    "object_class": DimensionScale(SEMANTIC, 0.0, 1.0, 1.0),
    "color": DimensionScale(SEMANTIC, 0.0, 1.0, 1.0),
    "multiple_objects": DimensionScale(SEMANTIC, 0.0, 1.0, 1.0),
    "motion_direction": DimensionScale(SEMANTIC, 0.0, 1.0, 1.0),
}


# The same table as a ScoringTable of harness.evaluation.vbench, so the formula lives in one place.
SPRITES_BENCH = ScoringTable(
    LABEL,
    tuple(Dimension(key, s.min, s.max, s.weight, s.group) for key, s in SCORING_TABLE.items()),
    quality_weight=GROUP_WEIGHTS[QUALITY],
    semantic_weight=GROUP_WEIGHTS[SEMANTIC],
)


def normalize(raw: dict[str, float]) -> dict[str, float]:
    """Per-dimension ``(raw - min) / (max - min)`` on a 0-1 scale (unweighted, so dimensions compare);
    a missing or NaN dimension raises ConfigError naming it."""
    return {key: value / 100.0 for key, value in SPRITES_BENCH.score(raw).normalised.items()}


def aggregate(raw: dict[str, float]) -> dict[str, float]:
    """{'quality', 'semantic', 'total'} on the 0-100 scale of the papers' VBench tables;
    a missing dimension is an error, never 0."""
    return dict(SPRITES_BENCH.score(raw).as_dict())
