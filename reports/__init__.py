"""Paper-style tables, figures and the HTML report of a runs folder (``harness report RUNS_DIR``).

``build_report(runs_dir)`` reads the run store (never the trackers), and writes to
``RUNS_DIR/report/`` — or ``RUNS_DIR/report/<study>/`` with a linking ``index.html`` when the folder
holds several studies — the tables (Markdown, LaTeX ready to ``\\input``: ``table.tex`` and
``table_full.tex``, HTML, CSV), the figures, the gallery's clips in ``videos/``, ``findings.md`` and
``index.html``. Bad input never stops it: every problem becomes one line on the page and in
:attr:`StudyReport.problems`, and the report is built from what is there.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, HarnessError
from harness.tracking import Tracker, mirror_report
from reports.collect import StudyData, collect_study, find_studies, load_curves
from reports.figures import FigureInputs, build_figures
from reports.findings import findings
from reports.gallery import VIDEOS_DIRNAME, build_gallery, gallery_html
from reports.html import StudyPage, write_landing_page, write_study_page
from reports.learning import convergence
from reports.table_files import write_tables
from reports.tables import ResultTable, build_table, evaluator_sentence, to_frame, to_html

REPORT_DIRNAME = "report"
WANDB_TABLE_KEY = "main_table"

__all__ = ["REPORT_DIRNAME", "ReportResult", "StudyReport", "build_report", "build_reports"]


@dataclass
class StudyReport:
    study: str
    index: Path
    complete_runs: int
    total_runs: int
    problems: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    evaluator: str = ""  # 'sprites-bench (harness 0.1.0)', 'VBench 0.1.5'


@dataclass
class ReportResult:
    index: Path  # the page to open: the study's, or the landing page when several were built
    studies: list[StudyReport]


def build_report(runs_dir: str | Path, study: str | None = None, *, tracker: Tracker | None = None,
                 figures: bool = True) -> Path:
    """Write the report of ``runs_dir`` (every study, or only ``study``); returns the index.html to open."""
    return build_reports(runs_dir, study, tracker=tracker, figures=figures).index


def build_reports(runs_dir: str | Path, study: str | None = None, *, tracker: Tracker | None = None,
                  figures: bool = True) -> ReportResult:
    """Like :func:`build_report`, with each study's problems and findings for the caller to print.

    ``tracker`` overrides the study's own tracker config for the W&B table (tests pass a recorder);
    ``figures=False`` writes tables, findings and the page without drawing (seconds faster).
    """
    from harness.engine.driver import default_cache_dir

    runs_dir = Path(runs_dir)
    folders = find_studies(runs_dir)
    if not folders:
        raise ConfigError(f"{runs_dir}: no study folder here (no study.json in it or in its subfolders)")
    single_folder = folders == [runs_dir]
    chosen = _select(folders, study, runs_dir)
    report_root = runs_dir / REPORT_DIRNAME
    stages = default_cache_dir(runs_dir.parent if single_folder else runs_dir)
    reports = []
    for folder in chosen:
        out_dir = report_root if len(folders) == 1 else report_root / folder.name
        reports.append(_build_study(folder, stages, out_dir, tracker, figures, scrub=[str(runs_dir.resolve())]))
    if len(folders) == 1:
        return ReportResult(reports[0].index, reports)
    summaries = {p.parent.name: "" for p in report_root.glob("*/index.html")}
    summaries.update({r.index.parent.name: f"{r.complete_runs} of {r.total_runs} runs complete" for r in reports})
    landing = write_landing_page(report_root, summaries)
    return ReportResult(reports[0].index if study else landing, reports)


def _select(folders: list[Path], study: str | None, runs_dir: Path) -> list[Path]:
    if study is None:
        return folders
    chosen = [f for f in folders if f.name == study]
    if not chosen:
        names = ", ".join(f.name for f in folders)
        raise ConfigError(f"{runs_dir}: no study '{study}' (studies here: {names})")
    return chosen


def _build_study(folder: Path, stages: Path, out_dir: Path, tracker: Tracker | None, figures: bool,
                 scrub: list[str]) -> StudyReport:
    data = collect_study(folder, stages)
    table = build_table(data)
    for old in out_dir.glob("*.png"):  # a figure the data no longer supports must not linger
        old.unlink()
    shutil.rmtree(out_dir / VIDEOS_DIRNAME, ignore_errors=True)  # nor a clip of a run no longer in the study
    files = write_tables(table, out_dir)
    curves = load_curves(data)
    drawn, gallery = [], ""
    if figures and table.rows:  # with no complete run there is nothing to draw, and the page says why
        inputs = FigureInputs(data, table, curves, out_dir, data.problems)
        drawn = build_figures(inputs)
        built = build_gallery(inputs)
        gallery = gallery_html(built, _relative(folder, out_dir)) if built else ""
    sentences = findings(data, table, curves)
    _log_table(data, table, tracker, [out_dir / f.file for f in drawn])
    scores = f"{evaluator_sentence(table)}\n\n" if table.evaluator else ""
    (out_dir / "findings.md").write_text(scores + "".join(f"- {s}\n" for s in sentences), encoding="utf-8")
    page = StudyPage(data.name, data.manifest, to_html(table), {fmt: p.name for fmt, p in files.items()},
                     drawn, sentences, data.problems, data.runs, scrub, convergence(curves), gallery,
                     _relative(folder, out_dir), evaluator_sentence(table))
    index = write_study_page(page, out_dir)
    complete = int((data.runs["state"] == "complete").sum()) if len(data.runs) else 0
    return StudyReport(data.name, index, complete, len(data.runs), data.problems, sentences,
                       data.evaluator.text if data.evaluator else "")


def _relative(folder: Path, out_dir: Path) -> str:
    """The study folder as a link prefix from the page ('../' for RUNS_DIR/report/ of one study)."""
    return os.path.relpath(folder.resolve(), out_dir.resolve()).replace(os.sep, "/").rstrip("/") + "/"


def _study_tracker(data: StudyData) -> Tracker | None:
    """The tracker the study's runs used (from study.json), or None when tracking is off."""
    from harness.engine.config import check_allowlist
    from harness.engine.study import instantiate_plugin

    config = data.manifest.get("config") or {}
    tracker = config.get("tracker") or {}
    if not tracker or str(tracker.get("class_path", "")).endswith("NullTracker"):
        return None
    source = f"{data.name}/study.json"
    try:
        check_allowlist({"tracker": tracker}, list(config.get("allow_modules") or []), source)
        return instantiate_plugin(tracker, Tracker, source, "tracker")
    except HarnessError as exc:
        data.problems.append(f"{exc}; the table was not sent to the tracker")
        return None


def _log_table(data: StudyData, table: ResultTable, tracker: Tracker | None, figures: list[Path] = ()) -> None:
    """Mirror the main table (a tracker table) and the figures (images) to the study's tracker as ONE
    'report' run of the study's group, replaced in place by each report (harness.tracking.mirror_report)."""
    inner = tracker if tracker is not None else _study_tracker(data)
    if inner is None or not table.rows:
        return
    failures = mirror_report(inner, data.name, data.folder, {WANDB_TABLE_KEY: to_frame(table)}, figures)
    data.problems.extend(f"{failure}; the table was not mirrored" for failure in failures)
