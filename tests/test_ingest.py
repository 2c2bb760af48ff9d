"""Ingesting VBench's own *_eval_results.json: format, merging, and refusals that name the file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.evaluation.ingest import (
    dimension_rows,
    find_results,
    per_video_rows,
    read_eval_results,
    read_many,
)
from harness.evaluation.vbench import VBENCH_KEYS, final_scores


def results_file(path, scores: dict[str, float]):
    data = {
        key: [value, [{"video_path": f"videos/{key}-0.mp4", "video_results": value}]]
        for key, value in scores.items()
    }
    path.write_text(json.dumps(data))
    return path


def test_reads_aggregates_as_flat_mapping(tmp_path) -> None:
    path = results_file(tmp_path / "run_eval_results.json", {"temporal_flickering": 0.97846, "scene": 0.5})
    assert read_eval_results(path) == {"temporal_flickering": 0.97846, "scene": 0.5}


def test_full_table_round_trip_into_final_scores(tmp_path) -> None:
    raw = {key: 0.5 + 0.01 * i for i, key in enumerate(VBENCH_KEYS)}
    path = results_file(tmp_path / "all_eval_results.json", raw)
    assert read_eval_results(path, full=True) == raw
    assert final_scores(read_eval_results(path)).total == pytest.approx(final_scores(raw).total)


def test_merges_files_of_a_folder_and_refuses_conflicts(tmp_path) -> None:
    results_file(tmp_path / "a_eval_results.json", {"color": 0.8})
    results_file(tmp_path / "b_eval_results.json", {"scene": 0.4, "color": 0.8})
    (tmp_path / "b_full_info.json").write_text("[]")  # vbench's other output is ignored
    assert [p.name for p in find_results(tmp_path)] == ["a_eval_results.json", "b_eval_results.json"]
    assert read_many([tmp_path]) == {"color": 0.8, "scene": 0.4}
    results_file(tmp_path / "c_eval_results.json", {"color": 0.7})
    with pytest.raises(ConfigError, match=r"c_eval_results.json: dimension 'color' = 0.7 conflicts with 0.8"):
        read_many([tmp_path])


def test_missing_dimensions_named_when_full_table_asked(tmp_path) -> None:
    path = results_file(tmp_path / "x_eval_results.json", {key: 0.5 for key in VBENCH_KEYS[:-2]})
    with pytest.raises(
        ConfigError,
        match=r"x_eval_results.json: missing VBench dimension\(s\) "
        r"\['temporal_style', 'overall_consistency'\]",
    ):
        read_eval_results(path, full=True)
    with pytest.raises(ConfigError, match="missing VBench dimension"):
        read_many([path], full=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"bad_eval_results.json: not valid JSON \(line 1"),
        ("[]", "bad_eval_results.json: expected a non-empty JSON object"),
        ('{"color": 0.8}', "bad_eval_results.json: dimension 'color' is float, expected \\[score, per_video"),
        ('{"color": {"score": 0.8}}', "dimension 'color' is dict"),
        ('{"color": [0.8, [], "extra"]}', "dimension 'color' is a list of 3"),
        ('{"color": ["high", []]}', "dimension 'color' has score 'high'"),
        ('{"Human_Anatomy": [0.8, []]}', r"unknown VBench dimension\(s\) \['Human_Anatomy'\]"),
    ],
)
def test_bad_files_are_refused_with_file_name(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad_eval_results.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_eval_results(path)


def test_missing_file_and_empty_folder(tmp_path) -> None:
    with pytest.raises(ConfigError, match="nope_eval_results.json: VBench results file not found"):
        read_eval_results(tmp_path / "nope_eval_results.json")
    with pytest.raises(ConfigError, match=r"no \*_eval_results.json files in this folder"):
        find_results(tmp_path)


def test_rows_are_pandas_friendly(tmp_path) -> None:
    path = results_file(tmp_path / "r_eval_results.json", {"scene": 0.4111, "dynamic_degree": 0.25})
    frame = pd.DataFrame(dimension_rows(read_eval_results(path), source="r"))
    assert list(frame.columns) == ["source", "dimension", "group", "weight", "raw", "normalised"]
    scene = frame.set_index("dimension").loc["scene"]
    assert scene["group"] == "semantic" and scene["normalised"] == pytest.approx(50.0)
    assert frame.set_index("dimension").loc["dynamic_degree", "weight"] == 0.5
    videos = pd.DataFrame(per_video_rows(path))
    assert videos.to_dict("records") == [
        {"dimension": "scene", "video_path": "videos/scene-0.mp4", "value": 0.4111},
        {"dimension": "dynamic_degree", "video_path": "videos/dynamic_degree-0.mp4", "value": 0.25},
    ]
