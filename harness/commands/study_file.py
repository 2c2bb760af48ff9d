"""What ``run``, ``validate`` and ``sweep`` accept as a study: a study file, or one run's ``config.yaml``.

A run folder's ``config.yaml`` (``runs/<study>/<hash>/config.yaml``) is read as a one-run study with the
run's labels, seed and resolved pipeline, and the tracker, executor and presets of its study (from the
``study.json`` beside it), so ``harness run runs/s/<hash>/config.yaml`` reruns exactly that run (same hash).
``--print-config`` output is a study file that loads back to the same runs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.engine.config import (
    LoadedStudy,
    apply_preset_and_overrides,
    deep_merge,
    load_raw_study,
    read_yaml,
)
from harness.engine.study import ResolvedStudy, resolve_study
from harness.errors import ConfigError

RUN_CONFIG_KEYS = {"hash", "labels", "pipeline", "seed"}
# Study keys typed ``Any`` in the schema: the typed parse reads their strings as YAML ("1" → 1), so the
# printed study takes them from the file as written.
AS_WRITTEN = ("grid", "presets")


def is_run_config(raw: Mapping[str, Any]) -> bool:
    return RUN_CONFIG_KEYS <= set(raw) and "grid" not in raw


def is_run_file(path: Path) -> bool:
    """Whether ``path`` is a run folder's ``config.yaml`` rather than a study file."""
    try:
        return is_run_config(read_yaml(Path(path)))
    except ConfigError:
        return False


def load(path: Path, preset: str | None = None, overrides: list[str] | None = None) -> tuple[LoadedStudy, ResolvedStudy]:
    """The loaded file (presets and overrides applied) and the study it resolves to."""
    path = Path(path)
    raw = read_yaml(path)
    loaded = _run_as_study(path, raw, preset, overrides) if is_run_config(raw) else load_raw_study(path, preset, overrides)
    return loaded, resolve_study(loaded)


def _run_as_study(path: Path, raw: Mapping[str, Any], preset: str | None, overrides: list[str] | None) -> LoadedStudy:
    manifest = _study_manifest(path)
    labels = raw.get("labels") or {}
    study: dict[str, Any] = {"name": raw.get("study") or manifest.get("name") or path.parent.parent.name,
                             "pipeline": raw["pipeline"], "seeds": [raw["seed"]]}
    if labels:  # the run's row: one level per axis, adding nothing to the pipeline
        study["grid"] = [{str(axis): {str(level): {}} for axis, level in labels.items()}]
    for key in ("tracker", "executor", "allow_modules", "presets", "description"):
        if manifest.get(key) is not None:
            study[key] = manifest[key]
    return apply_preset_and_overrides(path, study, preset, overrides)


def _study_manifest(run_config: Path) -> dict[str, Any]:
    """The resolved config of the run's study, from ``<study>/study.json``; empty when absent."""
    import json

    manifest = run_config.parent.parent / "study.json"
    try:
        config = json.loads(manifest.read_text(encoding="utf-8")).get("config")
    except (OSError, ValueError, AttributeError):
        return {}
    return config if isinstance(config, dict) else {}


def printable(loaded: LoadedStudy, resolved: ResolvedStudy) -> dict[str, Any]:
    """The resolved study as a study file: typed values, with the ``Any`` keys as written, and the preset's
    and command line's pipeline overrides written into the grid levels they win over."""
    config = dict(resolved.config)
    for key in AS_WRITTEN:
        if key in loaded.raw:
            config[key] = loaded.raw[key]
    if config.get("grid") and loaded.run_overrides:
        config["grid"] = _baked_grid(config["grid"], loaded.raw["pipeline"], loaded.run_overrides)
    return config


def _baked_grid(grid: list[dict[str, Any]], pipeline: Mapping[str, Any], run_overrides: Mapping[str, Any]) -> Any:
    """Grid levels with the run overrides merged into each level of every product's last axis: a preset's
    ``pipeline.*`` applies after the grid (it wins), which a plain study file can only say in the levels."""
    import copy

    from harness.engine.study import _accepted_overrides, apply_level, split_display

    if set(run_overrides) - {"init_args"}:  # a class_path swap: not expressible per level; print as is
        return grid
    baked = [copy.deepcopy(product) for product in grid]  # one copy each: YAML anchors share levels
    for product in baked:
        if not isinstance(product, dict) or not product:
            continue
        *others, last = list(product)
        base = dict(pipeline)
        for axis in others:  # the first level of the other axes: enough to know which plugins take what
            first = next(iter(product[axis].values()), None) or {}
            base = apply_level(base, split_display(first)[1])
        for name, level in product[last].items():
            merged = apply_level(base, split_display(level or {})[1])
            accepted = _accepted_overrides(run_overrides, merged).get("init_args") or {}
            product[last][name] = deep_merge(level or {}, accepted)
    return baked


def print_config(loaded: LoadedStudy, resolved: ResolvedStudy) -> None:
    sys.stdout.write(dump(printable(loaded, resolved)))


def dump(config: Mapping[str, Any]) -> str:
    """YAML that reads back to the same values: a string that looks like a number or a bool is quoted."""
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
