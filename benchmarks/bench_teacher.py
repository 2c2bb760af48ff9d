"""Training speed of the sprites teacher recipe: steps/s, model FLOP utilisation, projected build time.

Prints plain figures for a world preset (default: ``default``):
* the machine's fp32 matmul rate (bench_backbone.matmul_rate) and its bf16 rate (AVX512-BF16 CPUs run
  bf16 matmuls about 3x faster, yet the default recipe trains in fp32: the casts cost more than that
  saves on a DiT this small);
* FLOPs of one teacher training step (forward + backward, counted by torch.utils.flop_counter);
* steps/s of the real step (rendered batch, CFG dropout, logit-normal σ, AdamW, EMA, clipping) in the
  recipe's precision and in fp32, and MFU = FLOPs × steps/s / matmul rate;
* the projected minutes for the preset's teacher steps.

Run: ``python benchmarks/bench_teacher.py [--size default] [--iters 10]``, and again with
``OMP_WAIT_POLICY=PASSIVE``: the OpenMP wait policy moves a step of this DiT by 2x either way (docs/history.md
has the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_backbone import counted_flops, matmul_rate
from harness.training.fit import fit
from harness.worlds.sprites.backbone import SpritesDiT
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.teacher import FlowRecipe, flow_loss, null_tokens, trained_parameters
from harness.worlds.sprites.world import WorldPreset, world_preset


def bf16_matmul_rate(size: int = 512, repeats: int = 20) -> float:
    """Sustained bf16 matmul FLOP/s (best of a few runs)."""
    a, b = torch.randn(size, size, dtype=torch.bfloat16), torch.randn(size, size, dtype=torch.bfloat16)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best


def teacher_figures(preset: WorldPreset, recipe: FlowRecipe, iters: int) -> tuple[float, float]:
    """(steps/s, FLOPs per step) of the teacher's training step under ``recipe``: the real loop
    (:func:`harness.training.fit.fit`) timed over ``iters`` steps after one warm-up step."""
    model = SpritesDiT(preset.dit)
    trained = trained_parameters(model, recipe.freeze_prompt_encoder)
    data, rng = SpritesData(preset.world), np.random.default_rng(0)
    gen, null = torch.Generator().manual_seed(0), null_tokens(recipe.batch_size)

    def step_loss(step: int) -> torch.Tensor:
        x0, ids, _, _ = data.batch(recipe.batch_size, rng)
        return flow_loss(model, x0, ids, null, recipe, gen, causal=False, frames_per_chunk=None)

    with FlopCounterMode(display=False) as counter:
        step_loss(0).backward()
    flops = counted_flops(counter)
    fit(model, trained, step_loss, dataclasses.replace(recipe, steps=1), what="flow loss")  # warm-up
    result = fit(model, trained, step_loss, dataclasses.replace(recipe, steps=iters), what="flow loss")
    return iters / result.seconds, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = world_preset(args.size)
    fp32_rate, bf16_rate = matmul_rate(), bf16_matmul_rate()
    print(f"matmul rate: fp32 {fp32_rate / 1e9:.1f} GFLOP/s, bf16 {bf16_rate / 1e9:.1f} GFLOP/s "
          f"({args.threads} threads)")
    print(f"preset {args.size}: {SpritesDiT(preset.dit).num_parameters() / 1e6:.2f}M parameters, "
          f"batch {preset.teacher.batch_size}, {preset.world.frames} frames of {preset.dit.tokens_per_frame} tokens")
    recipes = {name: dataclasses.replace(preset.teacher, precision=name) for name in ("fp32", "bf16")}
    print(f"the preset trains in {preset.teacher.precision}")
    for name, recipe in recipes.items():
        steps_per_s, flops = teacher_figures(preset, recipe, args.iters)
        achieved = flops * steps_per_s
        print(f"{name}: {steps_per_s:.2f} steps/s, {flops / 1e9:.2f} GFLOP/step, {achieved / 1e9:.1f} GFLOP/s, "
              f"MFU {100 * achieved / fp32_rate:.0f}% of fp32 rate, {100 * achieved / bf16_rate:.0f}% of bf16 rate")
        print(f"  projected teacher build ({recipe.steps} steps): {recipe.steps / steps_per_s / 60:.1f} min")


if __name__ == "__main__":
    main()
