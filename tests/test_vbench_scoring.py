"""Official VBench aggregation: published triples, the constants, missing/invalid dimensions."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.evaluation.vbench import (
    QUALITY_KEYS,
    SEMANTIC_KEYS,
    VBENCH,
    VBENCH_KEYS,
    Dimension,
    ScoringTable,
    final_scores,
    total_score,
)


@pytest.mark.parametrize(
    ("quality", "semantic", "total"),
    [
        (85.07, 81.28, 84.31),  # Self Forcing (chunk-wise, DMD, 4 steps)
        (84.05, 69.80, 81.20),  # CausVid*
        (85.30, 80.09, 84.26),  # Wan2.1-1.3B
        (85.65, 78.75, 84.27),  # CausVid, VBench leaderboard
        (84.55, 81.24, 83.89),  # ASD 1*
    ],
)
def test_total_reproduces_published_triples(quality: float, semantic: float, total: float) -> None:
    assert round(total_score(quality, semantic), 2) == total


def test_constants_match_vbench_constant_py() -> None:
    assert len(VBENCH_KEYS) == 16
    assert len(QUALITY_KEYS) == 7 and len(SEMANTIC_KEYS) == 9
    assert sum(VBENCH.dimension(k).weight for k in QUALITY_KEYS) == 6.5
    assert VBENCH.dimension("dynamic_degree").weight == 0.5
    tf = VBENCH.dimension("temporal flickering")  # constant.py spelling is accepted too
    assert (tf.minimum, tf.maximum) == (0.6293, 1.0)
    assert (VBENCH.dimension("scene").minimum, VBENCH.dimension("scene").maximum) == (0.0, 0.8222)
    style = VBENCH.dimension("appearance_style")
    assert (style.minimum, style.maximum) == (0.0009, 0.2855)
    assert VBENCH.dimension("motion_smoothness").maximum == 0.9975


def test_quality_of_memflow_example() -> None:
    raw = {
        "subject_consistency": 0.96728,
        "background_consistency": 0.96226,
        "temporal_flickering": 0.98944,
        "motion_smoothness": 0.98449,
        "dynamic_degree": 0.62222,
        "aesthetic_quality": 0.63452,
        "imaging_quality": 0.70479,
    }
    assert VBENCH.group_score(raw, "quality") == pytest.approx(84.43, abs=0.005)


def test_final_scores_by_hand() -> None:
    raw = {key: VBENCH.dimension(key).maximum for key in VBENCH_KEYS}
    scores = final_scores(raw)
    assert (scores.quality, scores.semantic, scores.total) == pytest.approx((100.0, 100.0, 100.0))
    raw["temporal_flickering"] = 0.6293  # its Min: normalised 0, weight 1 of 6.5
    raw["scene"] = 0.4111  # half of its Max: normalised 0.5, weight 1 of 9
    scores = final_scores(raw)
    assert scores.quality == pytest.approx(100 * 5.5 / 6.5)
    assert scores.semantic == pytest.approx(100 * 8.5 / 9)
    assert scores.total == pytest.approx((4 * scores.quality + scores.semantic) / 5)
    assert scores.normalised["scene"] == pytest.approx(50.0)
    assert scores.table == "VBench"


def test_values_outside_range_are_not_clipped() -> None:
    raw = {key: 1.0 for key in VBENCH_KEYS}
    scores = final_scores(raw)
    assert scores.normalised["scene"] == pytest.approx(100 / 0.8222)
    assert scores.semantic > 100


def test_missing_dimension_names_it() -> None:
    raw = {key: 0.5 for key in VBENCH_KEYS if key != "human_action"}
    with pytest.raises(ConfigError, match="'human_action' is missing"):
        final_scores(raw)


def test_non_finite_value_names_dimension() -> None:
    raw = {key: 0.5 for key in VBENCH_KEYS}
    raw["color"] = float("nan")
    with pytest.raises(ConfigError, match="'color' has non-finite"):
        final_scores(raw)


def test_custom_table_scores_the_vbench_way() -> None:
    table = ScoringTable(
        "sprites-bench",
        (
            Dimension("flicker", 0.5, 1.0, 1.0, "quality"),
            Dimension("sharpness", 0.0, 1.0, 3.0, "quality"),
            Dimension("count", 0.0, 1.0, 1.0, "semantic"),
        ),
    )
    scores = table.score({"flicker": 0.75, "sharpness": 1.0, "count": 0.2})
    assert scores.quality == pytest.approx(100 * (0.5 * 1 + 1.0 * 3) / 4)
    assert scores.semantic == pytest.approx(20.0)
    assert scores.total == pytest.approx((4 * scores.quality + 20.0) / 5)
    assert scores.table == "sprites-bench"


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ((Dimension("a", 0, 1, 1, "quality"), Dimension("a", 0, 1, 1, "semantic")), "duplicate"),
        ((Dimension("a", 0, 1, 1, "quality"),), "no dimension in group 'semantic'"),
    ],
)
def test_bad_tables_are_refused(dims: tuple[Dimension, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScoringTable("t", dims)


def test_bad_dimension_is_refused() -> None:
    with pytest.raises(ConfigError, match="dimension 'x': maximum"):
        Dimension("x", 1.0, 1.0, 1.0, "quality")
    with pytest.raises(ConfigError, match="group must be one of"):
        Dimension("x", 0.0, 1.0, 1.0, "style")
