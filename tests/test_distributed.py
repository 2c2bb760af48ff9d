"""Rank/world helpers, a DDP step under torchrun that matches one process, and runs that ask for two
GPUs launched under torchrun (2 CPU processes, gloo) by the local executor and by a sweep."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from harness.engine.pipeline import Pipeline, RunContext
from harness.engine.rank_stages import every_rank
from harness.errors import ConfigError
from harness.io.atomic import append_line
from harness.parallel import ranks as dist_h
from harness.tracking import Tracker

from .conftest import ROOT, cli_env


def test_a_plain_process_is_rank_zero_of_one(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert (dist_h.rank(), dist_h.world_size(), dist_h.local_rank(), dist_h.is_rank_zero()) == (0, 1, 0, True)
    with dist_h.process_group():  # a world of one needs no process group
        assert not dist_h.is_distributed()
        t = torch.tensor([2.0, 4.0])
        assert dist_h.all_reduce_mean(t).tolist() == [2.0, 4.0]
        assert dist_h.broadcast_object({"prune": True}) == {"prune": True}
    assert dist_h.shard(10) == slice(0, 10)


def test_shards_cover_the_batch_once(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    slices = []
    for r in range(3):
        monkeypatch.setenv("RANK", str(r))
        slices.append(dist_h.shard(10))
    assert [(s.start, s.stop) for s in slices] == [(0, 3), (3, 6), (6, 10)]
    monkeypatch.setenv("RANK", "2")
    assert not dist_h.is_rank_zero()


STEP = textwrap.dedent("""\
    import json, sys, torch
    from torch.nn.parallel import DistributedDataParallel as DDP
    from harness.parallel import ranks as d

    def model_and_batch():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6))
        x, target = torch.randn(8, 6), torch.randn(8, 6)
        return model, x, target

    def step(model, x, target):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        return loss.detach()

    with d.process_group("gloo"):
        model, x, target = model_and_batch()
        part = d.shard(x.shape[0])
        wrapped = DDP(model) if d.is_distributed() else model
        loss = d.all_reduce_mean(step(wrapped, x[part], target[part]))
        if d.is_rank_zero():  # rank 0 alone writes the result
            weights = [p.detach().flatten().tolist() for p in model.parameters()]
            json.dump({"world": d.world_size(), "loss": float(loss), "weights": weights}, open(sys.argv[1], "w"))
    """)


def test_ddp_step_under_torchrun_equals_one_process_on_the_full_batch(tmp_path):
    script = tmp_path / "ddp_step.py"
    script.write_text(STEP)
    env = cli_env(OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one.json")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert single.returncode == 0, single.stderr[-2000:]
    cmd = dist_h.torchrun_command(2, str(script), str(tmp_path / "two.json"))
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    ddp = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=240, check=False)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert (one["world"], two["world"]) == (1, 2)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)
    for a, b in zip(one["weights"], two["weights"]):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7)


# -- runs that ask for several GPUs -------------------------------------------------------------------


def _record(path: str | None, **fields) -> None:
    if path:
        append_line(path, json.dumps({"rank": dist_h.rank(), **fields}))


class RankedPipeline(Pipeline):
    """An SPMD toy: a plain stage, a collective stage, and per step an all-reduce, a log, a report and a
    checkpoint. ``total`` grows by the mean over ranks of ``rank + 1`` (1.5 on two ranks) per step.

    Args:
        steps: steps.
        scale: multiplier of each step's increment (the swept parameter).
        record: file where every rank appends what it built.
        fail_rank: this rank raises at step 2 (None: never).
        resources: what the run asks of the executor.
    """

    headline = "total"
    produces = ("total", "world", "shared")

    def __init__(self, steps: int = 3, scale: float = 1.0, record: str | None = None, fail_rank: int | None = None,
                 resources: dict[str, float] | None = None):
        self.steps, self.scale, self.record, self.fail_rank = steps, scale, record, fail_rank

    def run(self, ctx: RunContext) -> dict:
        def plain(folder: Path) -> None:
            _record(self.record, stage="plain")
            (folder / "value.json").write_text("7")

        def shared(folder: Path) -> None:
            _record(self.record, stage="shared")
            total = dist_h.all_reduce_mean(torch.tensor([float(dist_h.rank() + 1)])) * dist_h.world_size()
            if dist_h.is_rank_zero():
                (folder / "sum.json").write_text(json.dumps(float(total)))

        ctx.stage("plain", {"n": 1}, plain)
        art = ctx.stage("shared", {"n": 1}, every_rank(shared))
        latest = ctx.checkpoints.latest()
        start, total = (latest[0], float(latest[1]["total"])) if latest else (0, 0.0)
        for step in range(start + 1, self.steps + 1):
            if step == 2 and dist_h.rank() == self.fail_rank:
                raise RuntimeError(f"rank {self.fail_rank} fails at step 2")
            total += self.scale * float(dist_h.all_reduce_mean(torch.tensor([float(dist_h.rank() + 1)])))
            append_line(ctx.workdir / "events.jsonl", json.dumps({"step": step, "rank": dist_h.rank()}))
            ctx.log({"total": total}, step)
            ctx.progress(stage="train", step=step, total=self.steps)
            ctx.report(total, step)
            ctx.checkpoints.save(step, {"total": torch.tensor(total)})
        return {"total": total, "world": dist_h.world_size(), "shared": json.loads((art.path / "sum.json").read_text())}


class RankTracker(Tracker):
    """Appends every call it gets, with the rank that made it."""

    def __init__(self, path: str):
        self.path = path

    def start(self, run) -> None:
        _record(self.path, call="start")

    def log(self, metrics, step) -> None:
        _record(self.path, call="log", step=step)

    def finish(self, status) -> None:
        _record(self.path, call="finish", status=status)


RANKED = """\
name: ranked
allow_modules: [tests.test_distributed]
pipeline:
  class_path: tests.test_distributed.RankedPipeline
  init_args: {{record: {record}, resources: {{gpus: 2}}{extra}}}
