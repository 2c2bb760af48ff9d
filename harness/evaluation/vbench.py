"""Official VBench scoring: the constants of VBench's ``scripts/constant.py`` and its aggregation.

VBench turns raw per-dimension scores (fractions, as in ``*_eval_results.json``) into the
Quality / Semantic / Total numbers that papers print on a 0-100 scale:

    normalised[d] = (raw[d] - Min[d]) / (Max[d] - Min[d])          (no clipping, as upstream)
    Quality       = Σ_{d ∈ quality}  w_d · normalised[d] / Σ_{d ∈ quality}  w_d
    Semantic      = Σ_{d ∈ semantic} w_d · normalised[d] / Σ_{d ∈ semantic} w_d
    Total         = (4 · Quality + 1 · Semantic) / 5

The aggregation is written once, in :class:`ScoringTable`, so any evaluator with its own dimension
table (the sprites world's ``sprites-bench``) scores "the VBench way" by building a table of
:class:`Dimension` rows and calling :meth:`ScoringTable.score`. :data:`VBENCH` is VBench's table.
Unlike upstream ``cal_final_score.py`` (which silently scores a missing dimension as 0), a missing
dimension is an error here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.errors import ConfigError

QUALITY = "quality"
SEMANTIC = "semantic"
GROUPS = (QUALITY, SEMANTIC)


@dataclass(frozen=True)
class Dimension:
    """One scored dimension: its key, the range that maps to 0..1, its weight and its group."""

    key: str
    minimum: float
    maximum: float
    weight: float
    group: str

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ConfigError(f"dimension '{self.key}': group must be one of {GROUPS}, got '{self.group}'")
        if not self.maximum > self.minimum:
            raise ConfigError(
                f"dimension '{self.key}': maximum {self.maximum} must exceed minimum {self.minimum}"
            )
        if not self.weight > 0:
            raise ConfigError(f"dimension '{self.key}': weight must be positive, got {self.weight}")

    def normalise(self, raw: float) -> float:
        """Map a raw score to the 0..1 range of the table (values outside the range are kept)."""
        return (raw - self.minimum) / (self.maximum - self.minimum)


@dataclass(frozen=True)
class Scores:
    """Quality, Semantic and Total on the 0-100 scale, plus each dimension normalised to 0-100."""

    quality: float
    semantic: float
    total: float
    normalised: Mapping[str, float]
    table: str

    def as_dict(self) -> dict[str, float]:
        return {"total": self.total, "quality": self.quality, "semantic": self.semantic}


def canonical_key(key: str) -> str:
    """VBench writes ``subject_consistency`` in JSON and ``subject consistency`` in constant.py."""
    return key.strip().replace(" ", "_")


@dataclass(frozen=True)
class ScoringTable:
    """A dimension table plus group weights; aggregates raw scores the VBench way.

    ``name`` labels the result (``"VBench"``, ``"sprites-bench"``) so scores from different tables
    are never mixed up in a report.
    """

    name: str
    dimensions: tuple[Dimension, ...]
    quality_weight: float = 4.0
    semantic_weight: float = 1.0

    def __post_init__(self) -> None:
        keys = [d.key for d in self.dimensions]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ConfigError(f"scoring table '{self.name}': duplicate dimension(s) {duplicates}")
        for group in GROUPS:
            if not self.dimension_keys(group):
                raise ConfigError(f"scoring table '{self.name}': no dimension in group '{group}'")

    def groups(self) -> dict[str, str]:
        """Dimension key → its group (``quality`` / ``semantic``), in table order."""
        return {d.key: d.group for d in self.dimensions}

    def dimension_keys(self, group: str | None = None) -> list[str]:
        """Dimension keys in table order, optionally only those of one group."""
        return [d.key for d in self.dimensions if group is None or d.group == group]

    def dimension(self, key: str) -> Dimension:
        for dim in self.dimensions:
            if dim.key == canonical_key(key):
                return dim
        raise ConfigError(
            f"scoring table '{self.name}' has no dimension '{key}'; known: {', '.join(self.dimension_keys())}"
        )

    def _raw_values(self, raw: Mapping[str, float], keys: Iterable[str]) -> dict[str, float]:
        given = {canonical_key(k): v for k, v in raw.items()}
        values: dict[str, float] = {}
        for key in keys:
            if key not in given:
                raise ConfigError(f"{self.name} score: dimension '{key}' is missing from the raw scores")
            value = float(given[key])
            if not math.isfinite(value):
                raise ConfigError(f"{self.name} score: dimension '{key}' has non-finite value {given[key]!r}")
            values[key] = value
        return values

    def group_score(self, raw: Mapping[str, float], group: str) -> float:
        """Weighted mean of the normalised scores of one group, 0-100; needs only that group's keys."""
        keys = self.dimension_keys(group)
        if not keys:
            raise ConfigError(f"scoring table '{self.name}' has no group '{group}'")
        values = self._raw_values(raw, keys)
        dims = [self.dimension(k) for k in keys]
        weighted = sum(d.weight * d.normalise(values[d.key]) for d in dims)
        return 100.0 * weighted / sum(d.weight for d in dims)

    def total(self, quality: float, semantic: float) -> float:
        """Total from Quality and Semantic (both 0-100)."""
        weights = self.quality_weight + self.semantic_weight
        return (self.quality_weight * quality + self.semantic_weight * semantic) / weights

    def score(self, raw: Mapping[str, float]) -> Scores:
        """Quality / Semantic / Total from ``{dimension: raw}``; every dimension of the table is required."""
        values = self._raw_values(raw, self.dimension_keys())
        quality = self.group_score(values, QUALITY)
        semantic = self.group_score(values, SEMANTIC)
        normalised = {d.key: 100.0 * d.normalise(values[d.key]) for d in self.dimensions}
        return Scores(quality, semantic, self.total(quality, semantic), normalised, self.name)


