"""DMD: the loss formula and its gradient, the 1-D Gaussian sanity check, CausVid-style inputs, training."""

from __future__ import annotations

import pytest
import torch

from harness.diffusion.sampling import NoiseSource, predict_x0
from harness.errors import ConfigError, TrainingDiverged
from harness.training.context import TrainContext
from harness.training.trainer import TrainSettings
from harness.worlds.toy import ToyWorld
from methods.dmd import DMD, dmd_loss
from tests.distill_helpers import distill_log

FAST = TrainSettings(
    steps=3, batch_size=2, critic_updates_per_generator=1, ema_start_step=0, checkpoint_every=2
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dmd_loss_equals_the_formula_and_its_gradient_is_g_over_numel():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 2, 5, 5, generator=gen, requires_grad=True)
    real, fake = torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen)
    norm = (x.detach() - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True)
    g = (fake - real) / norm
    expected = 0.5 * ((x.detach() - (x.detach() - g)) ** 2).mean()
    loss = dmd_loss(x, real, fake)
    loss.backward()
    assert loss.shape == ()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(x.grad, g / x.numel())


def _posterior_mean(x_t: torch.Tensor, sigma: float, mean: torch.Tensor | float, std: torch.Tensor | float):
    """E[x0 | x_t] for x0 ~ N(mean, std²) and x_t = (1 − σ)·x0 + σ·ε: the exact x̂0 of a Gaussian."""
    a = 1.0 - sigma
    return mean + a * std**2 / (a * a * std**2 + sigma**2) * (x_t - a * mean)


def test_dmd_updates_move_1d_samples_toward_the_real_gaussian():
    gen = torch.Generator().manual_seed(0)
    n = 2000
    x = (-1.0 + 0.5 * torch.randn(1, n, generator=gen)).requires_grad_(True)
    optimiser = torch.optim.SGD([x], lr=0.02 * n)  # dmd_loss's gradient is g / numel
    for _ in range(300):
        sigma = float(0.05 + 0.9 * torch.rand(1, generator=gen))
        x_t = (1 - sigma) * x.detach() + sigma * torch.randn(1, n, generator=gen)
        real = _posterior_mean(x_t, sigma, 2.0, 1.0)
        fake = _posterior_mean(x_t, sigma, x.detach().mean(), x.detach().std())
        optimiser.zero_grad()
        dmd_loss(x, real, fake).backward()
        optimiser.step()
    x = x.detach()
    assert abs(float(x.mean()) - 2.0) < 0.15  # started at -1
    assert abs(float(x.std()) - 1.0) < 0.1  # started at 0.5


def test_student_inputs_are_noised_real_chunks_with_clean_teacher_forced_context(tmp_path):
    world = ToyWorld(frames=4)
    recipe = DMD(train=FAST).build_recipe(world, world.teacher(), world.causal_init(), torch.device("cpu"))
    real, _ = world.real_videos(2, seed=0)
    noisy = real + torch.randn(real.shape)
    chunk_t = torch.tensor([[1000.0, 625.0], [937.5, 833.0]])
    cond = world.encode_prompts(["a red circle", "a blue square"])
    with torch.no_grad():
        x0 = recipe._teacher_forced(noisy, real, chunk_t, cond)
        # chunk 1 against clean real chunk 0 == one block-causal forward over
        # [real chunk 0 at t = 0, noisy chunk 1]
        joint = torch.cat([real[:, :2], noisy[:, 2:]], dim=1)
        frame_t = torch.cat([torch.zeros(2, 2), chunk_t[:, 1:].repeat(1, 2)], dim=1)
        expected = predict_x0(recipe.generator, joint, frame_t, cond)[:, 2:]
    torch.testing.assert_close(x0[:, 2:], expected, rtol=1e-4, atol=1e-5)


def test_critic_starts_as_the_teacher_and_the_teacher_stays_frozen(tmp_path):
    world = ToyWorld(frames=4)
    teacher = world.teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    recipe = DMD(train=FAST).build_recipe(world, teacher, world.causal_init(), torch.device("cpu"))
    for key, value in recipe.critic.state_dict().items():
        assert torch.equal(value, before[key])
    _, rows = distill_log(DMD(train=FAST), world, tmp_path, seed=0)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert {"generator/dmd", "generator/grad_norm", "critic/flow", "critic/grad_norm"} <= set(rows[0])


def test_same_seed_same_losses_for_three_iterations(tmp_path):
    world = ToyWorld(frames=4)
    _, first = distill_log(DMD(train=FAST), world, tmp_path / "a", seed=3)
    _, second = distill_log(DMD(train=FAST), world, tmp_path / "b", seed=3)
    _, other = distill_log(DMD(train=FAST), world, tmp_path / "c", seed=4)
    assert [r["step"] for r in first] == [0, 1, 2]
    assert first == second
    assert first[0]["critic/flow"] != other[0]["critic/flow"]


def test_noisy_context_variant_and_bad_config():
    assert DMD(context="noisy").context == "noisy"
    with pytest.raises(ConfigError, match="dmd context 'dirty'"):
        DMD(context="dirty")
    with pytest.raises(ConfigError, match="steps must be between 1 and 4"):
        DMD(num_steps=5)


def test_a_nan_critic_stops_training_naming_step_and_term(tmp_path):
    world = ToyWorld(frames=4)
    teacher = world.teacher()
    with torch.no_grad():
        teacher.final.proj.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 0: critic loss is nan"):
        DMD(train=FAST).distill(
            world,
            teacher,
            world.causal_init(),
            TrainContext(workdir=tmp_path, seed=0, log=lambda metrics, step: None),
        )


def test_noise_source_state_round_trips():
    source = NoiseSource(9)
    state = source.get_state()
    first = source.normal((3,))
    source.set_state(state)
    assert torch.equal(first, source.normal((3,)))
