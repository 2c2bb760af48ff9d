"""Distil a method outside a run: the method tests' way of collecting what it logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from harness.worlds.base import World


def distill_log(
    method: Any, world: World, workdir: Path, seed: int = 0
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Distil on ``world`` in ``workdir``; return the generator and the logged rows (with their step)."""
    from harness.training.context import TrainContext

    rows: list[dict[str, float]] = []
    ctx = TrainContext(
        workdir=workdir, seed=seed, log=lambda metrics, step: rows.append({"step": step, **metrics})
    )
    generator = method.distill(world, world.teacher(), world.causal_init(), ctx)
    return generator, rows
