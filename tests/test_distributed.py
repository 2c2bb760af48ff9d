"""Rank/world helpers, and a DDP step under torchrun (2 CPU processes, gloo) that matches one process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from harness import distributed as dist_h

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
    from harness import distributed as d

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
                            capture_output=True, text=True, timeout=120)
    assert single.returncode == 0, single.stderr[-2000:]
    cmd = dist_h.torchrun_command(2, str(script), str(tmp_path / "two.json"))
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    ddp = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert (one["world"], two["world"]) == (1, 2)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)
    for a, b in zip(one["weights"], two["weights"]):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7)
