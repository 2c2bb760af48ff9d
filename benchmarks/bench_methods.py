"""Speed of the distillation methods and of the shared causal sampler on the sprites world.

Prints plain figures, with random (untrained) weights at the chosen sprites size — speed does not depend
on what the weights have learnt:

* training iterations/s of ``dmd``, ``self_forcing`` (4 steps) and ``asd``, where one iteration is one
  critic update and the generator is updated every ``--ratio`` iterations (Self Forcing: 5), measured
  over whole ratio cycles after a warm-up iteration (ASD with FFE inference trains exactly like ASD);
* sampling latency per video for the schedules 1, 2, 4, 1*, 2* (best of round-robin runs), its NFE,
  time per forward and that time relative to the 4-step schedule's (1.00 = latency follows NFE
  exactly; the target is within 10 %).

Run: ``python benchmarks/bench_methods.py [--size default] [--batch 4] [--cycles 2] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from harness.diffusion.sampling import sample_causal
from harness.diffusion.schedules import StepSchedule
from harness.training.context import TrainContext
from harness.training.trainer import TrainSettings
from harness.worlds.sprites.world import SpritesWorld
from methods.asd import ASD
from methods.dmd import DMD
from methods.self_forcing import SelfForcing

METHODS = {"dmd": DMD, "self_forcing": SelfForcing, "asd": ASD}
SCHEDULES = ("1", "2", "4", "1*", "2*")


def iterations_per_second(world: SpritesWorld, name: str, batch: int, ratio: int, cycles: int) -> float:
    """Critic iterations/s over ``cycles`` full generator:critic cycles, after one warm-up iteration."""
    stamps: list[float] = []
    steps = 1 + cycles * ratio
    settings = TrainSettings(
        steps=steps,
        batch_size=batch,
        critic_updates_per_generator=ratio,
        checkpoint_every=10 * steps,
        ema_start_step=0,
    )
    with tempfile.TemporaryDirectory() as workdir:
        ctx = TrainContext(
            workdir=Path(workdir), seed=0, log=lambda metrics, step: stamps.append(time.perf_counter())
        )
        METHODS[name](train=settings).distill(world, world.make_backbone(), world.make_backbone(), ctx)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def sampling_latencies(world: SpritesWorld, batch: int, repeats: int) -> dict[str, tuple[float, int]]:
    """Per schedule: (best seconds per video, NFE per video) of the shared sampler.

    Schedules are timed round-robin and the best run is kept, so a load spike from other processes on a
    shared machine hits every schedule alike instead of skewing one.
    """
    generator = world.make_backbone().eval()
    prompts = world.prompts("eval")[:batch]
    nfe = {spec: sample_causal(world, generator, prompts, spec, seed=0).nfe for spec in SCHEDULES}  # warm-up
    best = dict.fromkeys(SCHEDULES, float("inf"))
    for repeat in range(repeats):
        for spec in SCHEDULES:
            start = time.perf_counter()
            sample_causal(world, generator, prompts, spec, seed=repeat)
            best[spec] = min(best[spec], time.perf_counter() - start)
    return {spec: (best[spec] / batch, nfe[spec]) for spec in SCHEDULES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default", help="sprites world size (smoke | default)")
    parser.add_argument("--batch", type=int, default=4, help="training batch size")
    parser.add_argument("--ratio", type=int, default=5, help="critic updates per generator update")
    parser.add_argument("--cycles", type=int, default=2, help="generator:critic cycles timed per method")
    parser.add_argument("--sample-batch", type=int, default=8, help="videos sampled together")
    parser.add_argument("--repeats", type=int, default=7, help="timed sampling runs per schedule")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = SpritesWorld(args.size)
    shape = world.video_shape
    params = sum(p.numel() for p in world.make_backbone().parameters())
    print(
        f"sprites '{args.size}': {shape.frames} frames in {shape.num_chunks} chunks "
        f"of {shape.frames_per_chunk}, "
        f"{shape.channels}x{shape.height}x{shape.width}, DiT {params / 1e6:.2f} M parameters, "
        f"{args.threads} thread(s)"
    )
    print(f"\ntraining, batch {args.batch}, generator every {args.ratio} critic iterations")
    for name in METHODS:
        rate = iterations_per_second(world, name, args.batch, args.ratio, args.cycles)
        print(f"  {name:<13} {rate:7.2f} iterations/s  ({rate / args.ratio:.2f} generator updates/s)")
    print(f"\nsampling, {args.sample_batch} videos per call, best of {args.repeats} round-robin runs")
    print(f"  {'schedule':<9}{'NFE':>5}{'ms/video':>10}{'ms/forward':>12}{'vs 4-step':>11}")
    rows = sampling_latencies(world, args.sample_batch, args.repeats)
    per_forward_4 = rows["4"][0] / rows["4"][1]
    for spec, (seconds, nfe) in rows.items():
        assert nfe == StepSchedule.from_spec(spec).nfe(shape.num_chunks)
        per_forward = seconds / nfe
        print(
            f"  {spec:<9}{nfe:>5}{seconds * 1e3:>10.2f}{per_forward * 1e3:>12.3f}"
            f"{per_forward / per_forward_4:>11.2f}"
        )


if __name__ == "__main__":
    main()
