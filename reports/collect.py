"""Run folders → one pandas DataFrame per study (one row per run), plus what was wrong with them.

The run store is the single source of truth: this module only reads ``study.json``, each run's
``config.yaml``, ``status.json`` and ``result.json``, and the stage ``metrics.jsonl`` of the trained
generators. Problems (a failed run, a run of another study in the folder, a metric a run lacks) never
stop a report: they are collected as one-line messages that the report prints, and the rows are
built from what is there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.engine.store import (
    COMPLETE,
    CORRUPT,
    RUNNING,
    STUDY_MANIFEST,
    RunDir,
    RunStore,
    read_json_object,
    require_folder,
)
from harness.engine.versions import study_flags
from harness.errors import CorruptFileError
from reports.evaluator import EvaluatorInfo, evaluator_of

STAGES_DIRNAME = ".stages"
OUTDATED = "outdated"  # a complete run whose code versions are not the current code's (harness/engine/versions.py)
MISSING_LABEL = "—"
# A cell over fewer seeds than its row's n. Not '†': in the paper '†' marks Self Forcing retrained per step count.
PARTIAL_MARK = "‡"

# Row identity of the paper's tables, and result fields that describe a run rather than score it.
ROW_KEYS = ("method", "steps", "nfe")
DESCRIPTIVE = {"schedule", "method", "generator", "nfe"}
SCORE_KEYS = ("total", "quality", "semantic")
LOWER_IS_BETTER = {"fd", "fid", "fvd", "kid", "latency_s"}
SAMPLER_ONLY = {"latency_s"}  # measured on a generator: reference rows (real data) have none, rightly


@dataclass(frozen=True)
class MetricColumn:
    """How one metric is shown: label, group, display scale and which direction is better."""

    key: str
    label: str
    group: str  # "score", "quality", "semantic", "other" or "speed"
    scale: float = 1.0
    higher_is_better: bool = True


@dataclass
class StudyData:
    """Everything a report needs to know about one study's run folders."""

    name: str
    folder: Path
    manifest: dict[str, Any]
    runs: pd.DataFrame
    columns: list[MetricColumn]
    problems: list[str] = field(default_factory=list)
    stages_dir: Path | None = None
    evaluator: EvaluatorInfo | None = None
    dimension_groups: dict[str, str] = field(default_factory=dict)  # dimension key → quality / semantic

    @property
    def complete(self) -> pd.DataFrame:
        """Complete runs of this study, in the manifest's order."""
        return self.runs[self.runs["state"] == COMPLETE]


def dimension_groups(declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """Dimension key → group (quality/semantic): what the runs' evaluators declared (``dimension_groups``
    in each result) over VBench's table, the fallback for results written before evaluators declared it."""
    from harness.evaluation.vbench import VBENCH

    return {**VBENCH.groups(), **dict(declared or {})}


def metric_column(key: str, dimensions: dict[str, str]) -> MetricColumn:
    """The display rule for ``key``: raw dimension fractions are shown as percentages."""
    label = key.replace("_", " ").capitalize()
    if key in SCORE_KEYS:
        return MetricColumn(key, key.capitalize(), "score")
    if key in dimensions:
        return MetricColumn(key, label, dimensions[key], scale=100.0)
    lower = key in LOWER_IS_BETTER or key.endswith("_distance")
    if key == "latency_s":
        return MetricColumn(key, "Latency (s)", "speed", higher_is_better=False)
    return MetricColumn(key, key.upper() if len(key) <= 3 else label, "other", higher_is_better=not lower)


def order_columns(keys: list[str], groups: Mapping[str, str] | None = None) -> list[MetricColumn]:
    """Scores first, then Quality and Semantic dimensions, other metrics, latency last."""
    dims = dimension_groups(groups)
    rank = {"score": 0, "quality": 1, "semantic": 2, "other": 3, "speed": 4}
    columns = [metric_column(k, dims) for k in keys]
    return sorted(columns, key=lambda c: (rank[c.group], SCORE_KEYS.index(c.key) if c.key in SCORE_KEYS else 0))


def find_studies(runs_dir: Path) -> list[Path]:
    """Study folders: ``runs_dir`` itself when it holds ``study.json``, else its subfolders that do."""
    require_folder(runs_dir)
    if (runs_dir / STUDY_MANIFEST).exists():
        return [runs_dir]
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and (p / STUDY_MANIFEST).exists())


