"""Code versions: what makes a result computed by older code count as a different result.

A run's hash and a stage's key are built from its config; a config does not change when the code
behind it does. So every plugin class carries a ``version`` (``ClassVar[int]``, 1 on the bases
:class:`~harness.engine.pipeline.Pipeline`, :class:`~harness.worlds.base.World` and
:class:`~methods.base.Method`), and every stage whose builder is not a plugin class passes its
module's ``STAGE_VERSION`` to ``ctx.stage(..., version=STAGE_VERSION)``. The versions of every class a
run's config names enter its hash (and its ``config.yaml``); those of the classes a stage's config
names, and the stage's own version, enter the stage's key (and its ``stage.json``).

The rule, for whoever changes the code:

    Bump ``version`` of a plugin class (or ``STAGE_VERSION`` of a stage builder's module) whenever a
    change alters what it computes for the same config: numerics, losses, sampling, defaults that are
    not in the config, data, the files it writes. Never for refactors, logging, messages or speed
    that leave results bit-identical. Bump every version whose output the change alters: the class
    that owns the changed code; for a base class (``methods.distill.DistillationMethod``, ``Method``,
    ``World``) or shared code its subclasses call (``harness/training/trainer.py``, ``harness/diffusion/sampling.py``),
    that base's own ``version`` (declare one on it, at 2, if it has none), which re-keys every
    subclass; for code a world's stages share (the sprites renderer), each ``STAGE_VERSION`` it
    reaches and the world's ``version``.

Bumping re-keys every run and stage built from the class: ``harness run`` recomputes them, and the old
folders stay on disk, flagged ``outdated`` by ``harness ls`` and left out of ``harness report``.
A class's recorded versions are its own and those declared on its bases (a base's bump reaches a
subclass that overrides ``version``).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.engine.config import iter_class_paths
from harness.errors import ConfigError

VERSION_ATTR = "version"
DEFAULT_VERSION = 1


@functools.cache
def _resolve(class_path: str) -> Any:
    """The object a ``class_path`` names, or None when it cannot be imported (cached per path)."""
    module, _, name = class_path.rpartition(".")
    if not module:
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _checked(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: '{VERSION_ATTR}' must be an integer ≥ 1, got {value!r}")
    return value


def class_versions(class_path: str) -> dict[str, int] | None:
    """``{class_path: version}`` plus every base class that declares its own ``version``; None when
    the class cannot be imported. Read on every call (the import is what is cached)."""
    obj = _resolve(class_path)
    if obj is None:
        return None
    out = {class_path: _checked(getattr(obj, VERSION_ATTR, DEFAULT_VERSION), class_path)}
    for base in getattr(obj, "__mro__", ())[1:]:
        if VERSION_ATTR in vars(base):
            name = f"{base.__module__}.{base.__qualname__}"
            out.setdefault(name, _checked(vars(base)[VERSION_ATTR], name))
    return out


def class_paths(tree: Any) -> Iterable[str]:
    """Every ``class_path`` string of a config tree."""
    return (path for _, path in iter_class_paths(tree) if isinstance(path, str))


def code_versions(config: Any) -> dict[str, int]:
    """The versions of every class a resolved config names, sorted by name (the allowlist was checked)."""
    out: dict[str, int] = {}
    for class_path in class_paths(config):
        found = class_versions(class_path)
        if found is None:
            raise ConfigError(f"class_path '{class_path}' cannot be imported")
        out.update(found)
    return dict(sorted(out.items()))


def stage_versions(config: Any, version: int = DEFAULT_VERSION) -> dict[str, int]:
    """What enters a stage's key: its builder's version (key ``stage``) and its config's classes."""
    return {"stage": _checked(version, "stage"), **code_versions(config)}


def current_versions(config: Any) -> dict[str, int | None]:
    """Like :func:`code_versions`, but a class that no longer imports maps to None (for ``ls``/reports)."""
    out: dict[str, int | None] = {}
    for class_path in class_paths(config):
        try:
            found = class_versions(class_path)
        except ConfigError:
            found = None
        out.update(found if found is not None else {class_path: None})
    return out


