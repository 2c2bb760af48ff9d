"""``harness report``: a runs folder in, paper-style tables, figures and index.html out."""

from __future__ import annotations

import sys
from pathlib import Path


def report(runs_dir: Path, study: str | None = None) -> int:
    """Write the tables, figures, findings and index.html of RUNS_DIR's studies to RUNS_DIR/report/.

    Problems with the input (failed runs, a run of another study, a missing metric) are printed
    one per line on stderr; the report is still built from what is there. Exit code 0 when a report
    was written, 2 (via the CLI's error handler) when RUNS_DIR holds no study at all.

    Args:
        runs_dir: a folder of studies (``runs/``) or one study's folder (``runs/<study>``).
        study: report only this study of the folder (default: every study in it).
    """
    from reports import build_reports

    _recover_sweep_manifests(Path(runs_dir))
    print("building the report ...", file=sys.stderr, flush=True)
    result = build_reports(runs_dir, study)
    for built in result.studies:
        scores = f"; scores: {built.evaluator}" if built.evaluator else ""
        print(f"study {built.study}: {built.complete_runs} of {built.total_runs} runs complete{scores}")
        for problem in built.problems:
            print(f"  warning: {problem}", file=sys.stderr)
    _sweep_reports(Path(runs_dir), result)
    print(f"report: {result.index}")
    return 0


def sweep_and_study_report(runs_dir: Path, name: str, storage: str | None = None) -> None:
    """After ``harness sweep``: the study report of the sweep's runs and the sweep report, linked; a
    problem with the study report never loses the sweep report."""
    from harness.errors import HarnessError
    from harness.sweep.report import sweep_report
    from reports import build_reports

    study_index = None
    print("building the report ...", file=sys.stderr, flush=True)
    try:
        study_index = build_reports(Path(runs_dir), name).index
        print(f"report: {study_index}")
    except HarnessError as exc:
        print(f"warning: study report not built: {exc}", file=sys.stderr)
    if storage is None and study_index is not None:
        from harness.sweep.link import build_sweep_report

        index = build_sweep_report(Path(runs_dir) / name, study_index)
    else:
        index = sweep_report(runs_dir, name, storage=storage).get("index")
    if index is not None:
        _print_sweep(index)


def _print_sweep(index: Path) -> None:
    from harness.sweep.link import report_warnings

    for text in report_warnings(index):
        print(f"  warning: {text}", file=sys.stderr)
    print(f"sweep report: {index}")


def _recover_sweep_manifests(runs_dir: Path) -> None:
    """A sweep folder from before sweeps wrote ``study.json`` gets one from its storage, so it reports."""
    from harness.sweep.link import sweep_folders
    from harness.sweep.manifest import recover_study_manifest

    for folder in sweep_folders(runs_dir):
        if not (folder / "study.json").exists() and recover_study_manifest(folder):
            print(f"  note: {folder}: study.json rebuilt from the sweep's storage", file=sys.stderr)


def _sweep_reports(runs_dir: Path, result) -> None:
    """Each sweep's own report beside its study report, the two pages linked to each other."""
    from harness.sweep.link import build_sweep_report, sweep_folders

    for built in result.studies:
        for folder in sweep_folders(runs_dir, built.study):
            index = build_sweep_report(folder, built.index)
            if index is not None:
                _print_sweep(index)
