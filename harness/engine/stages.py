"""The stage cache: artifacts built once, keyed by their own config and their inputs, shared by runs.

A trained teacher, a causal init or an evaluator's classifier is asked for by many runs of many
studies. ``StageCache.get(name, config, build)`` returns the artifact's folder, building it first
if no process has. Building happens under a per-artifact lock in a ``.building`` folder that is
renamed into place with its ``stage.json`` manifest, so two runs asking at once build it once, and
a build killed halfway leaves nothing that looks finished — only its checkpoints, to resume from.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engine.identity import canonical_json, config_hash, short_hash
from harness.engine.locks import FileLock
from harness.engine.provenance import collect, utc_now
from harness.engine.versions import stage_versions
from harness.errors import CheckpointError
from harness.io.atomic import atomic_write_json

MANIFEST = "stage.json"


@dataclass(frozen=True)
class Artifact:
    """A built stage: its folder and the key that identifies it."""

    name: str
    key: str
    path: Path

    def __fspath__(self) -> str:
        return str(self.path)


def stage_key(name: str, config: Mapping[str, Any], inputs: Iterable[Artifact | str] = (),
              version: int = 1) -> str:
    """Hash of the stage name, its config, the keys of the artifacts it was built from, and the code
    versions (:func:`harness.engine.versions.stage_versions`: the builder's ``version`` and those of the
    classes its config names). Versions all at their default add nothing, so a stage without plugin
    classes at version 1 keeps the key it had before versions existed."""
    input_keys = [i.key if isinstance(i, Artifact) else str(i) for i in inputs]
    payload = {"stage": name, "config": dict(config), "inputs": input_keys}
    versions = stage_versions(config, version)
    if versions != {"stage": 1}:
        payload["versions"] = versions
    return config_hash(payload)


class StageCache:
    """Folder of built artifacts: ``<root>/<name>/<key>/`` with a ``stage.json`` once complete.

    ``rebuild_partial`` (``harness run --force``): a stage this cache builds starts from an empty build
    folder instead of resuming what an earlier build left (a corrupt checkpoint, say). A complete stage is
    never rebuilt: other runs and studies use it.
    """

    def __init__(self, root: str | Path, rebuild_partial: bool = False):
        self.root = Path(root)
        self.rebuild_partial = rebuild_partial

    def path_for(self, name: str, key: str) -> Path:
        return self.root / name / short_hash(key)

    def lookup(self, name: str, config: Mapping[str, Any], inputs: Iterable[Artifact | str] = (),
               version: int = 1) -> Artifact | None:
        key = stage_key(name, config, inputs, version)
        path = self.path_for(name, key)
        return Artifact(name, key, path) if (path / MANIFEST).exists() else None

    def get(
        self,
        name: str,
        config: Mapping[str, Any],
        build: Callable[[Path], Any],
        inputs: Iterable[Artifact | str] = (),
        *,
        on_wait: Callable[[], None] | None = None,
        version: int = 1,
    ) -> Artifact:
        """Return the artifact, building it with ``build(tmp_folder)`` if it does not exist yet.

        ``version``: the builder's ``STAGE_VERSION`` (see :mod:`harness.engine.versions`)."""
        inputs = list(inputs)
        key = stage_key(name, config, inputs, version)
        final = self.path_for(name, key)
        if (final / MANIFEST).exists():
            return Artifact(name, key, final)
        lock = FileLock(final.parent / f".{final.name}.lock")
        if not lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            if (final / MANIFEST).exists():  # another process built it while we waited
                return Artifact(name, key, final)
            # One builder at a time (the lock), so the build folder is stable: a build that was killed
            # or raised leaves its checkpoints there and the next build resumes from them.
            tmp = final.parent / f".{final.name}.building"
            if self.rebuild_partial and tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True, exist_ok=True)
            started = time.time()
            _build_in(tmp, build)
            atomic_write_json(
                tmp / MANIFEST,
                {
                    "name": name,
                    "key": key,
                    "config": json_ready(config),
                    "inputs": [i.key if isinstance(i, Artifact) else str(i) for i in inputs],
                    "versions": stage_versions(config, version),
                    "built_at": utc_now(),
                    "build_seconds": round(time.time() - started, 3),
                    "provenance": collect(),
                },
            )
            if final.exists():  # a partial folder from an older layout or a manual copy
                shutil.rmtree(final)
            os.replace(tmp, final)
            return Artifact(name, key, final)
        finally:
            lock.release()


def _build_in(folder: Path, build: Callable[[Path], Any]) -> None:
    """``build(folder)``; a checkpoint it cannot use names the build folder and how to start it afresh."""
    try:
        build(folder)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (stage build folder {folder}: delete it, or rerun with --force, "
                              "to rebuild the stage from scratch)") from exc


def json_ready(config: Mapping[str, Any]) -> Any:
    return json.loads(canonical_json(config))
