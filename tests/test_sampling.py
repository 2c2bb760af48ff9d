"""The shared causal sampler: NFE and FFE bookkeeping, the x̂0 / re-noise rule, determinism, the trace."""

from __future__ import annotations

import pytest
import torch

from harness.diffusion.conventions import add_noise, x0_from_v
from harness.diffusion.sampling import NoiseSource, causal_rollout, dense_schedule, sample_causal
from harness.diffusion.schedules import StepSchedule
from harness.errors import ConfigError
from harness.evaluation.cosine import cosine_similarity_matrices
from harness.worlds.toy import ToyWorld

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world7() -> ToyWorld:
    return ToyWorld(frames=14)  # 7 chunks of 2 frames, as the paper's 7 chunks of 3 latent frames


@pytest.mark.parametrize(
    "spec, steps, nfe",
    [
        ("1", [1] * 7, 14),
        ("2", [2] * 7, 21),
        ("4", [4] * 7, 35),
        ("1*", [4] + [1] * 6, 17),
        ("2*", [4] + [2] * 6, 23),
    ],
)
def test_steps_per_chunk_and_nfe_for_seven_chunks(world7, spec, steps, nfe):
    generator = world7.causal_init()
    samples = sample_causal(world7, generator, ["a red circle"], spec, seed=0, trace=True)
    assert samples.trace.steps_per_chunk == steps
    assert samples.nfe == nfe == StepSchedule.from_spec(spec).nfe(7)
    assert samples.schedule == spec
    assert samples.videos.shape == (1, 14, 3, 16, 16)


def test_one_step_chunk_is_x0_of_the_chunk_noise_and_the_trace_ends_at_the_output():
    world = ToyWorld(frames=4)
    generator, prompts = world.causal_init(), ["a blue square", "a red circle"]
    samples = sample_causal(world, generator, prompts, "1", seed=5, trace=True)
    # recompute chunk 0 by hand: its noise comes from the first per-chunk stream of NoiseSource(5)
    chunk_seed = NoiseSource(5).integer(0, 2**62)
    x_t = NoiseSource(chunk_seed).normal((2, 2, 3, 16, 16))
    with torch.no_grad():
        v = generator(x_t, 1000.0, world.encode_prompts(prompts))
    torch.testing.assert_close(samples.videos[:, :2], x0_from_v(x_t, v, 1.0))
    torch.testing.assert_close(samples.trace.chunks[1][-1], samples.videos[:, 2:])


def test_sde_renoises_with_fresh_noise_and_ode_is_an_euler_step():
    world = ToyWorld(frames=2)
    generator, cond = world.causal_init(), world.encode_prompts(["a green triangle"])
    schedule = StepSchedule.uniform(2)  # warped [1000, 937.5]
    t0, t1 = schedule.timesteps_for_chunk(0)
    for rule in ("sde", "ode"):
        with torch.no_grad():
            out = causal_rollout(
                generator, cond, world.video_shape, schedule, NoiseSource(3), renoise=rule
            ).video
            stream = NoiseSource(NoiseSource(3).integer(0, 2**62))
            x_t = stream.normal((1, 2, 3, 16, 16))
            v = generator(x_t, t0, cond)
            x0 = x0_from_v(x_t, v, t0 / 1000)
            if rule == "sde":
                x_next = add_noise(x0, stream.normal(x0.shape), t1 / 1000)
            else:
                x_next = x_t + (t1 - t0) / 1000 * v
            expected = x0_from_v(x_next, generator(x_next, t1, cond), t1 / 1000)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_same_seed_same_videos_other_seed_other_videos():
    world = ToyWorld(frames=4)
    generator = world.causal_init()
    a = sample_causal(world, generator, ["a red circle"], "2*", seed=11).videos
    b = sample_causal(world, generator, ["a red circle"], "2*", seed=11).videos
    c = sample_causal(world, generator, ["a red circle"], "2*", seed=12).videos
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1


def test_dense_schedule_for_a_diffusion_forcing_model_and_cosine_trace():
    world = ToyWorld(frames=4)
    generator = world.causal_init()
    schedule = dense_schedule(30)
    assert schedule.timesteps_for_chunk(0)[0] == 1000.0 and len(schedule.steps) == 30
    samples = sample_causal(world, generator, ["a red circle"], schedule, seed=0, trace=True, renoise="ode")
    assert samples.nfe == 2 * 31
    analysis = cosine_similarity_matrices(samples.trace)
    chunk0 = analysis.chunks()[0].mean
    assert chunk0.shape == (30, 30)
    assert abs(chunk0[0, 0] - 1.0) < 1e-9 and abs(chunk0[29, 29] - 1.0) < 1e-9
    assert samples.trace.meta["seed"] == 0 and samples.trace.meta["prompts"] == ["a red circle"]


def test_sampler_leaves_training_mode_and_grad_off():
    world = ToyWorld(frames=2)
    generator = world.causal_init().train()
    samples = sample_causal(world, generator, ["a red circle"], 1, seed=0)
    assert generator.training and not samples.videos.requires_grad


def test_unknown_renoise_rule_is_a_config_error():
    world = ToyWorld(frames=2)
    with pytest.raises(ConfigError, match="renoise 'euler' is unknown"):
        sample_causal(world, world.causal_init(), ["a red circle"], 1, seed=0, renoise="euler")
