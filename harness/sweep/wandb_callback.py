"""Our own W&B mirror of a sweep: one W&B run per trial, grouped by study, and a study-level run.

Optuna's ``WeightsAndBiasesCallback`` is deprecated (removal in Optuna 6) and its successor needs the
network, so the harness keeps a small one. It is on when the study's tracker is
``harness.tracking.WandbTracker`` and uses that tracker's project, entity and mode (offline by
default, never prompting). Failures are logged, never raised: W&B mirrors, the store is the truth.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from harness.engine.config import expand_dotted
from harness.errors import require
from harness.sweep.schema import SweepSpec

log = logging.getLogger(__name__)

WANDB_TRACKER = "harness.tracking.WandbTracker"


class WandbTrialCallback:
    """``study.optimize`` callback: each finished trial becomes a W&B run (job_type ``trial``)."""

    def __init__(self, study_name: str, objective_names: list[str], folder: Path, project: str = "causal-video-harness",
                 mode: str = "offline", entity: str | None = None):
        self.study_name, self.objective_names, self.folder = study_name, objective_names, Path(folder)
        self.project, self.mode, self.entity = project, mode, entity

    def _init(self, **kwargs: Any) -> Any:
        wandb = require("wandb", feature="the W&B sweep callback")
        os.environ.setdefault("WANDB_SILENT", "true")
        self.folder.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(mode=self.mode, silent=True, console="off", disable_git=True, save_code=False,
                                  x_disable_meta=True, x_disable_stats=True, disable_job_creation=True)
        return wandb.init(project=self.project, entity=self.entity, group=self.study_name, dir=str(self.folder),
                          settings=settings, reinit="create_new", **kwargs)

    def __call__(self, study: Any, trial: Any) -> None:
        try:
            # nested like the runs' own config (method.init_args.alpha → {"method": {"init_args": {...}}})
            run = self._init(id=f"{self.study_name}-trial-{trial.number}", name=f"trial-{trial.number}",
                             job_type="trial", resume="allow", tags=[f"study:{self.study_name}"[:64], "trial"],
                             config={**expand_dotted(trial.params), "runs": trial.user_attrs.get("harness.runs", [])})
            run.summary["state"] = trial.state.name.lower()
            for name, value in zip(self.objective_names, trial.values or []):
                run.summary[name] = value
            run.finish(exit_code=0 if trial.state.name == "COMPLETE" else 1)
        except Exception as exc:  # noqa: BLE001 - a tracker never stops a sweep
            log.warning("W&B trial callback failed: %s: %s", type(exc).__name__, exc)

    def close(self, study: Any) -> None:
        """The study-level run (job_type ``sweep``) with the table of every trial."""
        try:
            import wandb

            frame = study.trials_dataframe()
            if self.mode == "offline":  # the table holds every trial: one copy, replaced, not one per worker exit
                import shutil

                for old in (self.folder / "wandb").glob(f"offline-run-*-{self.study_name}-sweep"):
                    shutil.rmtree(old, ignore_errors=True)
            run = self._init(id=f"{self.study_name}-sweep", name=f"sweep-{self.study_name}", job_type="sweep",
                             resume="allow", tags=[f"study:{self.study_name}"[:64], "sweep"])
            run.log({"trials": wandb.Table(dataframe=frame.astype(str))})
            run.summary["n_trials"] = len(frame)
            run.finish()
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B sweep table failed: %s: %s", type(exc).__name__, exc)


def callbacks_for(spec: SweepSpec, runs_dir: str | Path) -> list[WandbTrialCallback]:
    """The W&B callback when the study tracks with W&B; nothing otherwise."""
    tracker = spec.study.tracker_config or {}
    if tracker.get("class_path") != WANDB_TRACKER:
        return []
    args = tracker.get("init_args") or {}
    if args.get("mode") == "disabled":
        return []
    return [WandbTrialCallback(spec.name, spec.objective_names, Path(runs_dir) / spec.name,
                               project=args.get("project", "causal-video-harness"), mode=args.get("mode", "offline"),
                               entity=args.get("entity"))]
