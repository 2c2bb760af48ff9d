"""sprites-bench scoring table and the VBench-style aggregation into Quality / Semantic / Total.

Same formula as VBench (research/vbench.md §2): ``norm = (raw - min) / (max - min) * weight`` without
clipping, Quality = sum(norm) / sum(weights) over the Quality group, Semantic likewise, and
Total = (4 * Quality + 1 * Semantic) / 5. ``min`` is the chance floor: the raw score of uniform-noise
videos at the default config (``noise_floor`` in evaluator.py recomputes it; a test keeps the two
in step), so noise maps to about 0 and a perfect render to 1. dynamic_degree weighs 0.5, as in VBench.
The label is always ``sprites-bench``: these numbers are not comparable with VBench's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import ConfigError

LABEL = "sprites-bench"
QUALITY, SEMANTIC = "quality", "semantic"
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


def normalize(raw: dict[str, float], table: dict[str, DimensionScale] = SCORING_TABLE) -> dict[str, float]:
    """Per-dimension ``(raw - min) / (max - min)`` (unweighted, so dimensions can be compared)."""
    missing = [d for d in table if d not in raw or raw[d] is None or math.isnan(raw[d])]
    if missing:
        raise ConfigError(f"{LABEL}: no score for dimension(s) {', '.join(missing)}; refusing to aggregate")
    return {d: (raw[d] - s.min) / (s.max - s.min) for d, s in table.items()}


def aggregate(raw: dict[str, float], table: dict[str, DimensionScale] = SCORING_TABLE) -> dict[str, float]:
    """{'quality', 'semantic', 'total'} from raw scores; a missing dimension is an error, never 0."""
    norm = normalize(raw, table)
    groups = {}
    for group in GROUP_WEIGHTS:
        dims = [d for d, s in table.items() if s.group == group]
        groups[group] = sum(norm[d] * table[d].weight for d in dims) / sum(table[d].weight for d in dims)
    total = sum(GROUP_WEIGHTS[g] * groups[g] for g in GROUP_WEIGHTS) / sum(GROUP_WEIGHTS.values())
    return {"quality": groups[QUALITY], "semantic": groups[SEMANTIC], "total": total}
