"""The sweep's report: best trials, parameter importances, history, parallel coordinates, Pareto front.

``sweep_report(runs_dir, study)`` reads the study back from the storage named in
``runs/<study>/sweep.json`` (or the one given) and writes plain files under
``RUNS_DIR/report/sweep-<study>/`` for the HTML report to embed: PNG figures drawn by Optuna's
matplotlib visualisations on the Agg backend, the trials as CSV, and the best trials as Markdown.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.io.atomic import atomic_write_json, atomic_write_text
from harness.sweep.storage import open_storage

log = logging.getLogger(__name__)


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


def _best_table(study: Any, names: list[str]) -> str:
    best = study.best_trials
    keys = sorted({k for t in best for k in t.params})
    head = ["trial", *names, *keys]
    rows = [[f"#{t.number}", *(f"{v:.6g}" for v in t.values), *(str(t.params.get(k, "")) for k in keys)]
            for t in sorted(best, key=lambda t: t.number)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


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


def sweep_report(runs_dir: str | Path, study_name: str, storage: str | None = None) -> dict[str, Path]:
    """Write the sweep's tables and figures; returns ``{name: file}`` (empty when no trial completed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    files: dict[str, Path] = {}
    frame = study.trials_dataframe()
    atomic_write_text(out / "trials.csv", frame.to_csv(index=False))
    files["trials"] = out / "trials.csv"
    atomic_write_text(out / "best_trials.md", _best_table(study, names))
    files["best_trials"] = out / "best_trials.md"
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
    atomic_write_json(out / "index.json", {"study": study_name, "objectives": names, "directions": directions,
                                           "files": {k: v.name for k, v in files.items()}})
    return files
