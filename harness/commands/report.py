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

    result = build_reports(runs_dir, study)
    for built in result.studies:
        print(f"study {built.study}: {built.complete_runs} of {built.total_runs} runs complete")
        for problem in built.problems:
            print(f"  warning: {problem}", file=sys.stderr)
    print(f"report: {result.index}")
    return 0
