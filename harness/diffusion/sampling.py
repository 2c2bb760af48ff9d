"""The one causal sampler: chunk by chunk with the KV cache, any step schedule (Self Forcing inference).

Per chunk the generator denoises fresh noise at the schedule's (warped) timesteps of that chunk: each step
predicts ``x̂0 = x_t − σ·v`` and, except at the last step, re-noises x̂0 to the next timestep — with fresh
noise (``sde``, Self Forcing's sampler, docs/references.md#self-forcings-rollout) or with the noise the
prediction implies (``ode``, which is exactly an Euler step of the flow ODE; the right choice for a
many-step diffusion-forcing model). The last step's x̂0 is the chunk. One extra forward at t = 0 on the
clean chunk then writes its keys/values to the cache, so NFE per chunk is steps + 1.

The same :func:`causal_rollout` serves training (Self Forcing / ASD): with ``exit_step`` the rollout
stops at that step of every chunk, steps before it run without gradient and only the exit forward
carries one; the cache is always written by a no-grad pass, so no gradient crosses chunks. Sampling
with the prefix schedule of ``exit_step + 1`` steps and the same noise reproduces a training rollout.

Noise is drawn on the CPU from a seeded ``torch.Generator`` (:class:`NoiseSource`) and moved to the
model's device, so a seed gives the same videos on any device. Each chunk draws from its own stream
(seeded from the rollout's source), so two rollouts from the same state share every chunk's initial
noise and the re-noise draws of the steps they have in common, whatever their step counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.diffusion.backbone import Backbone
from harness.diffusion.conventions import add_noise, noise_from_x0, sigma_from_timestep, x0_from_v
from harness.diffusion.kv_cache import KVCache
from harness.diffusion.schedules import StepSchedule
from harness.errors import ConfigError
from harness.evaluation.cosine import X0Trace
from harness.worlds.base import VideoShape


class NoiseSource:
    """Gaussian / uniform / integer draws from one CPU ``torch.Generator``; its state is checkpointable."""

    def __init__(self, seed: int | None = None, *, generator: torch.Generator | None = None) -> None:
        if generator is None:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(0 if seed is None else int(seed))
        self.generator = generator

    def normal(
        self, shape: Sequence[int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator, dtype=dtype).to(device)

    def uniform(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self.generator, dtype=torch.float64)

    def integer(self, low: int, high: int) -> int:
        """One integer in ``[low, high)``."""
        return int(torch.randint(low, high, (1,), generator=self.generator))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options))]

    def spawn(self) -> NoiseSource:
        """An independent source seeded from this one (a rollout's per-chunk streams)."""
        return NoiseSource(self.integer(0, 2**62))

    def take(self, batch: Any) -> Any:
        """This process's rows of a per-sample batch drawn at the global batch size: all of them here;
        a data-parallel rank keeps its shard (:class:`harness.parallel.data_parallel.ShardedNoise`)."""
        return batch

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def noise_source(seed: int | NoiseSource) -> NoiseSource:
    """A fresh source for an int seed; a given source (e.g. per-video streams) as it is."""
    return seed if isinstance(seed, NoiseSource) else NoiseSource(seed)


# ---------------------------------------------------------------------------------------------
# Re-noising x̂0 to the next timestep: a registry of named rules

Renoise = Callable[[torch.Tensor, torch.Tensor, float, float, NoiseSource], torch.Tensor]


def _renoise_sde(
    x0: torch.Tensor, x_t: torch.Tensor, sigma: float, sigma_next: float, noise: NoiseSource
) -> torch.Tensor:
    """Fresh noise: ``(1 − σ')·x̂0 + σ'·ε`` (Self Forcing's few-step sampler)."""
    return add_noise(x0, noise.normal(x0.shape, x0.device, x0.dtype), sigma_next)


def _renoise_ode(
    x0: torch.Tensor, x_t: torch.Tensor, sigma: float, sigma_next: float, noise: NoiseSource
) -> torch.Tensor:
    """The noise x_t and x̂0 imply; equals one Euler step ``x_t + (σ' − σ)·v``."""
    return add_noise(x0, noise_from_x0(x_t, x0, sigma), sigma_next)


RENOISE_RULES: dict[str, Renoise] = {"sde": _renoise_sde, "ode": _renoise_ode}


def renoise_rule(name: str) -> Renoise:
    if name not in RENOISE_RULES:
        raise ConfigError(f"renoise '{name}' is unknown; choose one of {sorted(RENOISE_RULES)}")
    return RENOISE_RULES[name]


# ---------------------------------------------------------------------------------------------
# The rollout


@dataclass
class Rollout:
    """A generated video [B, F, C, H, W], the forwards it cost, the cache of its clean context, the trace."""

    video: torch.Tensor
    nfe: int
    cache: KVCache
    trace: X0Trace | None = None


def predict_x0(
    model: Backbone,
    x_t: torch.Tensor,
    timestep: float | torch.Tensor,
    cond: torch.Tensor,
    *,
    kv_cache: KVCache | None = None,
    causal: bool = True,
) -> torch.Tensor:
    """The model's x̂0 for ``x_t`` at network timestep ``timestep`` (scalar, [B] or [B, F])."""
    v = model(x_t, timestep, cond, kv_cache=kv_cache, causal=causal)
    sigma = sigma_from_timestep(torch.as_tensor(timestep, dtype=torch.float64, device=x_t.device))
    return x0_from_v(x_t, v, sigma)


def write_context(model: Backbone, clean_chunk: torch.Tensor, cond: torch.Tensor, cache: KVCache) -> None:
    """The extra forward at t = 0 on a clean chunk that appends its keys/values to the cache (no gradient)."""
    with torch.no_grad():
        model(clean_chunk.detach(), 0.0, cond, kv_cache=cache, causal=True, write_cache=True)


def _denoise_chunk(
    model: Backbone,
    x: torch.Tensor,
    timesteps: list[float],
    exit_index: int,
    cond: torch.Tensor,
    cache: KVCache,
    noise: NoiseSource,
    renoise: Renoise,
    grad: bool,
    record: Callable[[torch.Tensor], None] | None,
) -> torch.Tensor:
    """Steps 0..exit_index of one chunk; only the exit forward may carry gradient."""
    for i in range(exit_index + 1):
        with torch.set_grad_enabled(grad and i == exit_index):
            x0 = predict_x0(model, x, timesteps[i], cond, kv_cache=cache)
        if record is not None:
            record(x0)
        if i < exit_index:
            sigma, sigma_next = (sigma_from_timestep(timesteps[j]) for j in (i, i + 1))
            x = renoise(x0.detach(), x, sigma, sigma_next, noise)
    return x0


def causal_rollout(
    model: Backbone,
    cond: torch.Tensor,
    shape: VideoShape,
    schedule: StepSchedule,
    noise: NoiseSource,
    *,
    exit_step: int | None = None,
    grad: bool = False,
    renoise: str = "sde",
    trace: bool = False,
) -> Rollout:
    """Generate ``cond.shape[0]`` videos chunk by chunk; see the module docstring for the contract.

    ``exit_step`` (0-based, shared by every chunk, clipped to a chunk's last step) stops each chunk early,
    as Self Forcing's stochastic truncation does; None runs every step of the schedule.
    """
    batch = cond.shape[0]
    device = next(model.parameters()).device
    rule = renoise_rule(renoise)
    cache, chunks, nfe = KVCache(), [], 0
    recorder = X0Trace(meta={"schedule": schedule.spec}) if trace else None
    chunk_noise = [noise.spawn() for _ in range(shape.num_chunks)]
    for c in range(shape.num_chunks):
        timesteps = schedule.timesteps_for_chunk(c)
        last = len(timesteps) - 1
        exit_index = last if exit_step is None else min(int(exit_step), last)
        x = chunk_noise[c].normal(
            (batch, shape.frames_per_chunk, shape.channels, shape.height, shape.width), device
        )
        record = (lambda x0, c=c: recorder.record(c, x0)) if recorder is not None else None
        x0 = _denoise_chunk(model, x, timesteps, exit_index, cond, cache, chunk_noise[c], rule, grad, record)
        write_context(model, x0, cond, cache)
        chunks.append(x0)
        nfe += exit_index + 2
    return Rollout(torch.cat(chunks, dim=1), nfe, cache, recorder)


# ---------------------------------------------------------------------------------------------
# Sampling entry point


def as_schedule(schedule: StepSchedule | str | int) -> StepSchedule:
    """Accept a schedule object or its spec (``4``, ``"2"``, ``"1*"``, ``"[1000,500]"``)."""
    return schedule if isinstance(schedule, StepSchedule) else StepSchedule.from_spec(schedule)


def dense_schedule(steps: int, *, shift: float = 5.0) -> StepSchedule:
    """A uniform many-step list (``1000·(1 − k/steps)``), e.g. 30 steps for a diffusion-forcing model."""
    if steps < 1:
        raise ConfigError(f"dense schedule needs at least 1 step, got {steps}")
    return StepSchedule(tuple(1000.0 * (1 - k / steps) for k in range(steps)), None, shift, f"dense{steps}")


@dataclass
class Samples:
    """Generated videos in backbone space, with their cost and, on request, the x̂0 trace."""

    videos: torch.Tensor  # [B, F, C, H, W]
    nfe: int  # network evaluations per video (steps + one cache pass per chunk)
    schedule: str  # the schedule's label: "4", "2", "1*", ...
    trace: X0Trace | None = None  # on request


def sample_causal(
    world: Any,
    generator: Backbone,
    prompts: list[str],
    schedule: StepSchedule | str | int,
    seed: int | NoiseSource,
    *,
    trace: bool = False,
    renoise: str = "sde",
) -> Samples:
    """Videos for ``prompts`` with the shared sampler; returns :class:`Samples`.

    ``seed`` is an int, or a :class:`NoiseSource` whose draws are one row per prompt (per-video noise)."""
    schedule = as_schedule(schedule)
    shape = world.video_shape
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            cond = world.encode_prompts(prompts).to(device)
            result = causal_rollout(
                generator, cond, shape, schedule, noise_source(seed), renoise=renoise, trace=trace
            )
    finally:
        generator.train(was_training)
    expected = schedule.nfe(shape.num_chunks)
    if result.nfe != expected:
        raise RuntimeError(f"sampler ran {result.nfe} forwards, schedule {schedule} promises {expected}")
    if result.trace is not None:
        result.trace.meta.update(prompts=list(prompts), seed=seed if isinstance(seed, int) else str(seed))
    return Samples(videos=result.video, nfe=result.nfe, schedule=schedule.label, trace=result.trace)
