"""ASD's knobs from issue 19: D's own optimiser group, warm-up and ramp of α, Ψ's noise levels, α from a
target gradient ratio, no wasted n+1 rollouts, and the held-out diagnostics of D."""

from __future__ import annotations

import pytest
import torch

from harness.diffusion.sampling import NoiseSource
from harness.errors import ConfigError
from harness.training.context import TrainContext
from harness.training.trainer import Trainer, TrainSettings
from harness.worlds.toy import ToyWorld
from methods.asd import ASD
from methods.asd_calibration import AlphaCalibration, alpha_scale, gradient_ratio
from methods.asd_diagnostics import HeldOutPairs, feature_ratio, separation
from methods.distribution_matching import NoisedSample, ScoreTimesteps
from tests.distill_helpers import distill_log

FAST = TrainSettings(steps=3, batch_size=2, critic_updates_per_generator=1, ema_start_step=0, checkpoint_every=2)
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recipe(world: ToyWorld, train: TrainSettings = FAST, **kwargs):
    torch.manual_seed(0)  # the head's initialisation
    return ASD(train=train, **kwargs).build_recipe(world, world.teacher(), world.causal_init(), CPU)


def _grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


# -- warm-up and ramp ----------------------------------------------------------------------------------
def test_alpha_scale_is_zero_in_the_warm_up_then_a_linear_ramp():
    assert [alpha_scale(s, warmup=2, ramp=4) for s in range(7)] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert alpha_scale(0, warmup=0, ramp=0) == 1.0 and alpha_scale(4, warmup=5, ramp=0) == 0.0


def test_warm_up_leaves_the_generator_without_asd_gradient_for_w_steps():
    """Within the warm-up the generator step is exactly the DMD baseline's (loss and gradient); after it, not."""
    world = ToyWorld(frames=4)
    warm = _recipe(world, n_choices=(1,), warmup_steps=3, ratio_every=0)
    base = _recipe(world, n_choices=(1,), alpha=0.0)
    for step in range(3):
        out_w, out_b = warm.generator_step(step, NoiseSource(step)), base.generator_step(step, NoiseSource(step))
        out_w.loss.backward()
        out_b.loss.backward()
        assert out_w.metrics["alpha"] == 0.0 and set(out_w.terms) == {"dmd"}
        torch.testing.assert_close(out_w.loss, out_b.loss)
        for a, b in zip(_grads(warm.generator), _grads(base.generator), strict=True):
            torch.testing.assert_close(a, b)
        warm.generator.zero_grad(set_to_none=True)
        base.generator.zero_grad(set_to_none=True)
    after = warm.generator_step(3, NoiseSource(3))
    assert after.metrics["alpha"] == 10.0 and float(after.terms["asd"]) > 0
    torch.testing.assert_close(after.loss.detach(), after.terms["dmd"] + 10.0 * after.terms["asd"])


def test_the_logged_alpha_follows_warm_up_and_ramp_in_training(tmp_path):
    world = ToyWorld(frames=4)
    train = TrainSettings(steps=6, batch_size=2, critic_updates_per_generator=1, ema_start_step=0, checkpoint_every=6)
    method = ASD(train=train, alpha=4.0, warmup_steps=2, alpha_ramp_steps=2, diagnostics_every=0, ratio_every=0)
    _, rows = distill_log(method, world, tmp_path)
    assert [row["generator/alpha"] for row in rows] == [0.0, 0.0, 2.0, 4.0, 4.0, 4.0]
    assert "critic/discriminator" in rows[0]  # D trains during the warm-up


# -- D's own optimiser group -------------------------------------------------------------------------
def _one_critic_update(tmp_path, lr: float) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.optim.Optimizer]:
    world = ToyWorld(frames=2)
    recipe = _recipe(world, n_choices=(1,), discriminator_lr=lr, discriminator_betas=(0.5, 0.9))
    trainer = Trainer(FAST, TrainContext(workdir=tmp_path, seed=0, log=lambda *a: None))
    optimiser = trainer._critic_optimiser(recipe)
    before = [p.detach().clone() for p in recipe.critic.parameters()]
    recipe.critic_step(0, NoiseSource(5)).loss.backward()
    optimiser.step()
    moved = [(p.detach() - b).abs() for p, b in zip(recipe.critic.parameters(), before, strict=True)]
    head = [m for m, p in zip(moved, recipe.critic.parameters(), strict=True) if any(p is q for q in recipe.head.parameters())]
    fake = [m for m, p in zip(moved, recipe.critic.parameters(), strict=True) if any(p is q for q in recipe.fake_score.parameters())]
    return head, fake, optimiser


