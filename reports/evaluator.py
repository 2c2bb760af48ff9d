"""Which evaluator scored a study, with its version, so every table and figure can name it.

The sprites world's scores are ``sprites-bench``: VBench's dimension names and aggregation on a world
the harness renders, never comparable with VBench's numbers. The Wan world scores with VBench 0.1.5
(run in its own environment), or, on the tiny CPU preset, with ``wan-tiny-bench``, a stand-in.
The evaluator is read from the study's resolved config (its world), since result files do not name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VBENCH_VERSION = "0.1.5"  # the version scripts/vbench_env.sh pins and harness.evaluation.vbench_backend drives
SPRITES_WORLD = "harness.worlds.sprites.world.SpritesWorld"
WAN_WORLD = "harness.worlds.wan.world.WanWorld"
LOCAL_WAN_PRESETS = {"tiny"}  # harness.worlds.wan.world.LOCAL_PRESETS, without importing torch and diffusers


@dataclass(frozen=True)
class EvaluatorInfo:
    """An evaluator's name, its version and one sentence on what its numbers are."""

    name: str
    version: str
    note: str

    @property
    def text(self) -> str:
        """'sprites-bench (harness 0.1.0)', 'VBench 0.1.5'."""
        return f"{self.name} {self.version}" if self.version else self.name


def _harness_version() -> str:
    from harness import __version__

    return __version__


def _world(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    pipeline = config.get("pipeline") if isinstance(config.get("pipeline"), Mapping) else {}
    world = (pipeline.get("init_args") or {}).get("world") if isinstance(pipeline, Mapping) else None
    if not isinstance(world, Mapping):
        return "", {}
    return str(world.get("class_path", "")), dict(world.get("init_args") or {})


def evaluator_of(manifest: Mapping[str, Any]) -> EvaluatorInfo:
    """The evaluator of a study from its manifest's resolved config (the base pipeline's world)."""
    class_path, args = _world(manifest.get("config") or {})
    if class_path == SPRITES_WORLD:
        return EvaluatorInfo("sprites-bench", f"(harness {_harness_version()})",
                             "sprites-bench: the sprites world's own benchmark, with VBench's dimension names "
                             "and aggregation on rendered videos; its numbers are not VBench scores.")
    if class_path == WAN_WORLD:
        kind = str(args.get("evaluator", "auto"))
        local = str(args.get("preset", "")) in LOCAL_WAN_PRESETS
        if kind == "tiny-bench" or (kind == "auto" and local):
            return EvaluatorInfo("wan-tiny-bench", f"(harness {_harness_version()})",
                                 "wan-tiny-bench: a weight-free stand-in for VBench on the tiny CPU Wan; "
                                 "its numbers are not VBench scores.")
        return EvaluatorInfo("VBench", VBENCH_VERSION,
                             f"VBench {VBENCH_VERSION}: the official dimensions and weights, scored by vbench "
                             "in its own environment.")
    return EvaluatorInfo("the world's evaluator", "",
                         f"Scores by the evaluator of {class_path or 'an unknown world'} (not identified here).")
