"""A study's execution: runs to do → executor → outcomes → summary, resumable at any point."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.engine.executors import Executor
from harness.engine.progress import StudyProgress
from harness.engine.provenance import collect, utc_now
from harness.engine.runner import BUSY, CACHED, RunJob, RunOutcome
from harness.engine.store import COMPLETE, CORRUPT, FAILED, RunStore, require_writable_folder
from harness.engine.study import ResolvedStudy
from harness.engine.versions import add_ls_flags

DEFAULT_RUNS_DIR = "runs"
STAGE_CACHE_DIRNAME = ".stages"


def default_cache_dir(runs_dir: str | Path) -> Path:
    """Shared by every study under one runs folder, so a teacher is trained once per world config."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path(runs_dir) / STAGE_CACHE_DIRNAME)


def check_output_folders(runs_dir: str | Path, cache_dir: str | Path | None = None) -> None:
    """The runs folder and the stage cache are folders this process can write (or create): checked by
    ``run``, ``sweep`` and ``worker`` before anything is written, so a bad one is one line, not a traceback."""
    require_writable_folder(runs_dir, "--runs-dir")
    if cache_dir is not None:
        require_writable_folder(cache_dir, "--cache-dir")
    elif os.environ.get("HARNESS_CACHE_DIR"):
        require_writable_folder(os.environ["HARNESS_CACHE_DIR"], "$HARNESS_CACHE_DIR")


@dataclass
class StudySummary:
    study: str
    outcomes: list[RunOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.state] = out.get(o.state, 0) + 1
        return out

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def lines(self) -> list[str]:
        c = self.counts()
        head = (f"study {self.study}: {len(self.outcomes)} runs — {c.get(COMPLETE, 0)} computed, "
                f"{c.get(CACHED, 0)} already complete, {c.get(FAILED, 0)} failed")
        return [head] + [f"  failed {o.name}: {o.reason}" for o in self.failed]


def write_manifest(store: RunStore, study: ResolvedStudy) -> None:
    """The study's resolved config and run list, for reports and ``harness ls``."""
    previous = store.read_manifest() or {}
    store.write_manifest({
        "study": study.name,
        "source": study.source.name,
        "preset": study.preset,
        "config": study.config,
        "runs": [{"hash": r.short, "labels": r.labels, "seed": r.seed, "name": r.name} for r in study.runs],
        "created": previous.get("created", utc_now()),
        "updated": utc_now(),
        "provenance": collect(),
    })


