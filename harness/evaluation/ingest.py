"""Read VBench's own ``*_eval_results.json`` (produced here or anywhere else) into the harness's format.

vbench 0.1.x writes ``{dimension: [aggregate, [ {"video_path": ..., "video_results": ...}, ... ]]}``
with aggregates as fractions. We turn that into the flat ``{dimension: raw}`` mapping that every
harness evaluator returns, plus tidy rows for pandas. Anything else (another VBench version's
layout, unknown dimension names, a non-number score) is refused with the file named, because a
silently misread score would end up in a paper table.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.evaluation.vbench import VBENCH, ScoringTable, canonical_key

RESULTS_SUFFIX = "_eval_results.json"


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: VBench results file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read VBench results ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc


def _aggregate(path: Path, key: str, entry: Any) -> float:
    """The aggregate of one dimension entry, which vbench 0.1.x writes as ``[score, per_video_list]``."""
    layout = "[score, per_video_results] as written by vbench 0.1.x"
    if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
        found = type(entry).__name__ if not isinstance(entry, list) else f"a list of {len(entry)}"
        raise ConfigError(
            f"{path}: dimension '{key}' is {found}, expected {layout} (another VBench version?)"
        )
    score = entry[0]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ConfigError(f"{path}: dimension '{key}' has score {score!r}, expected a finite number")
    return float(score)


def _entries(path: Path) -> dict[str, Any]:
    data = _load_json(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a non-empty JSON object {{dimension: [score, per_video]}}")
    return {canonical_key(key): entry for key, entry in data.items()}


def read_eval_results(
    path: str | os.PathLike, *, table: ScoringTable = VBENCH, full: bool = False
) -> dict[str, float]:
    """``{dimension: raw}`` from one results file; ``full=True`` requires every dimension of ``table``."""
    path = Path(path)
    entries = _entries(path)
    unknown = sorted(set(entries) - set(table.dimension_keys()))
    if unknown:
        raise ConfigError(
            f"{path}: unknown {table.name} dimension(s) {unknown} (results from another VBench version?)"
        )
    raw = {key: _aggregate(path, key, entry) for key, entry in entries.items()}
    if full:
        require_dimensions(raw, table, source=str(path))
    return raw


def require_dimensions(
    raw: Mapping[str, float], table: ScoringTable = VBENCH, *, source: str = "results"
) -> None:
    """Raise naming every dimension of ``table`` absent from ``raw``."""
    missing = [key for key in table.dimension_keys() if key not in raw]
    if missing:
        raise ConfigError(f"{source}: missing {table.name} dimension(s) {missing}")


def find_results(location: str | os.PathLike) -> list[Path]:
    """A results file itself, or every ``*_eval_results.json`` in a folder (sorted)."""
    location = Path(location)
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise ConfigError(f"{location}: no such results file or folder")
    files = sorted(location.glob(f"*{RESULTS_SUFFIX}"))
    if not files:
        raise ConfigError(f"{location}: no *{RESULTS_SUFFIX} files in this folder")
    return files


def read_many(
    locations: Iterable[str | os.PathLike], *, table: ScoringTable = VBENCH, full: bool = False
) -> dict[str, float]:
    """Merge results split over several files (vbench is often run one dimension at a time).

    A dimension reported twice with different values is an error naming both files.
    """
    merged: dict[str, float] = {}
    origin: dict[str, Path] = {}
    for location in locations:
        for path in find_results(location):
            for key, value in read_eval_results(path, table=table).items():
                if key in merged and merged[key] != value:
                    raise ConfigError(
                        f"{path}: dimension '{key}' = {value} conflicts with {merged[key]} in {origin[key]}"
                    )
                merged[key], origin[key] = value, path
    if full:
        require_dimensions(merged, table, source=", ".join(str(p) for p in sorted(set(origin.values()))))
    return merged


def dimension_rows(
    raw: Mapping[str, float], *, table: ScoringTable = VBENCH, source: str = ""
) -> list[dict[str, Any]]:
    """Tidy rows (one per dimension): source, dimension, group, weight, raw, normalised (0-100)."""
    rows = []
    for key, value in raw.items():
        dim = table.dimension(key)
        rows.append(
            {
                "source": source,
                "dimension": dim.key,
                "group": dim.group,
                "weight": dim.weight,
                "raw": value,
                "normalised": 100.0 * dim.normalise(value),
            }
        )
    return rows


def per_video_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Tidy per-video rows (dimension, video_path, value) from a results file, for scatter/box plots."""
    path = Path(path)
    rows = []
    for key, entry in _entries(path).items():
        _aggregate(path, key, entry)
        for item in entry[1]:
            if not isinstance(item, dict) or "video_path" not in item or "video_results" not in item:
                raise ConfigError(
                    f"{path}: dimension '{key}' has a per-video entry without video_path/video_results"
                )
            value = item["video_results"]
            rows.append(
                {
                    "dimension": key,
                    "video_path": item["video_path"],
                    "value": float(value) if isinstance(value, (int, float)) else value,
                }
            )
    return rows
