"""Speed of the Wan backbone (diffusers WanTransformer3DModel behind the Backbone protocol).

Prints plain figures, milliseconds per call (median of ``--iters``):
* forward (no grad) of the whole video, bidirectional and block-causal (``--attention`` backend), and
  of one chunk against a KV cache of the earlier chunks (a read-only denoising pass, and the t = 0 write
  pass);
* the block-causal whole video under each attention backend (``dense`` mask, ``flex`` BlockMask,
  ``chunked`` loop): forward, and forward + backward, with the largest deviation of the output and of
  the gradients from ``dense`` (flex has no CPU backward; on CPU it runs eager and unfused, on CUDA
  compiled, so its first call there includes the compile); on CUDA also the peak memory of each;
* a training step (flow-matching loss, AdamW with Self Forcing's betas) on the full block-causal
  video, and on the last chunk against the cache (the Self Forcing exit forward), each with and
  without gradient checkpointing;
* cached generation with the shared sampler for 1, 2, 4 steps and FFE (``1*``): time per chunk, the
  first chunk's latency, and latent frames per second (the DiT alone, no VAE decode).

The default is the tiny CPU preset with random weights. On a GPU,
``--preset wan2.1-t2v-1.3b --device cuda --dtype bf16 --batch 1`` gives the 1.3B model's figures at the
real 21×60×104 latent geometry (Self Forcing reports 17 FPS and 0.69 s first-chunk latency at 4 steps
on one H100, pixel frames, VAE included).

Run: ``python benchmarks/bench_wan.py [--preset tiny] [--batch 2] [--iters 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from harness.diffusion.conventions import add_noise, flow_target
from harness.diffusion.kv_cache import KVCache
from harness.diffusion.sampling import NoiseSource, causal_rollout
from harness.diffusion.schedules import StepSchedule
from harness.worlds.base import VideoShape
from harness.worlds.wan.backbone import WanBackbone, build_wan_backbone
from harness.worlds.wan.block_causal import BACKENDS, resolve
from harness.worlds.wan.config import CAUSAL_ATTENTION

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Median milliseconds of ``fn`` after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def forward_figures(model: WanBackbone, x: torch.Tensor, cond: torch.Tensor, iters: int) -> dict[str, float]:
    fpc, device = model.frames_per_chunk, x.device
    t = torch.full(x.shape[:2], 500.0, device=device)
    cache = KVCache()
    with torch.no_grad():
        for start in range(0, x.shape[1] - fpc, fpc):
            model(x[:, start : start + fpc], 0.0, cond, kv_cache=cache, write_cache=True)
        last = x[:, -fpc:]

        def write() -> None:
            model(last, 0.0, cond, kv_cache=cache.copy(), write_cache=True)

        return {
            "forward bidirectional, whole video": timed(lambda: model(x, t, cond, causal=False), iters, device),
            "forward block-causal, whole video": timed(lambda: model(x, t, cond), iters, device),
            "forward last chunk vs cache (read)": timed(lambda: model(last, 500.0, cond, kv_cache=cache), iters, device),
            "forward last chunk vs cache (t=0 write)": timed(write, iters, device),
        }


def _gradients(model: WanBackbone, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> list[torch.Tensor]:
    """Forward + backward of the block-causal whole video; the parameter gradients (no optimizer step)."""
    model.zero_grad(set_to_none=True)
    model(x, t, cond).float().square().mean().backward()
    return [p.grad for p in model.parameters() if p.grad is not None]


def attention_figures(model: WanBackbone, x: torch.Tensor, cond: torch.Tensor, iters: int,
                      train: bool) -> dict[str, str]:
    device, original = x.device, model.config.causal_attention
    t = torch.full(x.shape[:2], 500.0, device=device)
    reference: dict[str, object] = {}
    out = {}
    for name in BACKENDS:  # dense first: the reference
        model.set_causal_attention(name)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            v = model(x, t, cond).float()
            forward = timed(lambda: model(x, t, cond), iters, device)
        reference.setdefault("v", v)
        parts = [f"forward {forward:8.1f} ms", f"max |Δv| vs dense {float((v - reference['v']).abs().max()):.1e}"]
        if train and not (name == "flex" and device.type == "cpu"):
            grads = _gradients(model, x, t, cond)
            reference.setdefault("grads", grads)
            worst = max(float((a.float() - b.float()).abs().max()) for a, b in zip(grads, reference["grads"]))
            step = timed(lambda: _gradients(model, x, t, cond), iters, device)
            parts[1:1] = [f"fwd+bwd {step:8.1f} ms"]
            parts.append(f"grads {worst:.1e}")
        elif train:
            parts[1:1] = ["fwd+bwd      n/a   "]  # torch has no FlexAttention backward on CPU
        if device.type == "cuda":
            parts.append(f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
        out[f"attention {name:>7}, whole video"] = ", ".join(parts)
    model.zero_grad(set_to_none=True)
    model.set_causal_attention(original)
    return out


def _step(model: WanBackbone, optimizer: torch.optim.Optimizer, x0: torch.Tensor, cond: torch.Tensor,
          cache: KVCache | None) -> None:
    noise = torch.randn_like(x0)
    sigma = torch.rand(x0.shape[:2], device=x0.device)
    v = model(add_noise(x0, noise, sigma), sigma * 1000, cond, kv_cache=cache)
    loss = (v.float() - flow_target(x0, noise).float()).square().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def training_figures(model: WanBackbone, x: torch.Tensor, cond: torch.Tensor, iters: int) -> dict[str, float]:
    fpc, device = model.frames_per_chunk, x.device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.0, 0.999))
    cache = KVCache()
    with torch.no_grad():
        for start in range(0, x.shape[1] - fpc, fpc):
            model(x[:, start : start + fpc], 0.0, cond, kv_cache=cache, write_cache=True)
    figures = {}
    for checkpointing in (False, True):
        (model.enable_gradient_checkpointing if checkpointing else model.disable_gradient_checkpointing)()
        label = " (checkpointed)" if checkpointing else ""
        figures[f"train step, whole video{label}"] = timed(lambda: _step(model, optimizer, x, cond, None), iters, device)
        figures[f"train step, last chunk vs cache{label}"] = timed(
            lambda: _step(model, optimizer, x[:, -fpc:], cond, cache), iters, device
        )
    model.disable_gradient_checkpointing()
    return figures


def generation_figures(model: WanBackbone, shape: VideoShape, cond: torch.Tensor, iters: int) -> dict[str, str]:
    device = cond.device
    out = {}
    with torch.no_grad():
        first_shape = VideoShape(shape.frames_per_chunk, shape.channels, shape.height, shape.width,
                                 shape.frames_per_chunk)
        for spec in ("1", "2", "4", "1*"):
            schedule = StepSchedule.from_spec(spec)
            total = timed(partial(causal_rollout, model, cond, shape, schedule, NoiseSource(0)), iters, device)
            first = timed(partial(causal_rollout, model, cond, first_shape, schedule, NoiseSource(0)), iters, device)
            fps = shape.frames * cond.shape[0] / (total / 1000)
            out[f"generate {schedule.label:>3} steps"] = (
                f"{total / shape.num_chunks:8.1f} ms/chunk, first chunk {first:8.1f} ms, {fps:8.1f} latent frames/s"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--attention", default="auto", choices=CAUSAL_ATTENTION,
                        help="block-causal attention backend of the other figures")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_wan_backbone(args.preset, causal_attention=args.attention).to(device, DTYPES[args.dtype])
    cfg = model.config
    shape = VideoShape(cfg.latent_frames, cfg.in_channels, cfg.latent_height, cfg.latent_width, cfg.frames_per_chunk)
    x = torch.randn(shape.tensor_shape(args.batch), device=device, dtype=DTYPES[args.dtype])
    cond = torch.randn(args.batch, cfg.text_len, cfg.text_dim, device=device, dtype=DTYPES[args.dtype])
    print(f"Wan backbone '{args.preset}': {model.num_parameters():,} parameters, batch {args.batch}, latents "
          f"{shape.frames}×{shape.height}×{shape.width} ({shape.num_chunks} chunks of {shape.frames_per_chunk}, "
          f"{cfg.tokens_per_frame()} tokens/frame), {args.device} {args.dtype}, torch threads {torch.get_num_threads()}, "
          f"attention {args.attention} ({resolve(args.attention, device)})")
    figures: dict[str, object] = {}
    model.eval()
    figures.update(forward_figures(model, x, cond, args.iters))
    figures.update(attention_figures(model, x, cond, args.iters, train=not args.skip_training))
    if not args.skip_training:
        model.train()
        figures.update(training_figures(model, x, cond, args.iters))
    model.eval()
    figures.update(generation_figures(model, shape, cond, max(1, args.iters // 3)))
    for name, value in figures.items():
        print(f"  {name:45s} {value:8.1f} ms" if isinstance(value, float) else f"  {name:45s} {value}")


if __name__ == "__main__":
    main()
