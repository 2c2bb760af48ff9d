"""The real distillation loop under torchrun (2 CPU processes, gloo) equals one process on the full batch.

The ranks run this module as a script (``python -m torch.distributed.run ... -m tests.test_ddp_trainer``):
DMD for one step, then a second run in the same folder that resumes from the first one's checkpoint
(on both ranks) and takes one more step, then one ASD step (rollouts, several forwards per step, a
``ModuleDict`` critic). Each rank writes what it logged, which checkpoints it saved and its weights;
the test compares them with the same runs in one process.

The optimisers are plain SGD here: AdamW's first step is ``lr·g/|g|``, which turns float noise in
gradients that are zero in exact arithmetic (the attention key bias) into ±lr, so its weights cannot be
compared; SGD's weight change is ``lr·g``, and equal changes mean equal averaged gradients.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.engine.checkpoints import CheckpointStore
from harness.parallel import ranks as dist_h
from harness.training.context import TrainContext
from harness.training.trainer import Trainer, TrainSettings
from harness.worlds.toy import ToyWorld
from methods.asd import ASD
from methods.dmd import DMD

from .conftest import ROOT, cli_env

SETTINGS = {"batch_size": 4, "critic_updates_per_generator": 1, "ema_start_step": 100, "checkpoint_every": 1,
            "lr_generator": 10.0, "lr_critic": 0.1}
PHASES = (("dmd", 1), ("dmd", 2), ("asd", 1))  # (method, steps); the second DMD phase resumes the first


def _method(name: str, steps: int):
    train = TrainSettings(steps=steps, **SETTINGS)
    return DMD(train=train) if name == "dmd" else ASD(train=train, n_choices=(1, 2))


def run_phases(out: Path) -> dict:
    """Every phase in ``out/<method>``; what this process logged, saved and ended with."""
    saved: list[int] = []
    save = CheckpointStore.save

    def recording_save(store, step, state):  # which process writes checkpoints
        saved.append(step)
        if dist_h.is_distributed():
            time.sleep(0.5)  # a slow disk: the other rank must still resume from this checkpoint
        return save(store, step, state)

    def sgd(trainer, module, lr):
        return torch.optim.SGD(module.parameters(), lr=lr)

    optimiser = Trainer._optimiser
    CheckpointStore.save, Trainer._optimiser = recording_save, sgd
    world, result = ToyWorld(frames=4), {}
    try:
        for name, steps in PHASES:
            rows: list[dict] = []
            ctx = TrainContext(workdir=out / name, seed=0, log=lambda m, s, rows=rows: rows.append({"step": s, **m}))
            generator = _method(name, steps).distill(world, world.teacher(), world.causal_init(), ctx)
            result[f"{name}{steps}"] = {"rows": rows, "weights": generator.state_dict()}
    finally:
        CheckpointStore.save, Trainer._optimiser = save, optimiser
    critic = CheckpointStore(out / "dmd" / "checkpoints").latest()
    result["dmd_critic"] = critic[1]["critic"] if critic else None
    result["saved"] = saved
    return result


def _main(out: str) -> None:
    torch.set_num_threads(1)
    with dist_h.process_group("gloo"):
        assert dist_h.is_distributed()
        result = run_phases(Path(out) / "shared")  # every rank in one folder, as in a real run
        torch.save({"world": dist_h.world_size(), **result}, Path(out) / f"rank{dist_h.rank()}.pt")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _assert_same_update(actual: dict, expected: dict, start: dict) -> None:
    """The weight changes agree to 1e-5 of each tensor's largest change, plus the rounding of the stored
    float32 weights (two ulps); every tensor changes."""
    assert actual.keys() == expected.keys()
    ulp = torch.finfo(torch.float32).eps
    for key, value in expected.items():
        want = (value - start[key]).double()
        got = (actual[key] - start[key]).double()
        scale = float(want.abs().max())
        assert scale > 0, key
        atol = 1e-5 * scale + 2 * ulp * float(start[key].abs().max())
        torch.testing.assert_close(got, want, rtol=0, atol=atol, msg=key)


@pytest.mark.slow
def test_ddp_distillation_on_two_ranks_equals_one_process_on_the_full_batch(tmp_path):
    cmd = dist_h.torchrun_command(2, "-m", "tests.test_ddp_trainer", str(tmp_path))
    proc = subprocess.run(cmd, cwd=ROOT, env=cli_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=150, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    single = run_phases(tmp_path / "single")
    init = ToyWorld(frames=4).causal_init().state_dict()
    start = {"dmd1": init, "dmd2": single["dmd1"]["weights"], "asd1": init}

    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["saved"] == single["saved"] == [1, 2, 1]  # dmd step 1, dmd step 2 (resumed), asd step 1
    assert ranks[1]["saved"] == []  # rank 1 writes no checkpoint ...
    for phase in ("dmd1", "dmd2", "asd1"):
        assert ranks[1][phase]["rows"] == []  # ... and logs nothing
        ddp, one = ranks[0][phase]["rows"], single[phase]["rows"]
        assert [r["step"] for r in ddp] == [r["step"] for r in one] == ([1] if phase == "dmd2" else [0])
        for got, want in zip(ddp, one):
            assert got.keys() == want.keys()
            for key in want:  # loss terms, gradient norms (a sum instead of a mean would double them), metrics
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), (phase, key)
        _assert_same_update(ranks[0][phase]["weights"], single[phase]["weights"], start[phase])
        for key, tensor in ranks[0][phase]["weights"].items():  # every rank holds the very same weights
            assert torch.equal(tensor, ranks[1][phase]["weights"][key]), key
    teacher = ToyWorld(frames=4).teacher().state_dict()  # the critic starts as a copy of the teacher
    _assert_same_update(ranks[0]["dmd_critic"], single["dmd_critic"], teacher)
    assert CheckpointStore(tmp_path / "shared" / "dmd" / "checkpoints").steps() == [1, 2]


PIPELINE = """\
name: ddp
pipeline:
  class_path: harness.pipelines.DistillAndEvaluate
  init_args:
    world: {{class_path: harness.worlds.toy.ToyWorld, init_args: {{frames: 4}}}}
    method:
      class_path: methods.dmd.DMD
      init_args: {{train: {{steps: 2, batch_size: 4, critic_updates_per_generator: 1, checkpoint_every: 1}}}}
    schedule: "2"
    num_videos: 2
    videos_per_prompt: 1
    num_reference: 0
    save_videos: 0
    trace_videos: 0{resources}
