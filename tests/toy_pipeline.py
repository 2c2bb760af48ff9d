"""Small real stages for testing the engine: deterministic arithmetic instead of a model.

A study names these with ``allow_modules: [tests.toy_pipeline]``, which also exercises the allowlist.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from harness.engine.pipeline import Pipeline, RunContext
from harness.io.atomic import append_line
from harness.tracking import Tracker


def _build_table(folder: Path, size: int, log_file: str | None, sleep_s: float) -> None:
    """A 'teacher': a table of numbers, slow enough to race on; every build is logged."""
    if log_file:
        append_line(log_file, json.dumps({"pid": os.getpid(), "size": size}))
    time.sleep(sleep_s)
    (folder / "table.json").write_text(json.dumps([i * i for i in range(size)]))


class CountingPipeline(Pipeline):
    """Accumulates ``scale * table[i]`` for ``steps`` steps, checkpointing every ``checkpoint_every``.

    Args:
        steps: training steps.
        scale: multiplier of the accumulated value.
        table_size: config of the shared stage.
        step_sleep_s: seconds per step, so tests can kill a run mid-way.
        fail_at_step: raise at this step (``None`` never).
        build_log: file where each stage build appends a line (to count builds across processes).
        build_sleep_s: seconds a stage build takes.
        checkpoint_every: checkpoint period in steps (not part of the run's identity).
        tag: a free string (grid levels may set it to text that looks like a number).
    """

    headline = "total"

    def __init__(self, steps: int = 5, scale: float = 1.0, table_size: int = 8, step_sleep_s: float = 0.0,
                 fail_at_step: int | None = None, build_log: str | None = None, build_sleep_s: float = 0.0,
                 checkpoint_every: int = 1, tag: str = "none"):
        if steps < 1:
            raise ValueError("steps must be at least 1")
        self.steps, self.scale, self.table_size = steps, scale, table_size
        self.step_sleep_s, self.fail_at_step = step_sleep_s, fail_at_step
        self.build_log, self.build_sleep_s, self.checkpoint_every = build_log, build_sleep_s, checkpoint_every
        self.tag = tag

    def run(self, ctx: RunContext) -> dict:
        import torch

        table_art = ctx.stage("table", {"size": self.table_size},
                              lambda d: _build_table(d, self.table_size, self.build_log, self.build_sleep_s))
        table = json.loads((table_art.path / "table.json").read_text())
        start, total = 0, torch.zeros(())
        latest = ctx.checkpoints.latest()
        if latest is not None:
            start, state = latest
            total = state["total"]
        ctx.progress(stage="train", step=start, total=self.steps)
        for step in range(start + 1, self.steps + 1):
            if self.fail_at_step == step:
                raise RuntimeError(f"planned failure at step {step}")
            time.sleep(self.step_sleep_s)
            total = total + self.scale * table[step % len(table)] + ctx.seed
            append_line(ctx.workdir / "events.jsonl", json.dumps({"step": step, "pid": os.getpid()}))
            ctx.log({"loss": float(1.0 / step), "total": float(total)}, step)
            ctx.progress(step=step, total=self.steps)
            if step % self.checkpoint_every == 0:
                ctx.checkpoints.save(step, {"total": total})
        return {"total": float(total), "steps": self.steps}


class NaNPipeline(Pipeline):
    """Logs a NaN loss at ``bad_step``: the run must fail naming the step and the term."""

    def __init__(self, bad_step: int = 2):
        self.bad_step = bad_step

    def run(self, ctx: RunContext) -> dict:
        for step in range(1, self.bad_step + 1):
            ctx.log({"loss_dmd": float("nan") if step == self.bad_step else 1.0}, step)
        return {"total": 0.0}


class BrokenTracker(Tracker):
    """A tracker whose every call raises: runs must complete anyway."""

    def start(self, run) -> None:
        raise ConnectionError("tracker service unreachable")

    def log(self, metrics, step) -> None:
        raise ConnectionError("tracker service unreachable")

    def log_video(self, key, path, step=None, caption=None) -> None:
        raise ConnectionError("tracker service unreachable")

    def log_table(self, key, dataframe) -> None:
        raise ConnectionError("tracker service unreachable")

    def summary(self, metrics) -> None:
        raise ConnectionError("tracker service unreachable")

    def finish(self, status) -> None:
        raise ConnectionError("tracker service unreachable")


class ConstantPipeline(Pipeline):
    """A reference row: returns a fixed total without any stage (tests pipeline swaps in a grid).

    Args:
        value: the total it reports.
        table_size: accepted so that a study's shared keys carry over to this row.
    """

    headline = "total"

    def __init__(self, value: float = 100.0, table_size: int = 8):
        self.value, self.table_size = value, table_size

    def run(self, ctx: RunContext) -> dict:
        return {"total": self.value}
