"""Checkpoints of a run, saved atomically and loaded without unpickling arbitrary objects.

A resume starts from the newest checkpoint that loads (:meth:`CheckpointStore.latest`): a corrupt one is
renamed ``step-XXXXXXXX.pt.corrupt`` with a warning, so it is never tried again and nothing is lost.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from harness.errors import CheckpointError
from harness.io.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointStore:
    """``checkpoints/step-XXXXXXXX.pt`` files; the newest complete one is what a resume starts from."""

    def __init__(self, folder: str | Path, keep: int = 2):
        self.folder = Path(folder)
        self.keep = keep

    def steps(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _NAME.match(p.name)))

    def path(self, step: int) -> Path:
        return self.folder / f"step-{step:08d}.pt"

    def save(self, step: int, state: dict[str, Any]) -> Path:
        import torch

        buf = io.BytesIO()
        torch.save({"step": step, "state": state}, buf)
        path = self.path(step)
        atomic_write_bytes(path, buf.getvalue())
        for old in self.steps()[: -self.keep] if self.keep > 0 else []:
            self.path(old).unlink(missing_ok=True)
        return path

    def load(self, step: int, map_location: str = "cpu") -> dict[str, Any]:
        """The state saved at ``step``. The file is memory-mapped where its format allows (the zip format
        :meth:`save` writes), so the ranks of one machine resuming from it share its pages instead of
        each reading a copy; the mapping is private, so changing a loaded tensor never touches the file."""
        import torch

        path = self.path(step)
        try:
            blob = torch.load(path, map_location=map_location, weights_only=True, mmap=zipfile.is_zipfile(path))
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint not found: {path.name}") from None
        except Exception as exc:  # noqa: BLE001 - torch raises several types for truncated or foreign files
            raise CheckpointError(f"checkpoint {path.name} is corrupt or not a harness checkpoint "
                                  f"({_why_unloadable(exc)})") from None
        if not isinstance(blob, dict) or "state" not in blob:
            raise CheckpointError(f"checkpoint {path.name} is not a harness checkpoint (no 'state' entry)")
        return blob["state"]

    def latest(self, map_location: str = "cpu") -> tuple[int, dict[str, Any]] | None:
        """The newest checkpoint that loads, as ``(step, state)``; None when there is none.

        Each newer one that does not load is set aside (:meth:`_set_aside`) with a warning naming it, so a
        disk fault in the last checkpoint costs the steps since the one before, not the run."""
        for step in reversed(self.steps()):
            try:
                return step, self.load(step, map_location)
            except CheckpointError as exc:
                if not self.path(step).exists():  # pruned by a concurrent save: not corrupt
                    continue
                self._set_aside(self.path(step), str(exc))
        return None

    def newest_valid_step(self) -> int | None:
        """The step :meth:`latest` resumes from (loading memory-maps, so checking is cheap)."""
        found = self.latest()
        return None if found is None else found[0]

    def _set_aside(self, path: Path, why: str) -> None:
        target = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, target)
        except OSError as exc:
            log.warning("%s; skipped (could not rename it: %s)", why, exc.strerror or exc)
            return
        log.warning("%s; skipped, kept as %s", why, target)


def _why_unloadable(exc: Exception) -> str:
    """torch's reason in a few words, never its advice to retry with ``weights_only=False`` (that would
    run whatever code the file holds)."""
    text = " ".join(str(exc).split())
    if "Unsupported global" in text:
        return "refused to unpickle arbitrary objects"
    if "WeightsUnpickler error:" in text:  # bytes the safe unpickler cannot parse: not a pickle at all
        detail = text.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation")[0].strip()
        return f"unreadable bytes: {detail}" if detail else "unreadable bytes"
    first = text.split(". ")[0].strip()
    return first if first and "weights_only" not in first else type(exc).__name__
