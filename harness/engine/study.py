"""The study schema, and its expansion into fully resolved, hashed run specs.

A study is a base ``pipeline`` plus a ``grid``: a list of products, each a mapping of axis name →
level name → overrides of the pipeline's ``init_args``; every product is crossed with ``seeds``.
The list form lets a table hold both full crossings and one-off rows::

    grid:
      - variant: {dmd: {label: DMD, method: {class_path: methods.dmd.DMD}}, asd: {...}}
        steps: {"1": {schedule: "1"}, "1*": {schedule: "1*"}}
      - variant: {self_forcing_1step: {label: Self Forcing†, ...}}

A level's ``label`` (or its method's ``display_name``) is the name reports, tables and figures give the
row; it never enters the run's config or hash, and a level without one is shown by its key.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser, lazy_instance

from harness.engine.config import LoadedStudy, check_allowlist, deep_merge, init_parameters, load_raw_study
from harness.engine.executors import Executor, InProcessExecutor
from harness.engine.identity import config_hash
from harness.engine.pipeline import Pipeline
from harness.engine.plugins import instantiate_plugin, parse_config
from harness.engine.run_spec import RunSpec
from harness.engine.versions import code_versions
from harness.errors import ConfigError
from harness.tracking import NullTracker, Tracker

Grid = list[dict[str, dict[str, dict[str, Any]]]]
# Display keys: a grid level's ``label`` and a method node's ``display_name`` name a row in reports, logs and
# trackers; they are taken out before a run's config is parsed, so they never enter its hash.
LABEL_KEY, DISPLAY_NAME_KEY = "label", "display_name"


def split_display(overrides: Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """A grid level's display name (its ``label``, else its method's ``display_name``) and the overrides
    without either key. Renaming a row then re-keys no run, and a row without one keeps its level key."""
    rest = dict(overrides or {})
    label = rest.pop(LABEL_KEY, None)
    method = rest.get("method")
    if isinstance(method, Mapping) and DISPLAY_NAME_KEY in method:
        method = dict(method)
        label = label if label is not None else method.pop(DISPLAY_NAME_KEY)
        method.pop(DISPLAY_NAME_KEY, None)
        rest["method"] = method
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ConfigError(f"a grid level's '{LABEL_KEY}' or method '{DISPLAY_NAME_KEY}' must be a non-empty "
                          f"string, got {label!r}")
    return label, rest


def grid_display_names(grid: Grid | None) -> dict[tuple[str, str], str]:
    """(axis, level) → display name of every labelled level of a grid (the first one where two products
    label the same level); reports read it from a study's manifest."""
    names: dict[tuple[str, str], str] = {}
    for product in grid or []:
        for axis, levels in (product or {}).items():
            for level, overrides in (levels or {}).items():
                label = split_display(overrides)[0] if isinstance(overrides, Mapping) else None
                if label is not None:
                    names.setdefault((str(axis), str(level)), label)
    return names


class Study:
    """The typed form of a study file.

    Args:
        name: Study name; runs are stored under ``<runs-dir>/<name>/``.
        pipeline: What each run computes (``class_path`` + ``init_args``).
        seeds: Seeds every grid point is run with.
        grid: Products of axes whose levels override the pipeline's ``init_args``.
        tracker: Where results are mirrored (W&B offline, or nothing).
        executor: Where runs execute (in this process, or a local process pool).
        allow_modules: Extra modules plugins may be imported from, besides the project's own.
        presets: Named overrides of this file, chosen with ``--preset``.
        description: Free text shown in reports.
        sweep: An Optuna search over the pipeline's ``init_args`` for ``harness sweep``; parsed and
            checked by :mod:`harness.sweep.schema` (``harness run`` ignores it).
    """

    def __init__(
        self,
        name: str,
        pipeline: Pipeline,
        seeds: list[int] = [0],  # noqa: B006 - jsonargparse reads the default from the signature
        grid: Grid = [],  # noqa: B006
        tracker: Tracker = lazy_instance(NullTracker),  # noqa: B008 - jsonargparse's idiom for class defaults
        executor: Executor = lazy_instance(InProcessExecutor),  # noqa: B008
        allow_modules: list[str] = [],  # noqa: B006
        presets: dict[str, dict[str, Any]] = {},  # noqa: B006
        description: str = "",
        sweep: dict[str, Any] | None = None,
    ):
        self.name, self.pipeline, self.seeds, self.grid = name, pipeline, seeds, grid
        self.tracker, self.executor, self.allow_modules = tracker, executor, allow_modules
        self.presets, self.description = presets, description
        self.sweep = sweep