"""


def _distil_and_evaluate(tmp_path: Path, name: str, resources: str = ""):
    """One DistillAndEvaluate run on the toy world with its own run store and stage cache."""
    from harness.engine.executors import InProcessExecutor
    from harness.engine.runner import RunJob
    from harness.engine.study import load_study

    path = tmp_path / f"{name}.yaml"
    path.write_text(PIPELINE.format(resources=resources))
    study = load_study(path)
    (spec,) = study.runs
    job = RunJob(spec, str(tmp_path / name / "runs"), str(tmp_path / name / "cache"), study.tracker_config)
    (outcome,) = InProcessExecutor().wait([job])
    assert outcome.state == "complete", outcome.reason
    (stage,) = (tmp_path / name / "cache" / "distill-dmd").glob("*/stage.json")
    return outcome, stage.parent


@pytest.mark.slow
def test_a_two_gpu_distill_and_evaluate_run_trains_data_parallel_and_matches_one_process(tmp_path, monkeypatch):
    from harness.engine import executors
    from harness.io.atomic import read_jsonl
    from harness.io.weights import load_weights

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    launches, launch = [], executors.run_under_torchrun
    monkeypatch.setattr(executors, "run_under_torchrun", lambda job, n, *a: launches.append(n) or launch(job, n, *a))
    ddp, ddp_stage = _distil_and_evaluate(tmp_path, "two", "\n    resources: {gpus: 2}")
    one, one_stage = _distil_and_evaluate(tmp_path, "one")
    assert launches == [2]  # the two-GPU run went through torchrun, the other did not
    assert ddp.metrics["total"] == pytest.approx(one.metrics["total"], rel=1e-4)
    assert ddp.metrics["generator"] == one.metrics["generator"]  # the same stage key: resources are not in it
    rows, want = read_jsonl(ddp_stage / "metrics.jsonl"), read_jsonl(one_stage / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]  # logged once per step: rank 0 alone
    for got, ref in zip(rows, want):
        assert got == pytest.approx(ref, rel=1e-4, abs=1e-7)
    world = ToyWorld(frames=4)
    weights = [load_weights(world.make_backbone(), s / "generator.safetensors").state_dict()
               for s in (ddp_stage, one_stage)]
    for key, tensor in weights[1].items():  # AdamW moves a gradient-free bias by ±lr either way
        torch.testing.assert_close(weights[0][key], tensor, rtol=0, atol=2.5e-4, msg=key)


def test_a_batch_that_does_not_split_over_the_ranks_is_a_config_error(monkeypatch):
    from harness.diffusion.sampling import NoiseSource
    from harness.errors import ConfigError
    from harness.parallel import data_parallel

    fake = data_parallel.DataParallel.__new__(data_parallel.DataParallel)
    fake.world = 2
    with pytest.raises(ConfigError, match="train.batch_size 3 does not split evenly over 2 ranks"):
        fake.shard_noise(NoiseSource(0), 3)


def test_sharded_noise_keeps_this_ranks_rows_of_the_global_draws():
    from harness.diffusion.sampling import NoiseSource
    from harness.parallel.data_parallel import ShardedNoise

    full, part = NoiseSource(7), ShardedNoise(NoiseSource(7).generator, 4, slice(2, 4))
    assert torch.equal(part.normal((2, 3)), full.normal((4, 3))[2:])  # per-sample: the global draw's rows
    assert torch.equal(part.uniform((2,)), full.uniform((4,))[2:])
    assert part.integer(0, 100) == full.integer(0, 100)  # shared draws agree
    assert torch.equal(part.normal((5,)), full.normal((5,)))  # not a batch: drawn whole
    assert torch.equal(part.spawn().normal((2, 1)), full.spawn().normal((4, 1))[2:])
    assert part.take(["a", "b", "c", "d"]) == ["c", "d"]
    with pytest.raises(ValueError, match="global size 4, got 2"):
        part.take(["a", "b"])


if __name__ == "__main__":  # one rank under torchrun
    _main(sys.argv[1])
