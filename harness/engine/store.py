"""The run store: ``<root>/<study>/<hash>/`` folders, the single source of truth for results.

Each run folder holds ``config.yaml`` (the resolved run config), ``status.json`` (state, reason,
heartbeat, stage), ``metrics.jsonl``, ``result.json``, ``provenance.json``, ``checkpoints/`` and
``samples/``. Every whole-file write is atomic (see :mod:`harness.io.atomic`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.engine.locks import FileLock
from harness.engine.provenance import utc_now
from harness.errors import ConfigError, CorruptFileError
from harness.io.atomic import (
    append_line,
    atomic_write_json,
    atomic_write_yaml,
    read_jsonl,
    truncate_jsonl_after,
)

log = logging.getLogger(__name__)

PENDING, RUNNING, COMPLETE, FAILED = "pending", "running", "complete", "failed"
STATES = (PENDING, RUNNING, COMPLETE, FAILED)
CORRUPT = "corrupt"  # never written: how readers show a run whose status.json/result.json/config.yaml is unreadable
CORRUPT_SUFFIX = ".corrupt"

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
        """The stored status; ``{"state": "corrupt", "reason": ...}`` when status.json cannot be read
        (atomic writes make that a disk fault or a hand edit): such a run is not complete, so it reruns."""
        try:
            status = read_json_object(self.status_path)
        except CorruptFileError as exc:
            return {"state": CORRUPT, "reason": str(exc)}
        if status is None:
            return {"state": PENDING}
        if status.get("state") not in STATES:
            return {"state": CORRUPT, "reason": f"{self.status_path.name}: unknown state {status.get('state')!r}"}
        return status

    def write_status(self, state: str, **fields: Any) -> dict[str, Any]:
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        previous = self.read_status()
        if previous["state"] == CORRUPT:  # nothing in it to keep
            previous = {}
        status = {**previous, **fields, "state": state, "updated": utc_now(), "heartbeat": time.time()}
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

    # -- content -----------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_yaml(self.config_path, config, durable=False)  # rewritten by every attempt

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        append_line(self.metrics_path, json.dumps({"step": step, **metrics}, default=float))

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    def truncate_metrics_after(self, step: int) -> None:
        """On resume from a checkpoint at ``step``, forget metrics logged after it. A garbled file (not a
        torn last line) is kept as ``metrics.jsonl.corrupt`` and the run logs afresh, instead of failing."""
        try:
            truncate_jsonl_after(self.metrics_path, step)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            moved = set_aside(self.metrics_path)
            log.warning("%s: unreadable (%s); kept as %s", self.metrics_path, type(exc).__name__, moved.name)

    def write_result(self, result: dict[str, Any]) -> None:
        atomic_write_json(self.result_path, result)

    def read_result(self) -> dict[str, Any] | None:
        """The final metrics; None when there are none yet or result.json cannot be read (:meth:`unreadable`)."""
        try:
            return read_json_object(self.result_path)
        except CorruptFileError:
            return None

    def read_config(self) -> dict[str, Any] | None:
        """The resolved run config; None when missing or unreadable (:meth:`unreadable` says which)."""
        try:
            return _read_object(self.config_path, yaml.safe_load)
        except CorruptFileError:
            return None

    def is_complete(self) -> bool:
        """Complete and its result readable: only such a run is skipped (a corrupt one is recomputed)."""
        return self.read_status().get("state") == COMPLETE and self.read_result() is not None

    def unreadable(self) -> list[str]:
        """One message per file of the run that exists but cannot be read, naming the file; empty when sound."""
        problems = []
        for path, parse in ((self.status_path, json.loads), (self.result_path, json.loads),
                            (self.config_path, yaml.safe_load)):
            try:
                _read_object(path, parse)
            except CorruptFileError as exc:
                problems.append(str(exc))
        status = self.read_status()
        if status["state"] == CORRUPT and not any(p.startswith(self.status_path.name) for p in problems):
            problems.insert(0, status["reason"])
        return problems

    def set_aside_unreadable(self) -> list[Path]:
        """Rename each unreadable file to ``<name>.corrupt`` before a rerun overwrites it, so no bytes are
        lost; a warning names each. Returns the new paths."""
        bad = [path for path, parse in ((self.status_path, json.loads), (self.result_path, json.loads),
                                        (self.config_path, yaml.safe_load)) if _unreadable(path, parse)]
        if self.status_path not in bad and self.read_status()["state"] == CORRUPT:  # JSON, but no known state
            bad.insert(0, self.status_path)
        moved = []
        for path in bad:
            moved.append(set_aside(path))
            log.warning("%s was unreadable: kept as %s; the run is recomputed", path, moved[-1].name)
        return moved

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
        path = self.path / STUDY_MANIFEST
        try:
            read_json_object(path)
        except CorruptFileError as exc:
            log.warning("%s; kept as %s and rewritten", exc, set_aside(path).name)
        atomic_write_json(path, manifest)

    def read_manifest(self) -> dict[str, Any] | None:
        """The study's manifest; None when missing or unreadable (it is rewritten by the next run)."""
        try:
            return read_json_object(self.path / STUDY_MANIFEST)
        except CorruptFileError:
            return None


# -- reading files a disk fault or a hand edit may have garbled --------------------------------------


def _read_object(path: Path, parse: Any) -> dict[str, Any] | None:
    """``parse(text)`` of ``path`` when it is a mapping; None when the file does not exist."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CorruptFileError(f"{path.name}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        value = parse(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptFileError(f"{path.name}: not valid {'JSON' if parse is json.loads else 'YAML'} ({first})") from None
    if not isinstance(value, dict):
        raise CorruptFileError(f"{path.name}: holds {type(value).__name__}, not an object")
    return value


def _unreadable(path: Path, parse: Any) -> bool:
    try:
        _read_object(path, parse)
    except CorruptFileError:
        return True
    return False


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it does not exist; :class:`CorruptFileError` naming the
    file when it exists but is not one."""
    return _read_object(Path(path), json.loads)


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.corrupt`` (``.corrupt.1``, … when taken): kept for inspection, out of the way."""
    target = path.with_name(path.name + CORRUPT_SUFFIX)
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}.{n}")
    os.replace(path, target)
    return target


# -- the folders a command is pointed at ------------------------------------------------------------


def require_writable_folder(path: str | os.PathLike, option: str) -> Path:
    """``path`` is a folder this process can write, or can be created as one: checked before anything is
    written, so a runs or cache folder that is a file or read-only is one line, not a traceback mid-study."""
    path = Path(path)
    existing = _nearest_existing(path, option)
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: {'it' if existing == path else existing} is not writable")
    return path


def require_folder(path: str | os.PathLike, what: str = "runs folder") -> Path:
    """``path`` is an existing folder (``harness ls``/``report`` read one; they create nothing)."""
    path = Path(path)
    if _nearest_existing(path, what) != path:
        raise ConfigError(f"{path}: no such {what}")
    if not path.is_dir():
        raise ConfigError(f"{path}: is a file, not a {what}")
    return path


def _nearest_existing(path: Path, what: str) -> Path:
    if "\0" in str(path):  # no system call takes it (Path.exists() just says False)
        raise ConfigError(f"{what} {str(path)!r}: not a valid path (it holds a NUL byte)")
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
