"""FSDP2 on the tiny Wan backbone: 2 CPU ranks (gloo) train like one process on the full batch.

The ranks run this module as a script (``torchrun --nproc_per_node=2 --standalone -m tests.test_wan_fsdp``)
with ``train.parallel: fsdp``: DMD for one step, a second run in the same folder that resumes from the
first one's checkpoint (every rank reads it) and takes one more step, then one ASD step (rollouts, a
``ModuleDict`` critic whose fake score and head are sharded separately), all with gradient
checkpointing on; then one AdamW step whose checkpoint must hold full (gathered) optimiser moments.
Each rank records what it logged and, from ``export``, the generator; the test compares them with the
same phases in one process.

The comparison phases use SGD, as tests/test_ddp_trainer.py explains: AdamW's first step turns float
noise in gradients that are zero in exact arithmetic (attention key biases) into ±lr.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers", reason="the wan extra is part of dev: pip install '.[dev]'")

from harness.engine.checkpoints import CheckpointStore
from harness.parallel import ranks as dist_h
from harness.training.context import TrainContext
from harness.training.trainer import Trainer, TrainSettings
from methods.asd import ASD
from methods.dmd import DMD

from .conftest import ROOT, cli_env

SETTINGS = {"batch_size": 4, "critic_updates_per_generator": 1, "ema_start_step": 100, "checkpoint_every": 1,
            "lr_generator": 1.0, "lr_critic": 0.1}
PHASES = (("dmd", 1), ("dmd", 2), ("asd", 1))  # (method, steps); the second DMD phase resumes the first


def _world(folder: Path):
    from harness.worlds.wan.world import WanWorld

    return WanWorld("tiny", teacher=str(folder), causal_init=str(folder), gradient_checkpointing=True, device="cpu")


def _method(name: str, steps: int, parallel: str):
    train = TrainSettings(steps=steps, parallel=parallel, **SETTINGS)
    return DMD(train=train) if name == "dmd" else ASD(train=train, n_choices=(1, 2), feature_layers=(-1,))


def write_tiny_model(folder: Path) -> Path:
    """The tiny teacher (and causal init) every process loads: a seeded random diffusers folder."""
    from harness.worlds.wan.backbone import WanBackbone
    from harness.worlds.wan.convert import write_diffusers_folder

    torch.manual_seed(3)
    model = WanBackbone("tiny")
    return write_diffusers_folder(model.transformer.state_dict(), model.config, folder)


def run_phases(out: Path, model: Path, parallel: str) -> dict:
    """Every phase in ``out/<method>``: what this process logged and the generator it got back."""
    saved: list[int] = []
    save, optimiser = CheckpointStore.save, Trainer._optimiser

    def recording_save(store, step, state):
        saved.append(step)
        return save(store, step, state)

    def sgd(trainer, module, lr):
        return torch.optim.SGD(module.parameters(), lr=lr)

    CheckpointStore.save, Trainer._optimiser = recording_save, sgd
    world, result = _world(model), {"saved": saved}
    try:
        for name, steps in PHASES:
            rows: list[dict] = []
            ctx = TrainContext(workdir=out / name, seed=0, log=lambda m, s, rows=rows: rows.append({"step": s, **m}))
            generator = _method(name, steps, parallel).distill(world, world.teacher(None), world.causal_init(None), ctx)
            result[f"{name}{steps}"] = {"rows": rows, "weights": {k: v.detach().clone() for k, v in
                                                                   generator.state_dict().items()}}
    finally:
        CheckpointStore.save, Trainer._optimiser = save, optimiser
    train = TrainSettings(steps=1, parallel=parallel, **{**SETTINGS, "lr_generator": 1e-3, "lr_critic": 1e-3})
    DMD(train=train).distill(world, world.teacher(None), world.causal_init(None),
                             TrainContext(workdir=out / "adamw", seed=0, log=lambda m, s: None))
    return result


def _main(out: str) -> None:
    torch.set_num_threads(1)
    with dist_h.process_group("gloo"):
        assert dist_h.is_distributed()
        result = run_phases(Path(out) / "shared", Path(out) / "model", "fsdp")
        plain = all(type(v).__name__ != "DTensor" for v in result["dmd1"]["weights"].values())
        torch.save({"world": dist_h.world_size(), "plain": plain, **result}, Path(out) / f"rank{dist_h.rank()}.pt")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _assert_same_update(actual: dict, expected: dict, start: dict) -> None:
    """Weight changes agree to 1e-4 of each tensor's largest change, plus two ulps of the stored weights,
    and nearly every tensor changes. 1e-4, not DDP's 1e-5: FSDP sums gradients in another order
    (reduce-scatter of flat shards), and the zero-initialised cross-attention norm biases get gradients
    of ~1e-7 that are sums with cancellation (measured relative differences up to 3e-5)."""
    assert actual.keys() == expected.keys()
    ulp = torch.finfo(torch.float32).eps
    changed = 0
    for key, value in expected.items():
        want = (value - start[key]).double()
        got = (actual[key] - start[key]).double()
        scale = float(want.abs().max())
        changed += scale > 0
        atol = 1e-4 * scale + 2 * ulp * float(start[key].abs().max())
        torch.testing.assert_close(got, want, rtol=0, atol=atol, msg=key)
    assert changed > 0.9 * len(expected)


@pytest.mark.slow
def test_fsdp_on_two_ranks_equals_one_process_on_the_full_batch(tmp_path):
    from harness.worlds.wan.loading import load_wan_backbone

    model = write_tiny_model(tmp_path / "model")
    cmd = dist_h.torchrun_command(2, "-m", "tests.test_wan_fsdp", str(tmp_path))
    proc = subprocess.run(cmd, cwd=ROOT, env=cli_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    single = run_phases(tmp_path / "single", model, "fsdp")  # one process: the strategy is moot
    init = load_wan_backbone(model).state_dict()
    start = {"dmd1": init, "dmd2": single["dmd1"]["weights"], "asd1": init}

    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["plain"]  # the writer gets a plain module back (export gathered the shards)
    assert ranks[0]["saved"] == single["saved"] == [1, 2, 1]  # dmd step 1, dmd step 2 (resumed), asd step 1
    assert ranks[1]["saved"] == []  # rank 1 writes no checkpoint ...
    for phase in ("dmd1", "dmd2", "asd1"):
        assert ranks[1][phase]["rows"] == []  # ... and logs nothing
        got_rows, want_rows = ranks[0][phase]["rows"], single[phase]["rows"]
        assert [r["step"] for r in got_rows] == [r["step"] for r in want_rows] == ([1] if phase == "dmd2" else [0])
        for got, want in zip(got_rows, want_rows):
            # ASD measures its gradient ratio on unsharded parameters only: FSDP's rows do not log it
            want = {k: v for k, v in want.items() if not k.startswith("generator/grad_ratio_")}
            assert got.keys() == want.keys()
            for key in want:  # loss terms, gradient norms (sharded grads, one global norm), metrics
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), (phase, key)
        _assert_same_update(ranks[0][phase]["weights"], single[phase]["weights"], start[phase])

    # checkpoints have the single-process format: full tensors, AdamW moments included
    shapes = sorted(tuple(v.shape) for v in init.values())
    critics = {}
    for folder in ("shared", "single"):
        step, state = CheckpointStore(tmp_path / folder / "adamw" / "checkpoints").latest()
        moments = state["opt_generator"]["state"].values()
        assert step == 1 and sorted(tuple(m["exp_avg"].shape) for m in moments) == shapes
        assert all(type(m["exp_avg"]) is torch.Tensor for m in moments)
        critics[folder] = state["critic"]
    for key, tensor in critics["single"].items():  # AdamW moves a gradient-free bias by ±lr either way
        torch.testing.assert_close(critics["shared"][key], tensor, rtol=0, atol=2.5e-3, msg=key)


def test_an_unknown_parallel_strategy_is_a_config_error():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="train.parallel 'zero3' is unknown; choose one of \\['ddp', 'fsdp'\\]"):
        TrainSettings(parallel="zero3")


def test_the_wan_backbone_is_sharded_per_block_then_the_root(tmp_path):
    """One rank of one (a gloo group of size 1): the policy's units, bf16 compute only asked for on GPUs."""
    import os

    from harness.parallel.fsdp import mixed_precision, shard_module
    from harness.worlds.wan.backbone import WanBackbone

    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 1000), "RANK": "0", "WORLD_SIZE": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule

    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = WanBackbone("tiny")
        critic = torch.nn.ModuleDict({"fake_score": WanBackbone("tiny"), "head": torch.nn.Linear(4, 2)})
        mesh = init_device_mesh("cpu", (1,))
        policy = mixed_precision(torch.device("cpu"))
        shard_module(model, mesh, policy)
        shard_module(critic, mesh, policy)
        assert isinstance(model, FSDPModule) and all(isinstance(b, FSDPModule) for b in model.transformer.blocks)
        assert not isinstance(critic, FSDPModule)  # no forward of its own: its children are the roots
        assert isinstance(critic["fake_score"], FSDPModule) and isinstance(critic["head"], FSDPModule)
        assert policy.param_dtype is None  # fp32 on the CPU
        gpu = mixed_precision(torch.device("cuda"))
        assert (gpu.param_dtype, gpu.reduce_dtype, gpu.output_dtype) == (torch.bfloat16, torch.float32, torch.float32)
    finally:
        dist.destroy_process_group()
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


if __name__ == "__main__":  # one rank under torchrun
    _main(sys.argv[1])
