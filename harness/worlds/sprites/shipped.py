"""Teacher weights shipped with the project, so the default world does not spend its one-time ~17
minutes of teacher training on every new machine.

A shipped checkpoint is the folder the project's own training command writes::

    python -m harness.worlds.sprites.retrain_teacher --size default --out harness/worlds/sprites/weights/default_teacher

and it stands in for training only when everything that determines its weights matches the request:
its world, its DiT config and its recipe, read from its ``model.json``. Any other preset, or the default
with a changed field, trains as before. The files are loaded like every checkpoint (safetensors,
strictly checked), never unpickled. To retrain instead, delete the stage's folder under
``<runs>/.stages/sprites-teacher/`` and run with ``HARNESS_TRAIN_TEACHER=1``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from harness.worlds.sprites.dit_config import SpritesDiTConfig
from harness.worlds.sprites.teacher import META_FILE, STAGE_VERSION, WEIGHTS_FILE, FlowRecipe, read_meta
from harness.worlds.sprites.world_config import SpritesConfig

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
TRAIN_ENV = "HARNESS_TRAIN_TEACHER"  # set to 1 to train even where shipped weights match


def _plain(value: object) -> object:
    """asdict output as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def find_shipped_teacher(world: SpritesConfig, dit: SpritesDiTConfig, recipe: FlowRecipe,
                         root: Path | None = None) -> Path | None:
    """The shipped teacher folder trained for exactly this world, DiT and recipe by this version of the
    teacher stage (``model.json``'s ``stage_version``, 1 when absent), or None."""
    if os.environ.get(TRAIN_ENV, "") not in ("", "0"):
        return None
    wanted = {"world": _plain(asdict(world)), "dit": _plain(asdict(dit)), "recipe": _plain(asdict(recipe))}
    for folder in sorted(p for p in (root or SHIPPED_DIR).glob("*") if (p / META_FILE).is_file()):
        meta = read_meta(folder)
        if (meta.get("kind") == "teacher" and meta.get("stage_version", 1) == STAGE_VERSION
                and all(meta.get(key) == value for key, value in wanted.items())):
            return folder
    return None


def copy_shipped(folder: Path, out_dir: Path) -> None:
    """Copy a shipped checkpoint into a stage folder (the stage cache then owns its own copy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, META_FILE):
        shutil.copyfile(folder / name, out_dir / name)