Change = tuple[str, Any, Any]  # (class path, recorded version, current version); None: absent


def version_changes(recorded: Mapping[str, Any] | None, config: Any) -> list[Change]:
    """Each class whose recorded version is not the current code's for ``config``."""
    recorded = dict(recorded) if isinstance(recorded, Mapping) else {}
    current = current_versions(config)
    return [(name, recorded.get(name), current.get(name)) for name in sorted(set(recorded) | set(current))
            if recorded.get(name) != current.get(name)]


def format_change(change: Change) -> str:
    """``ASD 1→2`` (the class's own name: compact; ``?`` where a side has none)."""
    name, old, new = change
    return f"{name.rsplit('.', 1)[-1]} {'?' if old is None else old}→{'?' if new is None else new}"


# -- flags for `harness ls` and the report ---------------------------------------------------------

PROVENANCE_FILE = "provenance.json"
SHORT_COMMIT = 7


@dataclass
class RunFlags:
    """Why a complete run may not belong with the rest of its study."""

    outdated: list[Change] = field(default_factory=list)  # version changes since it was computed
    unversioned: bool = False  # computed before versions were recorded
    commit: str | None = None  # its git commit, when not the study's
    study_commit: str | None = None

    def __bool__(self) -> bool:
        return bool(self.outdated or self.unversioned or self.commit)

    @property
    def text(self) -> str:
        """``outdated: ASD 1→2; commit 1a2b3c4 ≠ study's 5d6e7f8`` (what ``ls`` and the report show)."""
        parts = []
        if self.unversioned:
            parts.append("outdated: no versions recorded")
        elif self.outdated:
            parts.append("outdated: " + ", ".join(format_change(c) for c in self.outdated))
        if self.commit:
            parts.append(f"commit {self.commit} ≠ study's {self.study_commit}")
        return "; ".join(parts)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _commit_label(provenance: Mapping[str, Any]) -> str | None:
    commit = provenance.get("git_commit")
    if not isinstance(commit, str) or not commit:
        return None
    return commit[:SHORT_COMMIT]


def study_flags(complete: Iterable[tuple[Path, Mapping[str, Any] | None]]) -> dict[str, RunFlags]:
    """Flags of a study's complete runs, by folder name: ``(run folder, its config or None to read it)``.

    A run is *outdated* when the versions in its ``config.yaml`` differ from the current code's for
    its config (``harness run`` will not reuse it). It is at *another commit* when the git commit in its
    ``provenance.json`` differs from the most common one among the study's complete runs (a tie goes
    to the commit whose runs ended last). Runs without a recorded commit are not compared; the dirty
    flag is not compared (an uncommitted change that alters results must bump a version anyway).
    """
    commits: dict[str, str] = {}
    ended: dict[str, str] = {}
    flags: dict[str, RunFlags] = {}
    for path, config in complete:
        path = Path(path)
        config = config if config is not None else _read_config(path)
        flag = RunFlags()
        if isinstance(config.get("pipeline"), Mapping):
            if "versions" not in config:
                flag.unversioned = True
            else:
                flag.outdated = version_changes(config["versions"], config["pipeline"])
        provenance = _read_json(path / PROVENANCE_FILE)
        label = _commit_label(provenance)
        if label is not None:
            commits[path.name] = label
            ended[label] = max(ended.get(label, ""), str(provenance.get("ended") or ""))
        flags[path.name] = flag
    if commits:
        counts = Counter(commits.values())
        study_commit = max(counts, key=lambda c: (counts[c], ended.get(c, "")))
        for name, label in commits.items():
            if label != study_commit:
                flags[name].commit, flags[name].study_commit = label, study_commit
    return {name: flag for name, flag in flags.items() if flag}


def add_ls_flags(rows: list[dict[str, Any]], study_dir: Path) -> None:
    """Set ``row["flag"]`` on the complete rows of one study's ``harness ls`` rows that have one."""
    flags = study_flags((Path(study_dir) / row["hash"], None) for row in rows if row.get("status") == "complete")
    for row in rows:
        if row["hash"] in flags:
            row["flag"] = flags[row["hash"]].text
