"""Checkpoints of a run, saved atomically and loaded without unpickling arbitrary objects."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes
from .errors import CheckpointError

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
            raise CheckpointError(f"checkpoint {path.name} is corrupt or not a harness checkpoint: {exc}") from None
        if not isinstance(blob, dict) or "state" not in blob:
            raise CheckpointError(f"checkpoint {path.name} is not a harness checkpoint (no 'state' entry)")
        return blob["state"]

    def latest(self, map_location: str = "cpu") -> tuple[int, dict[str, Any]] | None:
        """The newest checkpoint as ``(step, state)``, or None when there is none."""
        steps = self.steps()
        if not steps:
            return None
        return steps[-1], self.load(steps[-1], map_location)