def test_the_discriminator_lr_moves_only_the_heads_group(tmp_path):
    head_fast, fake_fast, optimiser = _one_critic_update(tmp_path / "a", 1e-2)
    head_slow, fake_slow, _ = _one_critic_update(tmp_path / "b", 1e-4)
    assert [g["lr"] for g in optimiser.param_groups] == [FAST.lr_critic, 1e-2]
    assert [tuple(g["betas"]) for g in optimiser.param_groups] == [tuple(FAST.betas), (0.5, 0.9)]
    # Adam's first step moves each weight with a gradient by about lr
    assert max(float(m.max()) for m in head_fast) == pytest.approx(1e-2, rel=0.1)
    assert max(float(m.max()) for m in head_slow) == pytest.approx(1e-4, rel=0.1)
    assert max(float(m.max()) for m in fake_fast) == pytest.approx(FAST.lr_critic, rel=0.1)
    for a, b in zip(fake_fast, fake_slow, strict=True):
        torch.testing.assert_close(a, b)


def test_without_a_discriminator_lr_the_critic_keeps_one_learning_rate(tmp_path):
    world = ToyWorld(frames=2)
    recipe = _recipe(world, n_choices=(1,))
    optimiser = Trainer(FAST, TrainContext(workdir=tmp_path, seed=0, log=lambda *a: None))._critic_optimiser(recipe)
    assert {g["lr"] for g in optimiser.param_groups} == {FAST.lr_critic}
    assert sum(len(g["params"]) for g in optimiser.param_groups) == len(list(recipe.critic.parameters()))


@pytest.mark.parametrize("train_backbone", [False, True])
def test_both_readings_of_the_shared_backbone(train_backbone):
    world = ToyWorld(frames=2)
    recipe = _recipe(world, train_backbone_with_discriminator=train_backbone)
    cond = world.encode_prompts(["a red circle"] * 2)
    x_n, x_next = torch.zeros(2, 2, 3, 16, 16), torch.ones(2, 2, 3, 16, 16)
    loss, _, _ = recipe.discriminator_loss(x_n, x_next, cond, 1, NoiseSource(0))
    loss.backward()
    backbone = [p.grad for p in recipe.fake_score.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert bool(backbone) is train_backbone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in recipe.head.parameters())


# -- Ψ -------------------------------------------------------------------------------------------------
def test_shared_noise_levels_are_equal_in_both_branches_and_the_range_holds():
    world = ToyWorld(frames=2)
    x = torch.zeros(64, 2, 3, 16, 16)
    narrow = ScoreTimesteps(shift=1.0, min_t=20.0, max_t=500.0)
    shared = _recipe(world, same_noise_level=True, discriminator_timesteps=narrow)
    psi_n, psi_next = shared._psi(x, x + 1, NoiseSource(0))
    torch.testing.assert_close(psi_n.timestep, psi_next.timestep)
    assert not torch.equal(psi_n.noise, psi_next.noise)  # ε stays independent
    assert float(psi_n.timestep.max()) <= 500.0 and float(psi_n.timestep.min()) >= 20.0
    psi_n, psi_next = _recipe(world, discriminator_timesteps=narrow)._psi(x, x + 1, NoiseSource(0))
    assert float((psi_n.timestep != psi_next.timestep).double().mean()) > 0.5  # clamped draws may meet at 500
    # clamping puts every draw above the range on max_t; truncating spreads them inside it
    clamped = narrow.sample(4000, NoiseSource(1))
    truncated = ScoreTimesteps(shift=1.0, min_t=20.0, max_t=500.0, truncate=True).sample(4000, NoiseSource(1))
    assert float((clamped == 500.0).double().mean()) == pytest.approx(0.5, abs=0.03)
    assert float((truncated == 500.0).double().mean()) < 0.01 and float(truncated.min()) >= 20.0
    assert float(truncated.max()) <= 500.0 and float(truncated.mean()) == pytest.approx(260.0, abs=10.0)
    shifted = ScoreTimesteps(shift=5.0, min_t=20.0, max_t=500.0, truncate=True).sample(4000, NoiseSource(1))
    assert float(shifted.max()) <= 500.0 and float(shifted.mean()) > 260.0  # the shift still leans to noise
    # the default Ψ (shift 5) puts most of D's inputs at sigma > 0.8
    default = ScoreTimesteps().sample(4000, NoiseSource(0))
    assert float((default > 800).double().mean()) == pytest.approx(0.56, abs=0.03)