tracker: {{class_path: tests.test_distributed.RankTracker, init_args: {{path: {tracker}}}}}
"""


def _ranked_job(tmp_path: Path, extra: str = ""):
    from harness.engine.runner import RunJob
    from harness.engine.study import load_study

    path = tmp_path / "ranked.yaml"
    path.write_text(RANKED.format(record=tmp_path / "built.jsonl", tracker=tmp_path / "tracker.jsonl", extra=extra))
    study = load_study(path)
    (spec,) = study.runs
    return RunJob(spec, str(tmp_path / "runs"), str(tmp_path / "cache"), study.tracker_config), path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_run_is_launched_under_torchrun_when_it_asks_for_several_gpus(tmp_path, monkeypatch):
    from harness.engine import executors

    job, _ = _ranked_job(tmp_path)
    assert executors.ranks_for(job) == 2
    cmd = executors.torchrun_job_command(2, Path("j.pkl"), Path("o.pkl"))
    assert cmd[1:] == ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "harness.engine.runner",
                       "j.pkl", "o.pkl"]
    launched = []
    monkeypatch.setattr(executors, "run_under_torchrun", lambda job, n, progress, reporter: launched.append(n))
    executors.execute_job(job)
    assert launched == [2]
    monkeypatch.setenv("WORLD_SIZE", "2")  # already a rank: never launch torchrun inside torchrun
    monkeypatch.setattr(executors, "ranks", dist_h)
    monkeypatch.setattr("harness.engine.runner.execute_run", lambda job, progress, reporter: "ran here")
    assert executors.execute_job(job) == "ran here" and launched == [2]


@pytest.mark.parametrize("gpus, ranks", [(None, 1), (1, 1), (0.5, 1), (4, 4)])
def test_ranks_follow_the_gpus_a_run_asks_for(tmp_path, gpus, ranks):
    from harness.engine import executors

    job, _ = _ranked_job(tmp_path)
    init_args = job.spec.config["pipeline"]["init_args"]
    del init_args["resources"]
    if gpus is not None:
        init_args["resources"] = {"gpus": gpus}
    assert executors.ranks_for(job) == ranks


def test_a_fractional_gpu_count_above_one_is_a_config_error(tmp_path):
    from harness.engine import executors

    job, _ = _ranked_job(tmp_path)
    job.spec.config["pipeline"]["init_args"]["resources"] = {"gpus": 1.5}
    with pytest.raises(ConfigError, match="resources.gpus 1.5 must be a whole number above 1"):
        executors.ranks_for(job)


@pytest.mark.slow
def test_the_local_executor_runs_a_two_gpu_run_on_two_ranks_and_rank_zero_alone_writes(tmp_path, monkeypatch):
    from harness.engine.executors import InProcessExecutor

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job, _ = _ranked_job(tmp_path)
    events: list[dict] = []
    (outcome,) = InProcessExecutor().wait([job], events.append)
    assert outcome.state == "complete", outcome.reason
    assert outcome.metrics == {"total": 4.5, "world": 2, "shared": 3.0}  # 3 steps × mean(1, 2); 1 + 2
    run = tmp_path / "runs" / "ranked" / job.spec.short
    assert json.loads((run / "result.json").read_text())["metrics"] == outcome.metrics
    assert json.loads((run / "status.json").read_text())["state"] == "complete"
    assert [r["step"] for r in _lines(run / "metrics.jsonl")] == [1, 2, 3]  # logged once, by rank 0
    assert {r["rank"] for r in _lines(run / "events.jsonl")} == {0}  # rank 1 wrote to its scratch folder
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002.pt", "step-00000003.pt"]
    built = _lines(tmp_path / "built.jsonl")
    assert [r["rank"] for r in built if r["stage"] == "plain"] == [0]  # built once, by rank 0
    assert sorted(r["rank"] for r in built if r["stage"] == "shared") == [0, 1]  # a collective build: both
    assert {r["rank"] for r in _lines(tmp_path / "tracker.jsonl")} == {0}  # only rank 0 talks to the tracker
    assert [e["step"] for e in events if e.get("stage") == "train"] == [1, 2, 3]  # relayed by rank 0

    again, = InProcessExecutor().wait([job])  # complete: rank 0 says so, nobody recomputes
    assert again.state == "cached" and len(_lines(run / "metrics.jsonl")) == 3


@pytest.mark.slow
@pytest.mark.parametrize("rank, reason", [
    (1, "rank 1: RuntimeError: rank 1 fails at step 2"),  # the cause, not its echo on rank 0 ("connection closed")
    (0, "RuntimeError: rank 0 fails at step 2"),  # rank 0 records its own failure; torchrun stops rank 1
])
def test_a_rank_that_fails_fails_the_run_with_its_error(tmp_path, monkeypatch, rank, reason):
    from harness.engine.executors import execute_job

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job, _ = _ranked_job(tmp_path, extra=f", fail_rank: {rank}")
    outcome = execute_job(job)
    assert (outcome.state, outcome.reason) == ("failed", reason)
    run = tmp_path / "runs" / "ranked" / job.spec.short
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"] == reason
    assert f"rank {rank} fails at step 2" in (run / "error.log").read_text()


@pytest.mark.slow
def test_a_sweep_trial_on_two_ranks_reports_through_rank_zero_and_is_pruned_on_every_rank(tmp_path, monkeypatch):
    import optuna
    from optuna.trial import TrialState

    from harness.commands.sweep import sweep

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _, path = _ranked_job(tmp_path)
    path.write_text(path.read_text() + textwrap.dedent("""\
        sweep:
          objectives: {total: maximize}
          space:
            scale: {low: 0.5, high: 4.0}
          baselines: [{scale: 1.0}]
          pruner: {class_path: harness.sweep.Threshold, init_args: {lower: 3.5, n_warmup_steps: 2}}
        """))
    runs = tmp_path / "runs"
    assert sweep(path, runs_dir=runs, n_trials=1, report=False) == 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(runs / "ranked" / "optuna.log")))
    (trial,) = optuna.load_study(study_name="ranked", storage=storage).trials
    assert trial.state == TrialState.PRUNED  # totals 1.5, 3.0: below 3.5 at step 2
    assert trial.intermediate_values == {1: 1.5, 2: 3.0}  # rank 0's reports reached the trial
    status = json.loads((runs / "ranked" / trial.user_attrs["harness.runs"][0] / "status.json").read_text())
    assert status["state"] == "failed" and status["pruned_step"] == 2
