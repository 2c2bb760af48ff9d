"""Self Forcing: gradient only through the exit step, clean cached context, sampler == training rollout."""

from __future__ import annotations

import pytest
import torch

from harness.diffusion.kv_cache import KVCache
from harness.diffusion.sampling import NoiseSource, sample_causal
from harness.errors import CheckpointError, ConfigError
from harness.training.trainer import TrainSettings
from harness.worlds.toy import ToyWorld
from methods.self_forcing import SelfForcing
from tests.distill_helpers import distill_log

FAST = TrainSettings(
    steps=3, batch_size=2, critic_updates_per_generator=1, ema_start_step=0, checkpoint_every=3
)
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recipe(world: ToyWorld, **kwargs):
    return SelfForcing(train=FAST, **kwargs).build_recipe(world, world.teacher(), world.causal_init(), CPU)


def _record_forwards(model: torch.nn.Module) -> list[dict]:
    """Every forward of ``model``: its timestep, whether it wrote the cache, its output (grads captured)."""
    calls: list[dict] = []

    def hook(module, args, kwargs, output):
        call = {
            "t": float(torch.as_tensor(args[1]).flatten()[0]),
            "write": kwargs.get("write_cache", False),
            "requires_grad": output.requires_grad,
            "grad": None,
        }
        if output.requires_grad:
            output.register_hook(lambda grad, call=call: call.__setitem__("grad", grad))
        calls.append(call)

    model.register_forward_hook(hook, with_kwargs=True)
    return calls


def test_gradient_reaches_only_the_exit_step_forward():
    world = ToyWorld(frames=4)
    recipe = _recipe(world)
    recipe._exit_step = lambda noise: 2  # warped step list [1000, 937.5, 833.3, 625]: exit at 833.3
    calls = _record_forwards(recipe.generator)
    out = recipe.generator_step(0, NoiseSource(0))
    out.loss.backward()
    assert len(calls) == 2 * (3 + 1)  # 2 chunks × (3 denoising forwards + 1 cache pass)
    with_grad = [c for c in calls if c["requires_grad"]]
    assert len(with_grad) == 2
    assert all(abs(c["t"] - 2500 / 3) < 1e-3 and not c["write"] for c in with_grad)
    assert all(c["grad"] is not None and c["grad"].abs().sum() > 0 for c in with_grad)
    cache_passes = [c for c in calls if c["write"]]
    assert len(cache_passes) == 2 and all(c["t"] == 0.0 and not c["requires_grad"] for c in cache_passes)
    assert all(p.grad is not None for p in recipe.generator.final.parameters())


def test_the_cache_holds_the_clean_context_of_the_rolled_out_video():
    world = ToyWorld(frames=6)
    recipe = _recipe(world)
    cond = world.encode_prompts(["a red circle", "a blue square"])
    rollout = recipe.rollout(cond, recipe.training_schedule(4), NoiseSource(1), exit_step=1, grad=True)
    assert rollout.video.requires_grad and rollout.cache.num_frames == 6
    clean = KVCache()
    with torch.no_grad():
        recipe.generator(rollout.video.detach(), 0.0, cond, kv_cache=clean, write_cache=True)
    for layer in range(len(recipe.generator.blocks)):
        (k, v), (k_ref, v_ref) = rollout.cache.read(layer), clean.read(layer)
        assert not k.requires_grad and not v.requires_grad
        torch.testing.assert_close(k, k_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v, v_ref, rtol=1e-4, atol=1e-5)


def test_sampling_with_the_same_noise_reproduces_the_training_rollout():
    world = ToyWorld(frames=6)
    recipe = _recipe(world)
    prompts = ["a green triangle", "a red square moving up"]
    rollout = recipe.rollout(
        world.encode_prompts(prompts), recipe.training_schedule(4), NoiseSource(7), exit_step=1, grad=True
    )
    samples = sample_causal(world, recipe.generator, prompts, "2", seed=7)
    torch.testing.assert_close(samples.videos, rollout.video.detach())


def test_fixed_step_lists_of_the_retrained_baselines():
    world = ToyWorld(frames=4)
    two = _recipe(world, num_steps=2)
    noise = NoiseSource(0)
    assert {two._exit_step(noise) for _ in range(40)} == {0, 1}
    assert two.training_schedule(2).steps == (1000.0, 750.0)
    assert _recipe(world, num_steps=2, reading="skip").training_schedule(2).steps == (1000.0, 500.0)
    one = _recipe(world, num_steps=1)
    assert {one._exit_step(noise) for _ in range(10)} == {0}
    with pytest.raises(ConfigError, match="steps must be between 1 and 4"):
        SelfForcing(num_steps=5)


def test_same_seed_same_losses_for_three_iterations(tmp_path):
    world = ToyWorld(frames=4)
    _, first = distill_log(SelfForcing(train=FAST), world, tmp_path / "a", seed=1)
    _, second = distill_log(SelfForcing(train=FAST), world, tmp_path / "b", seed=1)
    assert len(first) == 3 and first == second
    assert all(
        {"generator/dmd", "generator/grad_norm", "critic/loss", "critic/grad_norm"} <= set(r) for r in first
    )


def test_exact_resume_gives_the_losses_of_an_uninterrupted_run(tmp_path):
    world = ToyWorld(frames=4)
    settings = {
        "batch_size": 2,
        "critic_updates_per_generator": 2,
        "ema_start_step": 1,
        "checkpoint_every": 3,
    }
    _, full = distill_log(SelfForcing(train=TrainSettings(steps=6, **settings)), world, tmp_path / "full")
    _, part = distill_log(SelfForcing(train=TrainSettings(steps=3, **settings)), world, tmp_path / "cut")
    generator, rest = distill_log(
        SelfForcing(train=TrainSettings(steps=6, **settings)), world, tmp_path / "cut"
    )
    assert [r["step"] for r in rest] == [3, 4, 5]
    assert part + rest == full
    uninterrupted, _ = distill_log(
        SelfForcing(train=TrainSettings(steps=6, **settings)), world, tmp_path / "full"
    )
    for (name, a), b in zip(generator.state_dict().items(), uninterrupted.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_resume_into_a_different_model_is_a_checkpoint_error(tmp_path):
    world = ToyWorld(frames=4)
    distill_log(SelfForcing(train=FAST), world, tmp_path)
    other = ToyWorld(frames=4, preset="default")
    with pytest.raises(CheckpointError, match="step-00000003.pt does not match"):
        distill_log(SelfForcing(train=TrainSettings(steps=4, batch_size=2)), other, tmp_path)
