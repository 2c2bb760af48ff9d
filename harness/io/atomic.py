"""Crash-safe file writes: a reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

_UMASK = os.umask(0)  # read once at import: os.umask can only be read by setting it, racing other threads
os.umask(_UMASK)


def default_file_mode() -> int:
    """The mode ``open`` would give a new file under this process's umask (0644 under 022)."""
    return 0o666 & ~_UMASK


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True, sync_dir: bool = False) -> None:
    """Write to a temp file in the same folder, then rename it over ``path``.

    The rename alone makes the write atomic for readers and against a killed process. ``durable``
    fsyncs the data before the rename, so a power loss cannot leave a renamed but empty file;
    files rewritten on every attempt (a run's config, its running status) skip it. ``sync_dir``
    fsyncs the folder so the renames survive a power loss; callers do that once per unit of work
    (a run's final status) rather than on every file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600 files; results should read like any other file
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str, **kw: bool) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), **kw)


def atomic_write_json(path: str | os.PathLike, obj: Any, **kw: bool) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", **kw)


def atomic_write_yaml(path: str | os.PathLike, obj: Any, **kw: bool) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=False), **kw)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line with a single ``write`` on an O_APPEND descriptor.

    Appends are not renames, so a crash can leave a partial last line; readers of JSON-lines files
    (see :func:`read_jsonl`) drop a last line that does not parse.
    """
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file, ignoring a torn last line left by a crash."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise
    return rows


def truncate_jsonl_after(path: str | os.PathLike, step: int) -> None:
    """Drop rows logged after ``step``: on resume from a checkpoint they are logged again."""
    rows = read_jsonl(path)
    kept = [r for r in rows if r.get("step", 0) <= step]
    if len(kept) != len(rows):
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
