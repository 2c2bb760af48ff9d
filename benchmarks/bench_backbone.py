"""Speed of the sprites DiT on this machine: training steps/s, model FLOP utilisation, cached generation.

Prints plain figures:
* the fp32 matmul rate measured here (the ceiling MFU is computed against);
* training steps/s (flow-matching loss, AdamW) and MFU = counted FLOPs per step × steps/s / matmul rate,
  with FLOPs counted by ``torch.utils.flop_counter`` over one forward + backward;
* time per generated chunk with the KV cache (n denoising forwards + 1 cache pass per chunk) for 4, 8
  and 16 chunks, and the ratio t(2N chunks) / t(N chunks) of total time (flat per-chunk cost gives 2).

Run: ``python benchmarks/bench_backbone.py [--preset default] [--batch 32] [--frames 8]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.diffusion.conventions import add_noise, flow_target, x0_from_v
from harness.diffusion.kv_cache import KVCache
from harness.diffusion.schedules import StepSchedule
from harness.worlds.sprites.backbone import SpritesDiT, build_sprites_dit
from harness.worlds.sprites.world import world_preset


def matmul_rate(size: int = 512, repeats: int = 20) -> float:
    """Sustained fp32 matmul FLOP/s on square matrices (best of a few runs)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best


def _batch(model: SpritesDiT, batch: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model.config
    x0 = torch.randn(batch, frames, cfg.channels, cfg.height, cfg.width)
    cond = torch.randint(1, cfg.vocab_size, (batch, 8))
    return x0, cond


def _train_step(
    model: SpritesDiT, optimizer: torch.optim.Optimizer, x0: torch.Tensor, cond: torch.Tensor
) -> None:
    noise = torch.randn_like(x0)
    sigma = torch.rand(x0.shape[:2])
    v = model(add_noise(x0, noise, sigma), sigma * 1000, cond)
    loss = (v - flow_target(x0, noise)).square().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def counted_flops(counter: FlopCounterMode) -> float:
    """The counter's total, with the backward of grouped (depthwise) convolutions counted as twice their
    forward: torch's formula for ``convolution_backward`` ignores ``groups`` and reported 21.8 GFLOP for
    the 0.06 GFLOP of token_conv's forward (an MFU over 100%)."""
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    conv_backward = counts.get("aten.convolution_backward.default", counts.get("aten.convolution_backward", 0))
    conv_forward = counts.get("aten.convolution.default", counts.get("aten.convolution", 0))
    return counter.get_total_flops() - conv_backward + 2 * conv_forward


def training_figures(model: SpritesDiT, batch: int, frames: int, iters: int) -> tuple[float, float]:
    """(steps/s, FLOPs per step)."""
    x0, cond = _batch(model, batch, frames)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.0, 0.999))
    with FlopCounterMode(display=False) as counter:
        _train_step(model, optimizer, x0, cond)
    flops = counted_flops(counter)
    _train_step(model, optimizer, x0, cond)
    start = time.perf_counter()
    for _ in range(iters):
        _train_step(model, optimizer, x0, cond)
    return iters / (time.perf_counter() - start), flops


@torch.no_grad()
def generate(model: SpritesDiT, chunks: int, schedule: StepSchedule, batch: int = 1,
             window_frames: int | None = None) -> float:
    """Seconds to generate ``chunks`` chunks with the cache (n steps + 1 context pass each)."""
    cfg = model.config
    fpc = cfg.frames_per_chunk
    cond = torch.randint(1, cfg.vocab_size, (batch, 8))
    cache = KVCache(window_frames)
    start = time.perf_counter()
    for chunk in range(chunks):
        x = torch.randn(batch, fpc, cfg.channels, cfg.height, cfg.width)
        steps = schedule.timesteps_for_chunk(chunk)
        for i, t in enumerate(steps):
            x0 = x0_from_v(x, model(x, t, cond, kv_cache=cache), t / 1000)
            if i + 1 < len(steps):
                x = add_noise(x0, torch.randn_like(x0), steps[i + 1] / 1000)
        model(x0, 0.0, cond, kv_cache=cache, write_cache=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--no-cross-attention", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    overrides = {"cross_attention": False} if args.no_cross_attention else {}
    # the DiT of the sprites world preset (what the teacher and students train), not a bare DiT preset
    model = build_sprites_dit(world_preset(args.preset).dit, **overrides)
    cfg = model.config
    rate = matmul_rate()
    print(f"threads {torch.get_num_threads()}  fp32 matmul {rate / 1e9:.1f} GFLOP/s")
    print(
        f"preset {args.preset}: {model.num_parameters() / 1e6:.2f}M params, {cfg.tokens_per_frame} tokens/frame, "
        f"{cfg.tokens_per_frame * args.frames} tokens/video, cross_attention={cfg.cross_attention}"
    )

    steps_per_s, flops = training_figures(model.train(), args.batch, args.frames, args.iters)
    print(
        f"training: batch {args.batch} x {args.frames} frames: {steps_per_s:.2f} steps/s, "
        f"{flops / 1e9:.2f} GFLOP/step, MFU {100 * flops * steps_per_s / rate:.0f}%"
    )

    model.eval()
    schedule = StepSchedule.uniform(4)
    generate(model, 2, schedule)  # warm-up
    # unbounded context (attention grows with the video) and a window of the trained length (8 frames,
    # Self Forcing's local attention): only the window keeps the per-chunk cost flat past that length
    for window in (None, args.frames):
        totals = {n: float("inf") for n in (4, 8, 16)}
        for _ in range(5):  # interleaved best-of-5: load from other processes hits every length alike
            for n, best in totals.items():
                totals[n] = min(best, generate(model, n, schedule, window_frames=window))
        label = "unbounded context" if window is None else f"window {window} frames"
        for n, total in totals.items():
            print(f"generation (4 steps + cache pass, batch 1, {label}): {n:2d} chunks {total:.3f}s, "
                  f"{1e3 * total / n:.1f} ms/chunk")
        print(f"flatness ({label}): t(8)/t(4) {totals[8] / totals[4]:.2f}, t(16)/t(8) {totals[16] / totals[8]:.2f} "
              "(limit 2.1)")


if __name__ == "__main__":
    main()
