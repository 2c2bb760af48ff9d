"""Trackers mirror a run's results to an experiment tracker; the run folder stays the truth.

A tracker is chosen in the study (``tracker: {class_path: harness.tracking.WandbTracker}``) and
wrapped by :class:`GuardedTracker`, which logs and swallows every tracker failure: a broken tracker
never fails a run.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import require

log = logging.getLogger(__name__)


@dataclass
class RunInfo:
    """What a tracker is told about a run when it starts."""

    id: str  # the run's hash: one tracker run per store run, so resume continues it
    name: str  # human label, e.g. "asd/1*/seed=0"
    group: str  # the study
    job_type: str  # the method
    config: dict[str, Any]
    dir: Path  # a folder the tracker may write to (inside the study's runs folder)
    tags: list[str] = field(default_factory=list)
    # A run rewritten in full each time it starts (the study's report run): the tracker keeps one copy of
    # it, updated in place, instead of one more offline run of the same id per start.
    replace: bool = False


class Tracker:
    """Base of trackers: every method is a no-op, so a tracker overrides only what it mirrors.

    Plugins named in a study's ``tracker`` key must subclass it.
    """

    def start(self, run: RunInfo) -> None:
        pass

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_video(self, key: str, path: str | os.PathLike, step: int | None = None, caption: str | None = None) -> None:
        pass

    def log_image(self, key: str, path: str | os.PathLike, caption: str | None = None) -> None:
        pass

    def log_table(self, key: str, dataframe: Any) -> None:
        pass

    def summary(self, metrics: Mapping[str, Any]) -> None:
        pass

    def finish(self, status: str) -> None:
        pass


class NullTracker(Tracker):
    """Tracks nothing; the default."""


class WandbTracker(Tracker):
    """Weights & Biases, offline unless told otherwise, never prompting for a login.

    Args:
        project: W&B project name.
        mode: ``offline`` (default: run folders under ``<runs>/<study>/wandb``, sync later with
            ``wandb sync``), ``online`` or ``disabled``.
        entity: W&B entity (team or user); None for the default.
        tags: extra tags for every run.
    """

    def __init__(self, project: str = "causal-video-harness", mode: str = "offline", entity: str | None = None,
                 tags: list[str] | None = None):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"W&B mode must be offline, online or disabled, got {mode!r}")
        self.project, self.mode, self.entity, self.tags = project, mode, entity, list(tags or [])
        self._run = None
        self._dir: Path | None = None

    def start(self, run: RunInfo) -> None:
        wandb = require("wandb", feature="the W&B tracker")
        os.environ.setdefault("WANDB_SILENT", "true")
        self._dir = Path(run.dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        if run.replace and self.mode == "offline":
            self._drop_offline_copies(run.id)
        settings = wandb.Settings(
            mode=self.mode, silent=True, console="off", disable_git=True, save_code=False,
            x_disable_meta=True, x_disable_stats=True, disable_job_creation=True,
        )
        self._run = wandb.init(
            project=self.project, entity=self.entity, id=run.id, name=run.name, group=run.group,
            job_type=run.job_type, config=run.config, tags=self.tags + run.tags, dir=str(self._dir),
            settings=settings, resume="allow", reinit="create_new",
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if self._run is not None:
            self._run.log(dict(metrics), step=step)

    def log_video(self, key: str, path: str | os.PathLike, step: int | None = None, caption: str | None = None) -> None:
        """The video file itself (mp4 or gif, no re-encoding: wandb needs no moviepy for a path)."""
        if self._run is None:
            return
        import wandb

        self._run.log({key: wandb.Video(str(path), caption=caption)}, step=step)

    def log_image(self, key: str, path: str | os.PathLike, caption: str | None = None) -> None:
        if self._run is None:
            return
        import wandb

        self._run.log({key: wandb.Image(str(path), caption=caption)})

    def log_table(self, key: str, dataframe: Any) -> None:
        if self._run is None:
            return
        import wandb

        self._run.log({key: wandb.Table(dataframe=dataframe)})

    def summary(self, metrics: Mapping[str, Any]) -> None:
        if self._run is not None:
            for k, v in metrics.items():
                self._run.summary[k] = v

    def finish(self, status: str) -> None:
        if self._run is None:
            return
        run, self._run = self._run, None
        run.finish(exit_code=0 if status == "complete" else 1)
        self._scrub_paths()

    def _drop_offline_copies(self, run_id: str) -> None:
        """Earlier offline folders of a replaced run: the new one holds all of it, and ``wandb sync`` of the
        folder then sends one run, not one per ``harness report``."""
        import shutil

        for old in (self._dir / "wandb").glob(f"offline-run-*-{run_id}"):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)

    def _scrub_paths(self) -> None:
        """W&B's own debug logs name absolute folders; results must not carry machine paths."""
        if self._dir is None:
            return
        root = str(self._dir.resolve())
        for logfile in self._dir.glob("wandb/*/logs/*.log"):
            try:
                text = logfile.read_text(errors="replace")
            except OSError:
                continue
            cleaned = text.replace(root, "<runs>")
            cleaned = re.sub(r"(?<![\w.])/(?:home|root|Users|tmp|work)/[^\s'\"]*", "<path>", cleaned)
            if cleaned != text:
                logfile.write_text(cleaned)