# -- no wasted rollouts --------------------------------------------------------------------------------
def test_the_n_plus_1_branch_is_rolled_out_only_where_d_updates():
    world = ToyWorld(frames=4)  # 2 chunks
    recipe = _recipe(world, n_choices=(1,), discriminator_interval=2, diagnostics_every=0)
    forwards: list[int] = []
    recipe.generator.register_forward_hook(lambda *a: forwards.append(1))
    heads: list[int] = []
    recipe.head.register_forward_hook(lambda *a: heads.append(1))
    recipe.critic_step(1, NoiseSource(0))
    assert len(forwards) == 2 * 2 and heads == []  # 1 step + 1 cache pass per chunk; no D
    forwards.clear()
    out = recipe.critic_step(2, NoiseSource(0))
    assert len(forwards) == 2 * 2 + 2 * 3 and heads and "discriminator" in out.terms


# -- α from a target ratio -----------------------------------------------------------------------------
def test_alpha_from_ratio_hits_its_ratio_on_a_smoke_model():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    dmd = (param * torch.tensor([0.3, 0.1, -0.2])).sum()
    adversarial = (param * torch.tensor([4.0, 0.0, 3.0])).sum()
    calibration = AlphaCalibration(num_logits=3, alpha=10.0, target_ratio=0.25)
    assert not calibration.known(2)
    ratio = calibration.update(2, *gradient_ratio(dmd, adversarial, [param]))
    alpha = calibration.value(2)
    (g_dmd,) = torch.autograd.grad(dmd, param, retain_graph=True)
    (g_adv,) = torch.autograd.grad(alpha * adversarial, param)
    assert ratio == pytest.approx(0.25) and float(g_adv.norm() / g_dmd.norm()) == pytest.approx(0.25)
    assert alpha == pytest.approx(0.25 * (0.14**0.5) / 5.0) and calibration.known(2) and not calibration.known(1)
    fixed = AlphaCalibration(num_logits=3, alpha=10.0, target_ratio=0.0)
    assert fixed.update(1, 2.0, 1.0) == pytest.approx(5.0) and fixed.value(1) == 10.0


def test_alpha_from_ratio_on_the_generator_measures_before_it_pushes(tmp_path):
    world = ToyWorld(frames=4)
    recipe = _recipe(world, n_choices=(1,), target_ratio=0.3, ratio_every=0)
    out = recipe.generator_step(0, NoiseSource(1))
    alpha = recipe.calibration.value(1)
    assert out.metrics["grad_ratio_n1"] == pytest.approx(0.3) and alpha > 0 and out.metrics["alpha"] == alpha
    torch.testing.assert_close(out.loss.detach(), out.terms["dmd"] + alpha * out.terms["asd"], rtol=1e-5, atol=1e-7)
    later = recipe.generator_step(1, NoiseSource(2))  # α_1 is known: no measurement without ratio_every
    assert "grad_ratio_n1" not in later.metrics and later.metrics["alpha"] == alpha


def test_the_gradient_ratio_is_logged_per_n_at_the_fixed_alpha(tmp_path):
    world = ToyWorld(frames=4)
    train = TrainSettings(steps=4, batch_size=2, critic_updates_per_generator=1, ema_start_step=0, checkpoint_every=4)
    _, rows = distill_log(ASD(train=train, n_choices=(1, 2), ratio_every=2, diagnostics_every=0), world, tmp_path)
    logged = [(row["step"], key) for row in rows for key in row if key.startswith("generator/grad_ratio_n")]
    assert [step for step, _ in logged] == [0, 2]
    assert all(rows[step][key] > 0 for step, key in logged)


