"""``harness sweep`` and ``harness worker``: an Optuna study over a study file's ``sweep`` section."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from harness.commands import study_file
from harness.engine.driver import DEFAULT_RUNS_DIR, check_output_folders, default_cache_dir

log = logging.getLogger(__name__)


def _prepare(study: Path, preset: str | None, overrides: list[str] | None):
    from harness.sweep import check_sweep, parse_sweep

    loaded, resolved = study_file.load(study, preset, overrides)
    spec = parse_sweep(resolved)
    check_sweep(spec)
    return spec, study_file.printable(loaded, resolved)  # the second: what --print-config writes


def _work(spec, runs_dir: Path, cache_dir: Path | None, storage: str | None, n_trials: int | None,
          timeout: float | None, *, enqueue: bool) -> int:
    from harness.sweep.leases import new_worker_id
    from harness.sweep.manifest import ManifestCallback, write_study_manifest
    from harness.sweep.wandb_callback import callbacks_for
    from harness.sweep.worker import (
        enqueue_baselines,
        join_study,
        open_study_storage,
        run_worker,
        study_lock,
        write_sweep_manifest,
    )

    check_output_folders(runs_dir, cache_dir)
    opened = open_study_storage(spec, runs_dir, storage)
    worker_id = new_worker_id()
    with study_lock(runs_dir, spec.name):
        study = join_study(spec, opened, worker_id)
        if enqueue:
            enqueue_baselines(study, spec)
        write_sweep_manifest(runs_dir, spec, opened)
        write_study_manifest(runs_dir, spec, study)  # `harness ls` and `harness report` read the sweep's runs
    callbacks = [ManifestCallback(runs_dir, spec), *callbacks_for(spec, runs_dir)]
    report = run_worker(spec, study, opened, runs_dir=runs_dir,
                        cache_dir=cache_dir if cache_dir is not None else default_cache_dir(runs_dir),
                        n_trials=n_trials if n_trials is not None else spec.config.n_trials,
                        timeout_s=timeout if timeout is not None else spec.config.timeout_s,
                        worker_id=worker_id, callbacks=callbacks)
    for cb in callbacks:
        getattr(cb, "close", lambda _study: None)(study)
    print(_summary_line(study, spec, report, opened.label))
    return _exit_code(study, spec, report, runs_dir)


def _exit_code(study, spec, report, runs_dir: Path) -> int:
    """1 when this process ran trials and the study holds no complete one but failed ones: the sweep
    found nothing because its runs broke. Trials its pruner stopped are the sweep's own decision, and
    ``--n-trials 0`` (set up, run nothing) is no failure either."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if (not report.trials or any(t.state == TrialState.COMPLETE for t in trials)
            or not any(t.state == TrialState.FAIL for t in trials)):
        return 0
    print(f"sweep {spec.name}: no trial complete ({len(trials)} trials, none finished); "
          f"`harness ls {runs_dir / spec.name}` shows why each run failed", file=sys.stderr)
    return 1


def _summary_line(study, spec, report, label: str) -> str:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    line = (f"sweep {spec.name}: this worker ran {len(report.trials)} trials; the study holds {len(trials)} "
            f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed, "
            f"{counts['running']} running) in {label}")
    if counts["complete"] and len(spec.directions) == 1:
        try:
            best = study.best_trial
        except ValueError:  # constraints: no complete trial satisfies them
            return line + "; no complete trial satisfies the constraints"
        from harness.sweep.names import short_names

        short = short_names(best.params)
        params = ", ".join(f"{short[k]}={v:.4g}" if isinstance(v, float) else f"{short[k]}={v}"
                           for k, v in best.params.items())
        line += f"; best #{best.number} {spec.objective_names[0]}={best.value:.6g} ({params})"
    return line


def sweep(study: Path, preset: str | None = None, overrides: list[str] | None = None,
          runs_dir: Path = Path(DEFAULT_RUNS_DIR), cache_dir: Path | None = None, storage: str | None = None,
          n_trials: int | None = None, timeout: float | None = None, print_config: bool = False,
          report: bool = True) -> int:
    """Search a study's sweep space with Optuna; every trial is a run in the store (cached, resumable).

    Checks the sweep (ranges, keys, objectives, storage, name clash) before any trial, enqueues the
    baselines once, runs ``--n-trials`` trials in this process, then writes the sweep report under
    RUNS_DIR/report/sweep-<study>/. More processes join with ``harness worker``.
    """
    spec, printable = _prepare(study, preset, overrides)
    if print_config:
        sys.stdout.write(study_file.dump(printable))
        return 0
    code = _work(spec, runs_dir, cache_dir, storage, n_trials, timeout, enqueue=True)
    if report:
        from harness.commands.report import sweep_and_study_report

        sweep_and_study_report(runs_dir, spec.name, storage)
    return code


def worker(study: Path, storage: str | None = None, preset: str | None = None, overrides: list[str] | None = None,
           runs_dir: Path = Path(DEFAULT_RUNS_DIR), cache_dir: Path | None = None, n_trials: int | None = None,
           timeout: float | None = None, print_config: bool = False) -> int:
    """Join a running sweep from any machine and run trials until --n-trials or --timeout.

    Give the same study file (and preset/overrides) as the sweep, and the shared ``--storage`` (a
    PostgreSQL URL, or a journal file on a shared disk); runs go to this machine's RUNS_DIR.
    """
    spec, printable = _prepare(study, preset, overrides)
    if print_config:
        sys.stdout.write(study_file.dump(printable))
        return 0
    return _work(spec, runs_dir, cache_dir, storage, n_trials, timeout, enqueue=False)


def sweep_parser():
    """The argument list of ``harness sweep`` (same style as harness/cli.py)."""
    from harness.commands.arguments import new_parser, study_args

    p = new_parser(sweep.__doc__.split("\n")[0])
    study_args(p)
    _sweep_args(p)
    p.add_argument("--no-report", dest="report", action="store_false", help="do not write the sweep report at the end")
    return p


def worker_parser():
    """The argument list of ``harness worker``."""
    from harness.commands.arguments import new_parser, study_args

    p = new_parser(worker.__doc__.split("\n")[0])
    study_args(p)
    _sweep_args(p)
    return p


def _sweep_args(p) -> None:
    p.add_argument("--runs-dir", dest="runs_dir", type=Path, default=Path(DEFAULT_RUNS_DIR), help="root of the run store")
    p.add_argument("--cache-dir", dest="cache_dir", type=Path, default=None,
                   help="stage cache shared across studies (default: RUNS_DIR/.stages or $HARNESS_CACHE_DIR)")
    p.add_argument("--storage", type=str, default=None,
                   help="Optuna storage: an RDB URL (postgresql://user@host/db) or a journal file; "
                        "default: sweep.storage, else RUNS_DIR/<study>/optuna.log")
    p.add_argument("--n-trials", dest="n_trials", type=int, default=None, help="trials this process runs (default: sweep.n_trials)")
    p.add_argument("--timeout", type=float, default=None, help="seconds after which this process starts no new trial")