def _read_manifest(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The study's manifest; an unreadable one is a problem, not an abort: runs are then listed from
    their folders (the next ``harness run`` sets it aside and rewrites it)."""
    try:
        return read_json_object(folder / STUDY_MANIFEST) or {}, []
    except CorruptFileError as exc:
        return {}, [f"{folder.name}/{exc}; runs listed from their folders, in folder order"]


def _state(run_dir: RunDir) -> tuple[str, str | None, Any]:
    unreadable = run_dir.unreadable()
    if unreadable:  # left out of the tables, with the file named; `harness run` recomputes the run
        return CORRUPT, "; ".join(unreadable), None
    status = run_dir.read_status()
    state = status.get("state", "pending")
    if state == RUNNING and run_dir.is_stale():
        state = "stale"
    return state, status.get("reason"), status.get("seconds")


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


Names = dict[tuple[str, str], str]  # (axis, level) -> display name, from the study's grid (harness.engine.study)


def display_names(manifest: dict[str, Any]) -> Names:
    """The grid's level labels, from the manifest's resolved config; none when it cannot be read."""
    from harness.engine.study import grid_display_names
    from harness.errors import ConfigError

    grid = (manifest.get("config") or {}).get("grid")
    try:
        return grid_display_names(grid if isinstance(grid, list) else [])
    except (ConfigError, AttributeError, TypeError):
        return {}


def _run_row(run_dir: RunDir, order: dict[str, int], entries: dict[str, dict], names: Names) -> dict[str, Any]:
    """One run as a flat row: identity, state, and every numeric metric of its result."""
    cfg = run_dir.read_config() or {}
    entry = entries.get(run_dir.hash, {})
    labels = cfg.get("labels") or entry.get("labels") or {}
    state, reason, seconds = _state(run_dir)
    result = (run_dir.read_result() or {}) if state == COMPLETE else {}
    metrics = result.get("metrics") or {}
    nfe = metrics.get("nfe")
    row = {
        "hash": run_dir.hash, "study": cfg.get("study"), "order": order.get(run_dir.hash, len(order)),
        "method": _method_name(labels, metrics, run_dir.hash, names),
        "variant": _method_name(labels, metrics, run_dir.hash, {}),
        "steps": str(metrics.get("schedule") or labels.get("steps") or MISSING_LABEL),
        "nfe": float(nfe) if _numeric(nfe) else math.nan,
        "seed": cfg.get("seed", entry.get("seed")), "state": state, "reason": reason, "seconds": seconds,
        "generator": metrics.get("generator"), "kind": metrics.get("method"), "has_result": bool(result),
        "samples_dir": str(run_dir.samples_dir),
        "groups": metrics.get("dimension_groups") if isinstance(metrics.get("dimension_groups"), dict) else {},
    }
    for key, value in metrics.items():
        if key not in DESCRIPTIVE and _numeric(value):
            row[f"m:{key}"] = float(value)
    return row


def _method_name(labels: dict[str, Any], metrics: dict[str, Any], fallback: str, names: Names) -> str:
    """The row's display name: the variant's label (its level key without one), plus the label of every
    axis other than steps and seed, so that a grid over more axes than (variant, steps) never merges
    distinct runs into one row."""
    variant = labels.get("variant")
    variant = names.get(("variant", str(variant)), str(variant)) if variant else metrics.get("method")
    extra = [names.get((str(k), str(v)), str(v)) for k, v in labels.items() if k not in ("variant", "steps", "seed")]
    parts = ([str(variant)] if variant else []) + extra
    return "/".join(parts) or fallback


def _separate_shared_names(rows: list[dict[str, Any]]) -> None:
    """Two variants with one display name at one step count would merge into one table row: such rows
    are named 'label (variant)' instead. Variants that share a name at different step counts (Self
    Forcing† retrained at 1 and at 2 steps) keep it."""
    variants: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        variants.setdefault((row["method"], row["steps"]), set()).add(row["variant"])
    for row in rows:
        if len(variants[(row["method"], row["steps"])]) > 1 and row["method"] != row["variant"]:
            row["method"] = f"{row['method']} ({row['variant']})"


def _describe(row: dict[str, Any]) -> str:
    return f"{row['method']} {row['steps']} seed {row['seed']}"


def collect_study(folder: Path, stages_dir: Path | None = None) -> StudyData:
    """Read one study folder; problems are recorded, never raised (bad manifests aside)."""
    manifest, problems = _read_manifest(folder)
    name = str(manifest.get("study") or folder.name)
    entries = {r.get("hash"): r for r in manifest.get("runs", []) if isinstance(r, dict)}
    order = {h: i for i, h in enumerate(entries)}
    names = display_names(manifest)
    rows = []
    groups: dict[str, str] = {}
    orphans = 0
    for run_dir in RunStore(folder.parent, folder.name).runs():
        if entries and run_dir.hash not in entries:
            orphans += 1  # a run of an earlier version of the study file: kept on disk, not reported
            continue
        row = _run_row(run_dir, order, entries, names)
        groups.update(row.pop("groups"))
        where = f"{name}/{row['hash']} ({_describe(row)})"
        if row["study"] not in (None, name):
            problems.append(f"{where}: config.yaml names study '{row['study']}', not '{name}'; "
                            "left out of this study's report")
            continue
        if row["state"] == COMPLETE and not row["has_result"]:
            problems.append(f"{where}: complete but result.json is missing or has no metrics; left out")
            row["state"] = "no result"
        elif row["state"] != COMPLETE:
            reason = f": {row['reason']}" if row["reason"] else ""
            problems.append(f"{where}: {row['state']}{reason}; left out of the tables")
        rows.append(row)
    _separate_shared_names(rows)
    problems += _flag_rows(name, folder, rows)
    if orphans:
        problems.append(f"{name}: {orphans} run folder(s) not in the current study.json (an earlier version of "
                        "the study) left out")
    runs = pd.DataFrame(rows)
    if runs.empty:
        runs = pd.DataFrame(columns=["hash", "study", "order", "method", "variant", "steps", "nfe", "seed", "state"])
    runs = runs.sort_values(["order", "hash"], kind="stable").reset_index(drop=True)
    metric_keys = [c[2:] for c in runs.columns if c.startswith("m:")]
    problems += _missing_metric_problems(name, runs, metric_keys)
    if not (runs["state"] == COMPLETE).any():
        problems.insert(0, f"{name}: no complete runs yet ({len(runs)} run folders); the tables are empty")
    return StudyData(name, folder, manifest, runs, order_columns(metric_keys, groups), problems,
                     stages_dir if stages_dir is not None else folder.parent / STAGES_DIRNAME, evaluator_of(manifest),
                     dimension_groups(groups))


def _flag_rows(name: str, folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Complete runs computed by other code than the rest of the study (see :mod:`harness.engine.versions`):
    an *outdated* one (its recorded plugin/stage versions are not the current code's) becomes state
    ``outdated`` and is left out of the tables, since ``harness run`` would recompute it; one at another
    git commit than most of the study is kept. Both get a ``flag`` and a problem line."""
    flags = study_flags((folder / row["hash"], None) for row in rows if row["state"] == COMPLETE)
    problems = []
    for row in rows:
        flag = flags.get(row["hash"])
        if flag is None:
            continue
        row["flag"] = flag.text
        where = f"{name}/{row['hash']} ({_describe(row)})"
        if flag.outdated or flag.unversioned:
            row["state"], row["reason"] = OUTDATED, "computed by older code"
            problems.append(f"{where}: {flag.text}: computed by older code; left out of the tables "
                            "(`harness run` recomputes it)")
        else:
            problems.append(f"{where}: {flag.text}; kept in the tables")
    return problems


def _missing_metric_problems(name: str, runs: pd.DataFrame, keys: list[str]) -> list[str]:
    """One message per complete run that lacks a metric other complete runs report."""
    problems = []
    complete = runs[runs["state"] == COMPLETE]
    for _, row in complete.iterrows():
        reference = pd.isna(row.get("generator"))
        missing = [k for k in keys if pd.isna(row.get(f"m:{k}")) and not (reference and k in SAMPLER_ONLY)]
        if missing:
            problems.append(f"{name}/{row['hash']} ({_describe(row)}): result.json has no "
                            f"{', '.join(repr(k) for k in missing)}; those cells average fewer seeds ({PARTIAL_MARK}) or show —")
    return problems


RUN_TRAINING_LOG = "distill_metrics.jsonl"  # a run folder's copy of its distillation's metrics.jsonl


def _training_log(study: StudyData, runs: pd.DataFrame, generator: str) -> Path:
    """The run folder's copy of the distillation's log when one of its runs has it, else the stage's."""
    for samples in runs.loc[runs["generator"] == generator, "samples_dir"]:
        path = Path(samples).parent / RUN_TRAINING_LOG
        if path.exists():
            return path
    return (study.stages_dir or study.folder) / generator / "metrics.jsonl"


def load_curves(study: StudyData) -> pd.DataFrame:
    """Training curves of every trained generator: one row per (method, seed, step, logged term).

    A generator trained once is shared by the runs that sample it with different schedules, so each
    (method, generator) pair is read once, from a run folder's ``distill_metrics.jsonl`` (else from the
    stage cache). Reference rows have no trained generator (``distill-<method>/<key>``) and no curves.
    """
    # ``line``: which logged row a value came from; two rows may share a step (the scores before
    # training and those after the first update are both logged at step 0)
    columns = ["method", "seed", "generator", "step", "line", "term", "value"]
    if study.complete.empty:
        return pd.DataFrame(columns=columns)
    records = []
    trained = study.complete.dropna(subset=["generator"])
    trained = trained[trained["generator"].astype(str).str.contains("/")]
    pairs = trained.drop_duplicates(["method", "generator"])
    names = _curve_names(trained)
    for _, run in pairs.iterrows():
        path = _training_log(study, trained, str(run["generator"]))
        for index, line in enumerate(_jsonl(path, study.problems, f"{study.name}: curves of {run['generator']}")):
            step = line.get("step")
            for term, value in line.items():
                if term != "step" and _numeric(value) and _numeric(step):
                    records.append((names[(run["method"], run["variant"])], run["seed"], run["generator"],
                                    int(step), index, term, float(value)))
    return pd.DataFrame.from_records(records, columns=columns)


def _curve_names(trained: pd.DataFrame) -> dict[tuple[str, str], str]:
    """A curve per distilled variant: its display name, or 'name · steps' where variants share one
    (Self Forcing† retrained at 1 and at 2 steps are two trainings, never one curve over both)."""
    pairs = trained[["method", "variant"]].drop_duplicates()
    shared = pairs["method"].value_counts()
    names = {}
    for m, v in pairs.itertuples(index=False):
        steps = list(dict.fromkeys(trained.loc[trained["variant"] == v, "steps"]))
        if shared[m] < 2 or m == v:
            names[(m, v)] = m
        else:  # 'Self Forcing† · 2', as its table row reads; the variant key where it samples several step counts
            names[(m, v)] = f"{m} · {steps[0]}" if len(steps) == 1 else f"{m} ({v})"
    return names


def _jsonl(path: Path, problems: list[str], where: str) -> list[dict]:
    try:
        text = path.read_text(errors="replace")  # garbled bytes make lines that do not parse: skipped below
    except FileNotFoundError:
        problems.append(f"{where}: no metrics.jsonl in the stage cache; no curve drawn")
        return []
    rows = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a run killed mid-write
        if isinstance(value, dict):
            rows.append(value)
    return rows
