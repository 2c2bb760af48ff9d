"""``harness gc``: free the disk that finished work no longer needs.

A stage is built with checkpoints so that a killed build resumes; once its ``stage.json`` is written the
artifact (weights, logs) is all that any run reads, and its ``checkpoints/`` are dead weight (two
27 MB files per distillation of the default study). The same holds for a complete run's own
``checkpoints/``. ``gc`` removes exactly those: never a stage being built (``.building``, its checkpoints
are its resume point), never a run that is not complete, never an artifact file.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.engine.driver import DEFAULT_RUNS_DIR, default_cache_dir
from harness.engine.stages import MANIFEST as STAGE_MANIFEST
from harness.engine.store import RunStore
from harness.errors import ConfigError

_CHECKPOINT = re.compile(r"^step-\d{8}\.pt(\.corrupt)?$")


@dataclass(frozen=True)
class Removable:
    path: Path  # a checkpoints/ folder
    bytes: int
    why: str  # "finished stage distill-asd/8e81…" or "complete run ablation_asd/1384…"


def _checkpoint_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and _CHECKPOINT.match(p.name)] if folder.is_dir() else []


def _size(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files)


def stage_checkpoints(cache_dir: Path) -> list[Removable]:
    """``<cache>/<stage>/<key>/checkpoints`` of every stage whose ``stage.json`` exists."""
    found = []
    for manifest in sorted(Path(cache_dir).glob(f"*/*/{STAGE_MANIFEST}")):
        folder = manifest.parent
        if folder.name.startswith("."):  # a build folder: its checkpoints are its resume point
            continue
        files = _checkpoint_files(folder / "checkpoints")
        if files:
            found.append(Removable(folder / "checkpoints", _size(files), f"finished stage {folder.parent.name}/{folder.name}"))
    return found


def run_checkpoints(runs_dir: Path) -> list[Removable]:
    """``<runs>/<study>/<hash>/checkpoints`` of every complete run."""
    found = []
    for study in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        for run in RunStore(runs_dir, study.name).runs():
            files = _checkpoint_files(run.checkpoints_dir)
            if files and run.is_complete():
                found.append(Removable(run.checkpoints_dir, _size(files), f"complete run {study.name}/{run.hash}"))
    return found


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def gc(runs_dir: Path = Path(DEFAULT_RUNS_DIR), cache_dir: Path | None = None, dry_run: bool = False) -> int:
    """Remove the intermediate checkpoints of finished stages and complete runs (--dry-run: list them)."""
    runs_dir = Path(runs_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(runs_dir)
    if not runs_dir.is_dir() and not cache.is_dir():
        raise ConfigError(f"{runs_dir}: not a folder (and no stage cache at {cache})")
    items = (stage_checkpoints(cache) if cache.is_dir() else []) + (run_checkpoints(runs_dir) if runs_dir.is_dir() else [])
    verb = "would remove" if dry_run else "removed"
    for item in items:
        if not dry_run:
            for f in _checkpoint_files(item.path):
                f.unlink(missing_ok=True)
            if not any(item.path.iterdir()):
                shutil.rmtree(item.path, ignore_errors=True)
        print(f"{verb} {item.path} ({_mb(item.bytes)}; {item.why})")
    total = sum(i.bytes for i in items)
    print(f"{verb} {len(items)} checkpoint folder{'s' if len(items) != 1 else ''}, {_mb(total)}"
          + ("; nothing removed (dry run)" if dry_run else ""))
    return 0