STUDY_KEYS = tuple(inspect.signature(Study).parameters)  # for 'did you mean' on a misspelt top-level key


@dataclass
class ResolvedStudy:
    """A parsed study: its resolved config (printable), its runs, and where it came from."""

    name: str
    source: Path
    config: dict[str, Any]
    runs: list[RunSpec]
    tracker_config: dict[str, Any]
    executor_config: dict[str, Any]
    allow_modules: list[str] = field(default_factory=list)
    preset: str | None = None
    merged_rows: list[str] = field(default_factory=list)  # grid rows that collapsed into another's runs


@functools.cache
def _study_parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(Study, as_group=False)
    return parser


@functools.cache
def _pipeline_parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--pipeline", type=Pipeline, required=True)
    return parser


def resolve_pipeline(raw_pipeline: Mapping[str, Any], source: str, where: str = "pipeline") -> dict[str, Any]:
    """Validate one pipeline config and fill in every default."""
    cfg = parse_config(_pipeline_parser(), {"pipeline": raw_pipeline}, source)
    return cfg.as_dict()["pipeline"]


def apply_level(pipeline: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a grid level's overrides into the pipeline's ``init_args``.

    The special key ``class_path`` swaps the pipeline class (a reference row of a table computed by
    another pipeline); the base's ``init_args`` that the new class accepts are kept, as jsonargparse
    does when a class_path changes.
    """
    overrides = dict(overrides)
    new_class = overrides.pop("class_path", None)
    init_args = dict(pipeline.get("init_args") or {})
    if new_class is not None and new_class != pipeline.get("class_path"):
        accepted = _init_parameters(new_class)
        init_args = {k: v for k, v in init_args.items() if k in accepted}
        pipeline = {"class_path": new_class}
    return {**pipeline, "init_args": deep_merge(init_args, overrides)}


def _accepted_overrides(run_overrides: Mapping[str, Any], plugin: Mapping[str, Any]) -> dict[str, Any]:
    """A preset's pipeline overrides minus the init_args this run's plugins do not take, at every level:
    ``num_videos`` reaches every row, ``method.*`` only rows that have a method, and
    ``method.init_args.train`` only methods that train."""
    out = dict(run_overrides)
    if isinstance(out.get("init_args"), Mapping) and "class_path" not in out:
        accepted = _init_parameters(str(plugin.get("class_path")))
        if accepted:
            args = plugin.get("init_args") or {}
            out["init_args"] = {
                k: _accepted_overrides(v, args[k]) if _is_plugin(v) and _is_plugin(args.get(k)) else v
                for k, v in out["init_args"].items() if k in accepted}
    return out


def _is_plugin(node: Any) -> bool:
    return isinstance(node, Mapping) and ("class_path" in node or "init_args" in node)


def _init_parameters(class_path: str) -> set[str]:
    """Constructor parameters of a class, through ``**kwargs`` to its bases; the allowlist was checked."""
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return set()  # parsing reports the bad class_path with its key
    return init_parameters(cls)


def expand_runs(name: str, raw_pipeline: Mapping[str, Any], grid: Grid, seeds: list[int], source: str,
                allow_modules: list[str] = (), run_overrides: Mapping[str, Any] | None = None) -> list[RunSpec]:
    """Grid products × seeds → run specs, one per distinct config (see :func:`expand_grid`)."""
    return expand_grid(name, raw_pipeline, grid, seeds, source, allow_modules, run_overrides)[0]


def expand_grid(name: str, raw_pipeline: Mapping[str, Any], grid: Grid, seeds: list[int], source: str,
                allow_modules: list[str] = (), run_overrides: Mapping[str, Any] | None = None,
                ) -> tuple[list[RunSpec], list[str]]:
    """Grid products × seeds → run specs, and a note for each pair of grid rows that merged.

    ``run_overrides`` (the preset's and the command line's ``pipeline`` keys) are merged last. Every
    merged point passes the allowlist before it is parsed: a grid level or a sweep point may name a
    class_path too. Rows that resolve to the same config are one run under the first row's labels
    (``--set`` over an axis collapses it on purpose); the notes let commands say so.
    """
    points: list[tuple[dict[str, str], dict[str, Any], str]] = []
    for gi, product in enumerate(grid or [{}]):
        axes = list(product.items())
        for levels in itertools.product(*[list(levels.items()) for _, levels in axes]):
            labels = {axis: str(level) for (axis, _), (level, _) in zip(axes, levels)}
            where = f"grid[{gi}]" + "".join(f".{a}.{lvl}" for a, lvl in labels.items())
            merged = dict(raw_pipeline)
            for _, overrides in levels:
                try:
                    overrides = split_display(overrides)[1]
                except ConfigError as exc:
                    raise ConfigError(f"{source}: {where}: {exc}") from None
                if overrides:
                    merged = apply_level(merged, overrides)
            if run_overrides:
                merged = deep_merge(merged, _accepted_overrides(run_overrides, merged))
            check_allowlist({"pipeline": merged}, allow_modules, f"{source}: {where}")
            points.append((labels, merged, where))
    runs: dict[str, RunSpec] = {}
    merged_rows: dict[str, str] = {}
    for labels, merged, where in points:
        try:
            resolved = resolve_pipeline(merged, source, where)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(f"{source}: ", f"{source}: {where}: ", 1)) from None
        versions = code_versions(resolved)  # a plugin's version bump re-keys its runs (harness/engine/versions.py)
        for seed in seeds:
            config = {"pipeline": resolved, "seed": int(seed), "versions": versions}
            full = config_hash(config)
            first = runs.setdefault(full, RunSpec(name, labels, int(seed), config, full, tuple(allow_modules)))
            if first.labels != labels:
                merged_rows.setdefault(_row_name(labels), _row_name(first.labels))
    notes = [f"grid row {row} has the same config as {kept}: they are one run, labelled {kept}"
             for row, kept in merged_rows.items()]
    return list(runs.values()), notes


def _row_name(labels: Mapping[str, str]) -> str:
    return "/".join(labels.values()) or "pipeline"


def resolve_study(loaded: LoadedStudy) -> ResolvedStudy:
    """Parse and type-check a loaded study and expand it into runs (nothing is instantiated)."""
    source = str(loaded.path)
    cfg = parse_config(_study_parser(), loaded.raw, source, top_level=STUDY_KEYS)
    config = cfg.as_dict()
    if not config["seeds"]:
        raise ConfigError(f"{source}: key 'seeds' must list at least one seed")
    _check_name(config["name"], source)
    # Overrides come from the raw tree: the typed parse reads values under `Any` as YAML ("1" → 1).
    runs, notes = expand_grid(config["name"], loaded.raw["pipeline"], loaded.raw.get("grid") or [],
                              config["seeds"], source, config["allow_modules"], loaded.run_overrides)
    return ResolvedStudy(
        name=config["name"], source=loaded.path, config=config, runs=runs,
        tracker_config=config["tracker"], executor_config=config["executor"],
        allow_modules=list(config["allow_modules"]), preset=loaded.preset, merged_rows=notes,
    )


MAX_NAME_LEN = 128


def _check_name(name: str, source: str) -> None:
    """The study name becomes a folder: one plain path component, printable, of a sane length."""
    plain = (name.strip() and not name.startswith(".") and len(name) <= MAX_NAME_LEN
             and not any(c in name for c in "/\\") and all(c.isprintable() for c in name))
    if not plain:
        raise ConfigError(f"{source}: key 'name' must be a plain folder name (printable, no '/' or '\\', not "
                          f"starting with '.', at most {MAX_NAME_LEN} characters), got {name!r}")


def load_study(path: str | Path, preset: str | None = None, overrides: list[str] | None = None) -> ResolvedStudy:
    return resolve_study(load_raw_study(path, preset, overrides))


def check_instantiable(study: ResolvedStudy) -> list[str]:
    """Build every plugin of every distinct run without running anything (``harness validate``)."""
    source = str(study.source)
    instantiate_plugin(study.tracker_config, Tracker, source, "tracker")
    instantiate_plugin(study.executor_config, Executor, source, "executor")
    built: list[str] = []
    seen: set[str] = set()
    for run in study.runs:
        key = config_hash(run.config["pipeline"])
        if key in seen:
            continue
        seen.add(key)
        where = "/".join(run.labels.values()) or "pipeline"
        try:
            instantiate_plugin(run.config["pipeline"], Pipeline, source, "pipeline")
        except ConfigError as exc:
            if not run.labels:
                raise
            raise ConfigError(str(exc).replace(f"{source}: ", f"{source}: run {where}: ", 1)) from None
        built.append(where)
    return built
