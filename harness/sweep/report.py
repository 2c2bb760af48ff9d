"""The sweep's report: best trials, parameter importances, history, parallel coordinates, Pareto front.

``sweep_report(runs_dir, study)`` reads the study back from the storage named in
``runs/<study>/sweep.json`` (or the one given) and writes plain files under
``RUNS_DIR/report/sweep-<study>/``: PNG figures drawn by Optuna's matplotlib visualisations on the Agg
backend (parameters under their short names, :mod:`.names`), the trials as CSV, the best trials as
Markdown, and an ``index.html`` over them (:mod:`.report_html`).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.io.atomic import atomic_write_json, atomic_write_text
from harness.sweep.names import short_names
from harness.sweep.report_html import SweepPage, write_index
from harness.sweep.storage import open_storage

log = logging.getLogger(__name__)

# Fewer complete trials than this and the importances are mostly noise: the report says so.
MIN_TRIALS_FOR_IMPORTANCE = 10


def report_dir(runs_dir: str | Path, study_name: str) -> Path:
    return Path(runs_dir) / "report" / f"sweep-{study_name}"


def load_optuna_study(runs_dir: str | Path, study_name: str, storage: str | None = None) -> Any:
    """The Optuna study a sweep wrote, from ``storage`` or the one its manifest records."""
    import optuna

    if storage is None:
        manifest = Path(runs_dir) / study_name / "sweep.json"
        if manifest.exists():
            storage = _recorded_storage(json.loads(manifest.read_text()), Path(runs_dir) / study_name)
    opened = open_storage(storage, runs_dir, study_name)
    try:
        return optuna.load_study(study_name=study_name, storage=opened.storage)
    except KeyError:
        raise ConfigError(f"storage '{opened.label}': no study named '{study_name}'") from None


def _recorded_storage(manifest: dict[str, Any], study_dir: Path) -> str | None:
    """The storage a manifest names; a redacted RDB URL is used as is (the password comes from PGPASSWORD/.pgpass)."""
    label = str(manifest.get("storage") or "")
    if manifest.get("storage_kind") == "rdb":
        return label.replace(":***@", "@")
    if not label or label == "optuna.log":
        return None
    return label if Path(label).is_absolute() else str(study_dir / label) if (study_dir / label).exists() else label


def _best_rows(study: Any, names: list[str], short: dict[str, str]) -> list[dict[str, str]]:
    best = study.best_trials
    keys = sorted({k for t in best for k in t.params})
    return [{"trial": f"#{t.number}", **{n: f"{v:.6g}" for n, v in zip(names, t.values)},
             **{short.get(k, k): _cell(t.params.get(k, "")) for k in keys}}
            for t in sorted(best, key=lambda t: t.number)]


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _markdown(rows: list[dict[str, str]]) -> str:
    if not rows:
        return ""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r.values()) + " |" for r in rows]) + "\n"


def readable_study(study: Any, short: dict[str, str]) -> Any:
    """An in-memory copy of ``study`` whose parameters carry their short names (for the figures' axes);
    the study itself when nothing is renamed or the copy cannot be made."""
    import optuna
    from optuna.trial import TrialState, create_trial

    if all(k == v for k, v in short.items()):
        return study
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created in memory" line
    try:
        copy = optuna.create_study(directions=study.directions)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
            copy.add_trial(create_trial(
                state=t.state, values=t.values if t.state == TrialState.COMPLETE else None,
                params={short.get(k, k): v for k, v in t.params.items()},
                distributions={short.get(k, k): d for k, d in t.distributions.items()},
                intermediate_values=t.intermediate_values))
        return copy
    except Exception as exc:  # noqa: BLE001 - full names on the axes are worse, never fatal
        log.warning("sweep report: parameters keep their full names (%s: %s)", type(exc).__name__, exc)
        return study
    finally:
        optuna.logging.set_verbosity(verbosity)


def _figures(study: Any, names: list[str], directions: list[str]) -> dict[str, Callable[[], Any]]:
    """Figure name → a function drawing it; importance uses PedAnova, sign-flipped when maximising."""
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as ovm

    figs: dict[str, Callable[[], Any]] = {}
    params = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    for i, (name, direction) in enumerate(zip(names, directions)):
        # PedAnova ranks parameters by how well they reach *low* values: negate a maximised objective.
        sign = -1.0 if direction == "maximize" else 1.0
        target = (lambda t, i=i, sign=sign: sign * t.values[i])
        raw = (lambda t, i=i: t.values[i])
        suffix = "" if len(names) == 1 else f"-{name}"
        if len(params) > 1:
            figs[f"importances{suffix}"] = lambda target=target, name=name: ovm.plot_param_importances(
                study, evaluator=PedAnovaImportanceEvaluator(), target=target, target_name=name)
        figs[f"history{suffix}"] = lambda raw=raw, name=name: ovm.plot_optimization_history(
            study, target=raw, target_name=name)
        figs[f"parallel{suffix}"] = lambda raw=raw, name=name: ovm.plot_parallel_coordinate(
            study, target=raw, target_name=name)
    if len(names) == 2 or len(names) == 3:
        figs["pareto"] = lambda: ovm.plot_pareto_front(study, target_names=names)
    return figs


def sweep_report(runs_dir: str | Path, study_name: str, storage: str | None = None,
                 study_report: Path | None = None) -> dict[str, Path]:
    """Write the sweep's tables, figures and index.html; returns ``{name: file}`` (empty when no trial
    completed). ``study_report``: the study's own index.html, linked from the sweep's page."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.trial import TrialState

    study = load_optuna_study(runs_dir, study_name, storage)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {}
    out = report_dir(runs_dir, study_name)
    out.mkdir(parents=True, exist_ok=True)
    directions = [d.name.lower() for d in study.directions]
    names = study.metric_names or ([f"objective_{i}" for i in range(len(directions))] if len(directions) > 1 else ["objective"])
    manifest = Path(runs_dir) / study_name / "sweep.json"
    if manifest.exists():
        names = list(json.loads(manifest.read_text()).get("objectives", {})) or names
    short = short_names(sorted({k for t in study.get_trials(deepcopy=False) for k in t.params}))
    files: dict[str, Path] = {}
    atomic_write_text(out / "trials.csv", study.trials_dataframe().to_csv(index=False))
    files["trials"] = out / "trials.csv"
    best = _best_rows(study, names, short)
    atomic_write_text(out / "best_trials.md", _markdown(best))
    files["best_trials"] = out / "best_trials.md"
    files.update(_draw(readable_study(study, short), names, directions, out))
    warnings_ = few_trials_warning(len(complete), files)  # on the page and in index.json; commands print them
    counts = {s.name.lower(): n for s in TrialState if (n := len(study.get_trials(deepcopy=False, states=(s,))))}
    link = os.path.relpath(study_report, out) if study_report is not None else None
    page = SweepPage(study_name, names, directions, counts, best, short,
                     [k for k in files if files[k].suffix == ".png"], warnings_, link,
                     no_best="No complete trial satisfies the sweep's constraints." if complete else "No complete trial yet.")
    files["index"] = write_index(page, out)
    atomic_write_json(out / "index.json", {"study": study_name, "objectives": names, "directions": directions,
                                           "parameters": short, "warnings": warnings_,
                                           "files": {k: v.name for k, v in files.items()}})
    return files


def few_trials_warning(n_complete: int, files: dict[str, Path]) -> list[str]:
    """A line for the page and the log when importances are drawn from fewer than 10 complete trials."""
    if n_complete >= MIN_TRIALS_FOR_IMPORTANCE or not any(k.startswith("importances") for k in files):
        return []
    plural = "s" if n_complete != 1 else ""
    text = (f"parameter importances rest on {n_complete} complete trial{plural} "
            f"(fewer than {MIN_TRIALS_FOR_IMPORTANCE}): read them as a hint, not a ranking")
    return [text]


def _draw(study: Any, names: list[str], directions: list[str], out: Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    files: dict[str, Path] = {}
    for fig_name, draw in _figures(study, names, directions).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.savefig(out / f"{fig_name}.png", dpi=100, bbox_inches="tight")
            plt.close(figure)
            files[fig_name] = out / f"{fig_name}.png"
        except Exception as exc:  # noqa: BLE001 - one figure Optuna cannot draw must not lose the others
            log.warning("sweep report: %s not drawn (%s: %s)", fig_name, type(exc).__name__, exc)
    return files
