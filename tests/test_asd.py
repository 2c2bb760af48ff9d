"""ASD: no gradient through the (n+1)-step branch, a discriminator that learns, presets, training."""

from __future__ import annotations

import pytest
import torch

from harness.diffusion.sampling import NoiseSource
from harness.errors import ConfigError
from harness.training.trainer import TrainSettings
from harness.worlds.toy import ToyWorld
from methods.asd import ASD, relativistic_loss
from methods.distribution_matching import ScoreTimesteps
from tests.distill_helpers import distill_log

FAST = TrainSettings(
    steps=3, batch_size=2, critic_updates_per_generator=1, ema_start_step=0, checkpoint_every=2
)
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recipe(world: ToyWorld, **kwargs):
    return ASD(train=FAST, **kwargs).build_recipe(world, world.teacher(), world.causal_init(), CPU)


def test_relativistic_loss_is_softplus_of_the_negative_gap():
    a, b = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.5])
    expected = torch.log1p(torch.exp(-(a - b))).mean()
    torch.testing.assert_close(relativistic_loss(a, b), expected)


def test_no_gradient_through_the_n_plus_1_step_branch():
    world = ToyWorld(frames=4)
    recipe = _recipe(world, n_choices=(2,))
    grad_forwards: list[float] = []

    def hook(module, args, output):
        if output.requires_grad:
            grad_forwards.append(float(torch.as_tensor(args[1]).flatten()[0]))

    recipe.generator.register_forward_hook(hook)
    recipe.critic.requires_grad_(False)  # as the trainer does during a generator update
    out = recipe.generator_step(0, NoiseSource(0))
    out.loss.backward()
    # n = 2 (prefix): warped [1000, 937.5]; only each chunk's exit forward of the 2-step rollout has a graph,
    # none of the 3-step rollout's 2 × 3 forwards does
    assert grad_forwards == [937.5, 937.5]
    assert out.metrics["n"] == 2.0 and {"dmd", "asd"} == set(out.terms)
    assert all(p.grad is None for p in recipe.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in recipe.generator.parameters())


def test_generator_loss_is_dmd_plus_alpha_times_asd():
    world = ToyWorld(frames=4)
    out = _recipe(world, alpha=7.0).generator_step(0, NoiseSource(2))
    torch.testing.assert_close(out.loss.detach(), out.terms["dmd"] + 7.0 * out.terms["asd"])


def test_alpha_zero_is_the_dmd_baseline_without_the_adversarial_branch():
    """At alpha = 0 neither step rolls out n + 1 steps nor runs D_n: one rollout per step."""
    world = ToyWorld(frames=4)
    recipe = _recipe(world, alpha=0.0, n_choices=(1,))
    exits: list[float] = []
    recipe.generator.register_forward_hook(lambda m, args, out: exits.append(float(torch.as_tensor(args[1]).flatten()[0])))
    head_calls: list[int] = []
    recipe.head.register_forward_hook(lambda *a: head_calls.append(1))
    gen = recipe.generator_step(0, NoiseSource(3))
    critic = recipe.critic_step(0, NoiseSource(4))
    assert set(gen.terms) == {"dmd"} and set(critic.terms) == {"flow"}
    torch.testing.assert_close(gen.loss.detach(), gen.terms["dmd"])
    # n = 1 on 2 chunks: per rollout one denoising forward and one cache pass per chunk, two rollouts
    assert len(exits) == 2 * 2 * 2 and head_calls == []


def test_the_discriminator_learns_to_separate_two_distinguishable_inputs():
    world = ToyWorld(frames=2)
    recipe = _recipe(world, n_choices=(1,), discriminator_timesteps=ScoreTimesteps(min_t=20.0, max_t=100.0))
    gen = torch.Generator().manual_seed(0)
    cond = world.encode_prompts(["a red circle"] * 8)
    optimiser = torch.optim.Adam(recipe.head.parameters(), lr=3e-3)
    noise = NoiseSource(0)
    first = None
    for _ in range(60):
        x_n = 0.5 * torch.randn(8, 2, 3, 16, 16, generator=gen)  # "n-step": centred
        x_next = 0.5 * torch.randn(8, 2, 3, 16, 16, generator=gen) + 1.0  # "(n+1)-step": shifted
        loss, _, metrics = recipe.discriminator_loss(x_n, x_next, cond, 1, noise)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        first = float(loss.detach()) if first is None else first
    assert abs(first - 0.6931) < 0.05  # starts near log 2: no preference
    assert float(loss.detach()) < 0.1 and metrics["logit_gap"] > 2.0
    assert all(p.grad is None for p in recipe.fake_score.parameters())  # backbone frozen by default


