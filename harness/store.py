"""The run store: ``<root>/<study>/<hash>/`` folders, the single source of truth for results.

Each run folder holds ``config.yaml`` (the resolved run config), ``status.json`` (state, reason,
heartbeat, stage), ``metrics.jsonl``, ``result.json``, ``provenance.json``, ``checkpoints/`` and
``samples/``. Every whole-file write is atomic (see :mod:`harness.atomic`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .atomic import append_line, atomic_write_json, atomic_write_yaml, read_jsonl, truncate_jsonl_after
from .locks import FileLock
from .provenance import utc_now

PENDING, RUNNING, COMPLETE, FAILED = "pending", "running", "complete", "failed"
STATES = (PENDING, RUNNING, COMPLETE, FAILED)

HEARTBEAT_INTERVAL_S = 10.0

STUDY_MANIFEST = "study.json"


@dataclass
class RunDir:
    """One run's folder and the files in it."""

    path: Path

    @property
    def hash(self) -> str:
        return self.path.name

    # -- paths -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    @property
    def provenance_path(self) -> Path:
        return self.path / "provenance.json"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    def lock(self) -> FileLock:
        return FileLock(self.path / ".lock")

    # -- status ------------------------------------------------------------------------------
    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return {"state": PENDING}
        except json.JSONDecodeError:  # cannot happen with atomic writes; treat as unknown
            return {"state": PENDING, "reason": "unreadable status.json"}

    def write_status(self, state: str, **fields: Any) -> dict[str, Any]:
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        status = {**self.read_status(), **fields, "state": state, "updated": utc_now(), "heartbeat": time.time()}
        if state != FAILED:
            status.pop("reason", None)
        # A final state is the run's commit point: make it and every rename in the folder durable.
        final = state in (COMPLETE, FAILED)
        atomic_write_json(self.status_path, status, durable=final, sync_dir=final)
        return status

    def touch_heartbeat(self, **fields: Any) -> None:
        status = self.read_status()
        status.update(fields, heartbeat=time.time())
        atomic_write_json(self.status_path, status, durable=False)

    def is_stale(self) -> bool:
        """A run marked running whose process is gone.

        The run lock is the authority: the kernel drops it when its holder dies. The heartbeat only
        tells a reader how long ago the run last made progress.
        """
        return self.read_status().get("state") == RUNNING and not self.lock().is_locked_elsewhere()

    def heartbeat_age(self) -> float | None:
        beat = self.read_status().get("heartbeat")
        return None if beat is None else max(0.0, time.time() - float(beat))

    # -- content -----------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_yaml(self.config_path, config, durable=False)  # rewritten by every attempt

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        append_line(self.metrics_path, json.dumps({"step": step, **metrics}, default=float))

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    def truncate_metrics_after(self, step: int) -> None:
        """On resume from a checkpoint at ``step``, forget metrics logged after it."""
        truncate_jsonl_after(self.metrics_path, step)

    def write_result(self, result: dict[str, Any]) -> None:
        atomic_write_json(self.result_path, result)

    def read_result(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.result_path.read_text())
        except FileNotFoundError:
            return None

    def read_config(self) -> dict[str, Any] | None:
        try:
            return yaml.safe_load(self.config_path.read_text())
        except FileNotFoundError:
            return None

    def clear(self) -> None:
        """Remove everything the run produced (``--force``); the lock file stays."""
        for child in self.path.iterdir():
            if child.name == ".lock":
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()


class RunStore:
    """``<root>/<study>/``: the run folders of one study and its manifest."""

    def __init__(self, root: str | Path, study: str):
        self.root = Path(root)
        self.study = study
        self.path = self.root / study

    def run(self, run_hash: str) -> RunDir:
        return RunDir(self.path / run_hash)

    def runs(self) -> Iterator[RunDir]:
        if not self.path.is_dir():
            return
        for child in sorted(self.path.iterdir()):
            if child.is_dir() and (child / "config.yaml").exists():
                yield RunDir(child)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.path / STUDY_MANIFEST, manifest)

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / STUDY_MANIFEST).read_text())
        except FileNotFoundError:
            return None