class GuardedTracker(Tracker):
    """Wraps a tracker so that its failures are logged once per call site and never raised."""

    def __init__(self, inner: Tracker):
        self.inner = inner
        self.failures: list[str] = []

    def _call(self, name: str, *args, **kwargs) -> None:
        try:
            getattr(self.inner, name)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - by design: the tracker is a mirror, not the truth
            msg = f"tracker {type(self.inner).__name__}.{name} failed: {type(exc).__name__}: {exc}"
            if msg not in self.failures:
                log.warning(msg)
            self.failures.append(msg)

    def start(self, run: RunInfo) -> None:
        self._call("start", run)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self._call("log", metrics, step)

    def log_video(self, key: str, path: str | os.PathLike, step: int | None = None, caption: str | None = None) -> None:
        self._call("log_video", key, path, step=step, caption=caption)

    def log_image(self, key: str, path: str | os.PathLike, caption: str | None = None) -> None:
        self._call("log_image", key, path, caption=caption)

    def log_table(self, key: str, dataframe: Any) -> None:
        self._call("log_table", key, dataframe)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        self._call("summary", metrics)

    def finish(self, status: str) -> None:
        self._call("finish", status)


def mirror_report(tracker: Tracker, study: str, folder: Path, tables: Mapping[str, Any],
                  figures: list[Path] = (), config: Mapping[str, Any] | None = None) -> list[str]:
    """A study's report as ONE tracker run (id ``report-<study>``, job_type ``report``) replaced in place
    each time: its tables as tracker tables and its figures as images. Returns the tracker's failures
    (empty when everything was mirrored); never raises."""
    guarded = tracker if isinstance(tracker, GuardedTracker) else GuardedTracker(tracker)
    run_id = "report-" + re.sub(r"[^A-Za-z0-9_-]", "-", study)
    guarded.start(RunInfo(id=run_id, name=f"{study} report", group=study, job_type="report",
                          config=dict(config or {"study": study}), dir=Path(folder),
                          tags=[f"study:{study}"[:64], "report"], replace=True))
    for key, frame in tables.items():
        guarded.log_table(key, frame)
    for figure in figures:
        guarded.log_image(f"figures/{Path(figure).stem}", figure)
    guarded.finish("complete")
    return list(dict.fromkeys(guarded.failures))


def scrub_secrets(config: Mapping[str, Any]) -> dict[str, Any]:
    """Drop values that look like credentials before a config is written or sent anywhere."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if re.search(r"(api_?key|token|secret|password)", str(k), re.IGNORECASE):
            out[k] = "<redacted>"
        elif isinstance(v, Mapping):
            out[k] = scrub_secrets(v)
        else:
            out[k] = v
    return out