def test_r1_r2_penalties_join_the_discriminator_loss_when_weighted():
    world = ToyWorld(frames=2)
    cond = world.encode_prompts(["a red circle"] * 2)
    x_n, x_next = torch.zeros(2, 2, 3, 16, 16), torch.ones(2, 2, 3, 16, 16)
    plain, plain_terms, _ = _recipe(world).discriminator_loss(x_n, x_next, cond, 1, NoiseSource(0))
    loss, terms, _ = _recipe(world, r1_weight=2.0, r2_weight=3.0).discriminator_loss(
        x_n, x_next, cond, 1, NoiseSource(0)
    )
    assert set(plain_terms) == {"discriminator"} and {"r1", "r2"} <= set(terms)
    assert float(terms["r1"]) > 0 and float(terms["r2"]) > 0
    torch.testing.assert_close(loss.detach(), terms["discriminator"] + 1.0 * terms["r1"] + 1.5 * terms["r2"])
    torch.testing.assert_close(plain.detach(), plain_terms["discriminator"])


def test_same_seed_same_losses_for_three_iterations_with_logits_logged(tmp_path):
    world = ToyWorld(frames=4)
    _, first = distill_log(ASD(train=FAST), world, tmp_path / "a", seed=2)
    _, second = distill_log(ASD(train=FAST), world, tmp_path / "b", seed=2)
    assert len(first) == 3 and first == second
    logged = set(first[0])
    assert {
        "generator/dmd",
        "generator/asd",
        "generator/logit_n",
        "generator/logit_n_plus_1",
        "critic/flow",
        "critic/discriminator",
        "critic/logit_n",
        "critic/logit_n_plus_1",
        "generator/grad_norm",
        "critic/grad_norm",
    } <= logged


def test_exact_resume_gives_the_losses_of_an_uninterrupted_run(tmp_path):
    world = ToyWorld(frames=4)
    settings = {
        "batch_size": 2,
        "critic_updates_per_generator": 2,
        "ema_start_step": 0,
        "checkpoint_every": 2,
    }
    # the held-out diagnostics also run at a run's last step, which differs between the cut and the full run
    quiet = {"diagnostics_every": 0}
    _, full = distill_log(ASD(train=TrainSettings(steps=4, **settings), **quiet), world, tmp_path / "full")
    _, part = distill_log(ASD(train=TrainSettings(steps=2, **settings), **quiet), world, tmp_path / "cut")
    _, rest = distill_log(ASD(train=TrainSettings(steps=4, **settings), **quiet), world, tmp_path / "cut")
    assert part + rest == full


def test_asd_with_ffe_inference_samples_with_ffe():
    method = ASD(alpha=20.0, inference="ffe")  # what a study writes as {class_path: methods.asd.ASD, init_args: {...}}
    assert [method.schedule(n).label for n in (1, 2)] == ["1*", "2*"]
    assert ASD().schedule(1).label == "1"
    assert method.schedule("[1000,500]").first_steps is None  # an explicit spec is used as written
    world = ToyWorld(frames=14)
    samples = method.sample(world, world.causal_init(), ["a red circle"], 1, seed=0)
    assert samples.nfe == 17 and samples.schedule == "1*"


def test_open_choices_are_validated():
    with pytest.raises(ConfigError, match=r"asd.n_choices \[3, 4\] must lie in 1..3"):
        ASD(n_choices=(3, 4))
    with pytest.raises(ConfigError, match="inference 'fast' is unknown"):
        ASD(inference="fast")
    world = ToyWorld(frames=2)
    with pytest.raises(ConfigError, match="asd.feature_layers"):
        _recipe(world, feature_layers=(5,))
