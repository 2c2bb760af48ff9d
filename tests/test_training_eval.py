"""Evaluation while training: runs at its interval, logs its keys, and leaves the trained weights alone."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ConfigError
from harness.pipelines.training_eval import FixedSetScores
from harness.training.context import TrainContext
from harness.training.evaluation import EvalSettings
from harness.training.trainer import TrainSettings
from harness.worlds.toy import ToyWorld
from methods.asd import ASD

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _distill(tmp_path, name: str, every: int, steps: int = 6):
    world = ToyWorld(frames=4)
    settings = TrainSettings(steps=steps, batch_size=2, critic_updates_per_generator=2, ema_start_step=2,
                             checkpoint_every=3, eval=EvalSettings(every=every, schedules=["1", "2"], num_videos=3))
    method = ASD(train=settings, alpha=1.0)
    rows: list[dict] = []
    ctx = TrainContext(workdir=tmp_path / name, seed=3, log=lambda metrics, step: rows.append({"step": step, **metrics}),
                       evaluate=FixedSetScores(world, method, stages=None, batch_size=2))
    generator = method.distill(world, world.teacher(), world.causal_init(), ctx)
    return generator, rows


def test_the_hook_does_not_change_what_is_trained(tmp_path):
    with_hook, rows_on = _distill(tmp_path, "on", every=1)
    without, rows_off = _distill(tmp_path, "off", every=0)
    for (name, a), (_, b) in zip(with_hook.state_dict().items(), without.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    strip = [{k: v for k, v in row.items() if not k.startswith("eval/")} for row in rows_on]
    assert [row for row in strip if set(row) != {"step"}] == rows_off  # the same losses at every step


def test_the_hook_runs_before_training_at_its_interval_and_after_the_last_update(tmp_path):
    _, rows = _distill(tmp_path, "every2", every=2, steps=9)  # generator updates at steps 0, 2, 4, 6, 8
    evaluated = [(row["step"], row["eval/updates"]) for row in rows if "eval/updates" in row]
    assert evaluated == [(0, 0.0), (2, 2.0), (6, 4.0), (8, 5.0)]
    assert not any(k.startswith("generator/") for k in rows[0])  # the evaluation before training: its own row
    first, later = rows[0], rows[7]
    assert {"eval/raw/1/brightness", "eval/raw/2/brightness", "eval/train_seconds"} <= set(first)
    assert not any(k.startswith("eval/ema/") for k in first)  # no EMA before ema_start_step
    assert {"eval/ema/1/brightness", "eval/ema/2/brightness"} <= set(later)
    clocks = [row["eval/train_seconds"] for row in rows if "eval/train_seconds" in row]
    assert clocks == sorted(clocks) and clocks[0] >= 0.0


def test_every_update_keeps_the_scores_before_training_apart(tmp_path):
    _, rows = _distill(tmp_path, "every1", every=1, steps=4)
    assert [row["eval/updates"] for row in rows if "eval/updates" in row] == [0.0, 1.0, 2.0]


def test_dmd_diagnostic_says_how_far_the_fake_score_is_from_the_teacher(tmp_path):
    _, rows = _distill(tmp_path, "gaps", every=0, steps=2)
    first = rows[0]
    assert {"generator/fake_vs_real", "generator/cfg_gap", "generator/fake_vs_teacher"} <= set(first)
    # the critic starts as a copy of the teacher: at step 0 the fake score is the conditional teacher
    assert first["generator/fake_vs_teacher"] == pytest.approx(0.0, abs=1e-6)
    assert first["generator/fake_vs_real"] == pytest.approx(first["generator/cfg_gap"], rel=1e-5)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="train.eval.every must be >= 0"):
        EvalSettings(every=-1)
    with pytest.raises(ConfigError, match="at least one schedule"):
        EvalSettings(every=2, schedules=[])


def test_a_set_the_evaluator_cannot_score_is_skipped_with_a_warning(caplog):
    from harness.training.evaluation import TrainingEval

    def evaluate(model, spec, *, num_videos, seed):
        if spec == "1":
            raise ConfigError("sprites-bench score: dimension 'multiple_objects' has non-finite value nan")
        return {"total": 50.0}

    hook = TrainingEval(EvalSettings(every=1, schedules=["1", "2"], num_videos=2), evaluate)
    row = hook.run(3, {"raw": torch.nn.Linear(2, 2)})
    assert row["eval/raw/2/total"] == 50.0 and "eval/raw/1/total" not in row
    assert "skipped for raw at 1 steps" in caplog.text
