"""``harness run`` and ``harness validate``: a study file in, runs or a verdict out."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.commands import study_file
from harness.commands.summary import summary_table
from harness.engine.driver import DEFAULT_RUNS_DIR, check_output_folders, make_executor, run_study
from harness.engine.progress import make_progress
from harness.engine.study import ResolvedStudy, check_instantiable
from harness.errors import ConfigError, HarnessError


def run(study: Path, preset: str | None = None, overrides: list[str] | None = None,
        runs_dir: Path = Path(DEFAULT_RUNS_DIR), cache_dir: Path | None = None, workers: int | None = None,
        force: bool = False, print_config: bool = False, plain: bool = False, no_report: bool = False) -> int:
    """Run every run of a study that is not complete yet; complete runs are skipped, dead ones resumed."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    loaded, resolved = study_file.load(study, preset, overrides)
    if print_config:
        study_file.print_config(loaded, resolved)
        return 0
    check_output_folders(runs_dir, cache_dir)
    check_instantiable(resolved)  # every plugin is built once before anything is written
    warn_merged_rows(resolved)
    executor = make_executor(resolved, workers)
    display = make_progress(workers or 1, force_plain=plain)
    try:
        summary = run_study(resolved, executor, runs_dir=runs_dir, cache_dir=cache_dir, force=force,
                            progress=display, manifest=not study_file.is_run_file(study))
    finally:
        display.close()
    table = summary_table(summary.outcomes)
    if table:
        print(table)
    for line in summary.lines():
        print(line, file=sys.stderr if summary.failed else sys.stdout)
    computed = any(o.state in ("complete", "failed") for o in summary.outcomes)
    up_to_date = not computed and (Path(runs_dir) / "report").is_dir()  # a no-op rerun leaves it as it is
    if not no_report and not up_to_date and len(summary.failed) < len(summary.outcomes):
        _report(runs_dir, resolved.name)
    return summary.exit_code


def warn_merged_rows(resolved: ResolvedStudy) -> None:
    """Say which grid rows an override made identical: their runs are shared, under the first row's labels."""
    for note in resolved.merged_rows:
        print(f"warning: {note}", file=sys.stderr)


def _report(runs_dir: Path, study: str) -> None:
    """The study's report, built from whatever completed; a report problem never fails the study."""
    from reports import build_reports

    print("building the report ...", file=sys.stderr, flush=True)
    try:
        result = build_reports(runs_dir, study)
    except HarnessError as exc:
        print(f"warning: report not built: {exc}", file=sys.stderr)
        return
    print(f"report: {result.index}")


def validate(study: list[Path], preset: str | None = None, overrides: list[str] | None = None,
             print_config: bool = False) -> int:
    """Parse studies and build every plugin they name, without running anything."""
    failed = 0
    paths = [study] if isinstance(study, (str, Path)) else list(study)
    for i, path in enumerate(paths):
        try:
            loaded, resolved = study_file.load(path, preset, overrides)
            if print_config:  # the resolved study, nothing else: the output is itself a study file
                if len(paths) > 1:  # one YAML document per file
                    sys.stdout.write(("---\n" if i else "") + f"# {path}\n")
                study_file.print_config(loaded, resolved)
                continue
            built = check_instantiable(resolved)
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        warn_merged_rows(resolved)
        seeds = resolved.config["seeds"]
        print(f"ok: {path} — study '{resolved.name}', {len(resolved.runs)} runs "
              f"({len(built)} distinct pipelines × {len(seeds)} seeds), every plugin built")
    return 2 if failed else 0