def run_study(study: ResolvedStudy, executor: Executor, *, runs_dir: str | Path, cache_dir: str | Path | None = None,
              force: bool = False, progress: StudyProgress | None = None, manifest: bool = True) -> StudySummary:
    """Execute every run of ``study`` that is not complete yet; never two processes on one run.

    ``manifest=False`` (one run of a study rerun from its ``config.yaml``) leaves ``study.json`` as it is:
    the study is still the one that listed every run."""
    runs_dir = Path(runs_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(runs_dir)
    store = RunStore(runs_dir, study.name)
    store.path.mkdir(parents=True, exist_ok=True)
    if manifest or store.read_manifest() is None:
        write_manifest(store, study)
    summary = StudySummary(study.name)

    todo: list[RunJob] = []
    for spec in study.runs:
        run_dir = store.run(spec.short)
        if not force and run_dir.is_complete():  # a garbled status/result is not complete: it reruns
            result = run_dir.read_result() or {}
            summary.outcomes.append(RunOutcome(spec.hash, spec.name, CACHED, metrics=result.get("metrics", {}),
                                               headline=result.get("headline")))
        else:
            todo.append(RunJob(spec, str(runs_dir), str(cache_dir), study.tracker_config, force))
    if progress is not None:
        progress.begin(study.name, len(study.runs), len(summary.outcomes))

    busy: list[RunJob] = []
    handles = [executor.submit(job) for job in todo]
    for outcome in executor.wait(handles, progress.event if progress is not None else None):
        if outcome.state == BUSY:
            busy.append(next(j for j in todo if j.spec.hash == outcome.hash))
            continue
        summary.outcomes.append(outcome)
        if progress is not None:
            progress.finished(outcome.name, outcome.state, outcome.seconds)
    for job in busy:  # held by another process: wait for it, then report what it produced
        summary.outcomes.append(_await_elsewhere(store, job))
        if progress is not None:
            progress.finished(job.spec.name, summary.outcomes[-1].state, 0.0)
    return summary


def _await_elsewhere(store: RunStore, job: RunJob) -> RunOutcome:
    run_dir = store.run(job.spec.short)
    with run_dir.lock():
        status = run_dir.read_status()
    result = run_dir.read_result()
    state = status.get("state")
    if state == COMPLETE and result is not None:
        return RunOutcome(job.spec.hash, job.spec.name, CACHED, metrics=result.get("metrics", {}),
                          headline=result.get("headline"))
    why = "complete, but result.json is missing or unreadable" if state == COMPLETE else f"ended as {state}"
    return RunOutcome(job.spec.hash, job.spec.name, FAILED, reason=status.get("reason", why))


def make_executor(study: ResolvedStudy, workers: int | None) -> Executor:
    """The study's executor, or a local pool when ``--workers N`` (N > 1) is given."""
    from harness.engine.executors import InProcessExecutor, ProcessPoolExecutor
    from harness.engine.study import instantiate_plugin

    if workers is not None:
        return ProcessPoolExecutor(workers=workers) if workers > 1 else InProcessExecutor()
    return instantiate_plugin(study.executor_config, Executor, str(study.source), "executor")


def _is_study_dir(path: Path) -> bool:
    """A grid study's folder, or a sweep's (``sweep.json``; sweeps before their ``study.json`` existed)."""
    return (path / "study.json").exists() or (path / "sweep.json").exists()


def ls_rows(runs_dir: str | Path) -> list[dict[str, Any]]:
    """One row per run under ``runs_dir`` (a study or sweep folder, or a folder of them): its folder's state,
    or ``pending`` for a run of the study's manifest that has no folder yet."""
    root = Path(runs_dir)
    study_dirs = [root] if _is_study_dir(root) else sorted(
        p for p in root.iterdir() if p.is_dir() and _is_study_dir(p)) if root.is_dir() else []
    rows = []
    for sdir in study_dirs:
        first = len(rows)
        store = RunStore(sdir.parent, sdir.name)
        listed = [r for r in (store.read_manifest() or {}).get("runs", []) if isinstance(r, dict) and "hash" in r]
        order = {r["hash"]: i for i, r in enumerate(listed)}
        for run_dir in sorted(store.runs(), key=lambda d: (order.get(d.hash, len(order)), d.hash)):
            cfg = run_dir.read_config() or {}
            status = run_dir.read_status()
            result = run_dir.read_result() or {}
            headline, metrics = result.get("headline"), result.get("metrics")
            metric = metrics.get(headline) if isinstance(metrics, dict) and isinstance(headline, str) else None
            state = status.get("state", "pending")
            if state == "running" and run_dir.is_stale():
                state = "stale"
            unreadable = run_dir.unreadable()
            if unreadable:  # shown, never fatal: the next `harness run` sets the files aside and reruns it
                state, status = CORRUPT, {**status, "reason": "; ".join(unreadable)}
            labels = cfg.get("labels") or {}
            rows.append({
                "study": cfg.get("study", sdir.name), "hash": run_dir.hash,
                "variant": "/".join(str(v) for v in labels.values()) or "-", "seed": cfg.get("seed"),
                "status": state, "duration_s": status.get("seconds"),
                "headline": f"{headline}={metric:.4g}" if isinstance(metric, (int, float)) else "-",
                "reason": status.get("reason"),
            })
        present = {row["hash"] for row in rows[first:]}
        rows += [{"study": sdir.name, "hash": r["hash"], "seed": r.get("seed"), "status": "pending",
                  "variant": "/".join(str(v) for v in (r.get("labels") or {}).values()) or "-", "headline": "-"}
                 for r in listed if r["hash"] not in present]
        rows[first:] = sorted(rows[first:], key=lambda r: (order.get(r["hash"], len(order)), r["hash"]))
        add_ls_flags(rows[first:], sdir)  # outdated versions, another commit (harness/engine/versions.py)
    return rows