# VBench scripts/constant.py (NORMALIZE_DIC, DIM_WEIGHT, QUALITY_LIST, SEMANTIC_LIST), keyed as in the JSON.
VBENCH_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("subject_consistency", 0.1462, 1.0, 1.0, QUALITY),
    Dimension("background_consistency", 0.2615, 1.0, 1.0, QUALITY),
    Dimension("temporal_flickering", 0.6293, 1.0, 1.0, QUALITY),
    Dimension("motion_smoothness", 0.706, 0.9975, 1.0, QUALITY),
    Dimension("aesthetic_quality", 0.0, 1.0, 1.0, QUALITY),
    Dimension("imaging_quality", 0.0, 1.0, 1.0, QUALITY),
    Dimension("dynamic_degree", 0.0, 1.0, 0.5, QUALITY),
    Dimension("object_class", 0.0, 1.0, 1.0, SEMANTIC),
    Dimension("multiple_objects", 0.0, 1.0, 1.0, SEMANTIC),
    Dimension("human_action", 0.0, 1.0, 1.0, SEMANTIC),
    Dimension("color", 0.0, 1.0, 1.0, SEMANTIC),
    Dimension("spatial_relationship", 0.0, 1.0, 1.0, SEMANTIC),
    Dimension("scene", 0.0, 0.8222, 1.0, SEMANTIC),
    Dimension("appearance_style", 0.0009, 0.2855, 1.0, SEMANTIC),
    Dimension("temporal_style", 0.0, 0.364, 1.0, SEMANTIC),
    Dimension("overall_consistency", 0.0, 0.364, 1.0, SEMANTIC),
)

VBENCH = ScoringTable("VBench", VBENCH_DIMENSIONS, quality_weight=4.0, semantic_weight=1.0)

VBENCH_KEYS: tuple[str, ...] = tuple(VBENCH.dimension_keys())
QUALITY_KEYS: tuple[str, ...] = tuple(VBENCH.dimension_keys(QUALITY))
SEMANTIC_KEYS: tuple[str, ...] = tuple(VBENCH.dimension_keys(SEMANTIC))


def final_scores(raw: Mapping[str, float]) -> Scores:
    """VBench Quality / Semantic / Total (0-100) from the 16 raw scores (fractions, as in the JSON)."""
    return VBENCH.score(raw)


def total_score(quality: float, semantic: float) -> float:
    """VBench Total from Quality and Semantic, both on the same scale: (4·Q + S) / 5."""
    return VBENCH.total(quality, semantic)