# -- held-out diagnostics ------------------------------------------------------------------------------
class _MeanHead:
    """A constructed D: logit = the mean of its input, features = the input itself."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def inspect(self, x_t, t, cond, n):
        flat = x_t.flatten(1)
        return self.sign * flat.mean(1), flat, flat


def _measure(head, shift: float) -> dict[str, float]:
    def make_pair(cond, n, noise):
        x = noise.normal((cond.shape[0], 8))
        return x, noise.normal((cond.shape[0], 8)) + shift

    def psi(a, b, noise):
        zeros = torch.zeros(a.shape[0])
        return NoisedSample(a, a, zeros), NoisedSample(b, b, zeros)

    pairs = HeldOutPairs(["p"], pairs=32, seed=3)
    return pairs.measure(lambda prompts: torch.zeros(len(prompts), 1), make_pair, psi, head, (1, 2))


def test_a_head_that_separates_perfectly_reads_accuracy_one():
    out = _measure(_MeanHead(), shift=5.0)
    assert out["heldout_acc_n1"] == 1.0 and out["heldout_acc_n2"] == 1.0 and out["heldout_acc_min"] == 1.0
    assert out["heldout_gap_n1"] == pytest.approx(5.0, abs=0.3)
    assert out["feat_ratio_n1"] > 10 * out["feat_null_n1"]
    reversed_head = _measure(_MeanHead(sign=-1.0), shift=5.0)
    assert reversed_head["heldout_acc_n1"] == 0.0 and reversed_head["heldout_gap_n1"] < 0


def test_indistinguishable_branches_read_chance_and_the_null_feature_ratio():
    out = _measure(_MeanHead(), shift=0.0)
    assert 0.3 < out["heldout_acc_n1"] < 0.7
    assert out["feat_ratio_n1"] == pytest.approx(out["feat_null_n1"], abs=0.3)


def test_separation_and_feature_ratio_values():
    assert separation(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 1.0])) == (0.5, 0.0)
    a, b = torch.tensor([[0.0], [2.0]]), torch.tensor([[4.0], [6.0]])
    assert feature_ratio(a, b) == pytest.approx(4.0)  # means 1 and 5, spread 1 in each branch


def test_diagnostics_are_logged_while_training_and_change_nothing_else(tmp_path):
    world = ToyWorld(frames=4)
    on = ASD(train=FAST, n_choices=(1, 2), diagnostic_pairs=4, diagnostics_every=2)
    off = ASD(train=FAST, n_choices=(1, 2), diagnostics_every=0)
    _, with_rows = distill_log(on, world, tmp_path / "on")
    _, without = distill_log(off, world, tmp_path / "off")
    steps = [row["step"] for row in with_rows if "critic/heldout_acc_min" in row]
    assert steps == [0, 2]  # every 2 updates and the last step
    keys = {f"critic/{k}_n{n}" for k in ("heldout_acc", "heldout_gap", "feat_ratio", "feat_null", "readout_ratio")
            for n in (1, 2)}
    assert keys <= set(with_rows[0]) and 0.0 <= with_rows[0]["critic/heldout_acc_n1"] <= 1.0
    strip = [{k: v for k, v in row.items() if k.split("/")[-1].rsplit("_n", 1)[0] not in
              {"heldout_acc", "heldout_gap", "feat_ratio", "feat_null", "readout_ratio"} and k != "critic/heldout_acc_min"}
             for row in with_rows]
    assert strip == without


def test_new_options_are_validated():
    with pytest.raises(ConfigError, match=r"asd.warmup_steps must be >= 0, got -1"):
        ASD(warmup_steps=-1)
    with pytest.raises(ConfigError, match=r"asd.alpha_ramp_steps must be >= 0"):
        ASD(alpha_ramp_steps=-3)
    with pytest.raises(ConfigError, match=r"asd.discriminator_lr must be > 0"):
        ASD(discriminator_lr=0.0)
    with pytest.raises(ConfigError, match=r"asd.discriminator_betas must be two numbers in \[0, 1\)"):
        ASD(discriminator_betas=(0.9, 1.0))
    with pytest.raises(ConfigError, match=r"asd.target_ratio must be >= 0"):
        ASD(target_ratio=-0.5)
    with pytest.raises(ConfigError, match=r"asd.diagnostic_pairs must be >= 2"):
        ASD(diagnostic_pairs=1)


# -- the sweep's constraint on D's held-out accuracy -----------------------------------------------------
def test_sweep_constraints_read_the_last_logged_value_mean_over_seeds(tmp_path):
    import json

    from harness.sweep.constraints import INFEASIBLE, constraint_values

    folders = []
    for seed, last in enumerate((0.7, 0.6)):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        rows = [{"step": 0, "critic/heldout_acc_min": 0.5}, {"step": 5, "critic/flow": 1.0},
                {"step": 9, "critic/heldout_acc_min": last}]
        (folder / "distill_metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        folders.append(folder)
    values = constraint_values({"critic/heldout_acc_min": 0.6, "critic/missing": 0.0}, folders)
    assert values[0] == pytest.approx(0.6 - 0.65) and values[1] == INFEASIBLE
