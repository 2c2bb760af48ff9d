"""The shared training pieces: one EMA for every trainer, the one-model fit loop.

The EMA is checked bit for bit against the two averages it replaced (the teacher's warm-up average of
parameters, the methods' average of the state from a start step), written out here as plain loops.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from harness.errors import TrainingDiverged
from harness.training.ema import EMA
from harness.training.fit import fit
from harness.worlds.sprites.backbone import build_sprites_dit
from harness.worlds.sprites.teacher import FlowRecipe


def _perturbed(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))


def test_the_warm_up_average_matches_the_teacher_s_former_one_bit_for_bit():
    model = build_sprites_dit("smoke")
    reference = copy.deepcopy(model).requires_grad_(False)
    ema = EMA(0.995, warmup=True).track(model)
    for step in range(5):
        _perturbed(model, step)
        with torch.no_grad():  # the former average: each parameter lerped with the warmed-up decay
            d = min(0.995, (1 + step) / (10 + step))
            for avg, p in zip(reference.parameters(), model.parameters(), strict=True):
                avg.lerp_(p, 1 - d)
        ema.update(model, step)
    for name, value in reference.state_dict().items():
        assert torch.equal(ema.shadow[name], value), name


def test_the_start_step_average_matches_the_methods_former_one_bit_for_bit():
    model = build_sprites_dit("smoke")
    shadow: dict[str, torch.Tensor] = {}
    ema = EMA(0.99, start_step=2)
    for step in range(6):
        _perturbed(model, step)
        ema.update(model, step)
        if step < 2:
            continue
        state = model.state_dict()
        if not shadow:  # the former average: a copy at the start step, then a lerp per tensor
            shadow = {k: v.detach().clone() for k, v in state.items()}
            continue
        for key, value in state.items():
            shadow[key].lerp_(value, 1.0 - 0.99)
    assert ema.shadow.keys() == shadow.keys()
    assert all(torch.equal(ema.shadow[k], shadow[k]) for k in shadow)


def test_no_average_before_the_start_step_and_the_model_itself_until_then():
    model = nn.Linear(2, 2)
    ema = EMA(0.9, start_step=3)
    ema.update(model, 2)
    assert ema.shadow == {} and ema.averaged(model) is model


def test_fit_trains_the_model_and_returns_its_average():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(32, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    recipe = FlowRecipe(steps=60, lr=0.1, warmup=5, weight_decay=0.0, grad_clip=100.0, ema_decay=0.9)
    ticks = []
    result = fit(model, list(model.parameters()), lambda step: (model(x) - y).square().mean(), recipe,
                 what="toy loss", progress=lambda done, total: ticks.append((done, total)))
    assert result.losses[-1] < 0.05 * result.losses[0]
    assert ticks[0] == (1, 60) and ticks[-1] == (60, 60) and len(result.losses) == 60
    assert result.model is not model and not result.model.training
    assert not any(p.requires_grad for p in result.model.parameters())
    assert result.summary()["first_loss"] == result.losses[0]


def test_fit_stops_on_a_non_finite_loss_naming_it_and_the_step():
    model = nn.Linear(2, 1)
    losses = iter([1.0, float("nan")])
    recipe = FlowRecipe(steps=5, warmup=1)
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 1: toy loss is nan$"):
        fit(model, list(model.parameters()), lambda step: model.weight.sum() * 0 + next(losses), recipe,
            what="toy loss")


class _Regression:
    """A recipe with a generator and no critic: the shape of a consistency-style method."""

    critic = None

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.generator = nn.Linear(3, 1)
        self.x = torch.randn(16, 3)
        self.y = self.x @ torch.tensor([[1.0], [2.0], [-1.0]])

    def generator_step(self, step, noise):
        from harness.training.trainer import StepOutput

        return StepOutput((self.generator(self.x) - self.y).square().mean())


def test_the_methods_trainer_runs_a_recipe_without_a_critic_and_resumes_it(tmp_path):
    from harness.diffusion.sampling import NoiseSource
    from harness.training.context import TrainContext
    from harness.training.trainer import Trainer, TrainSettings

    rows = []
    settings = TrainSettings(steps=6, batch_size=2, lr_generator=0.05, checkpoint_every=3,
                             critic_updates_per_generator=5, ema_decay=0.5, ema_start_step=0)
    ctx = TrainContext(workdir=tmp_path, seed=0, log=lambda row, step: rows.append((step, dict(row))))
    trainer = Trainer(settings, ctx)
    model = trainer.run(_Regression(), NoiseSource(0))
    assert trainer.opt_c is None
    # the generator is updated on every step (no critic to alternate with) and no critic term is logged
    assert [step for step, row in rows] == list(range(6))
    assert all("generator/loss" in row and not any(k.startswith("critic/") for k in row) for _, row in rows)
    assert rows[-1][1]["generator/loss"] < rows[0][1]["generator/loss"]
    from harness.engine.checkpoints import CheckpointStore

    state = CheckpointStore(tmp_path / "checkpoints").load(6)
    assert "generator" in state and "critic" not in state and "opt_critic" not in state
    again = Trainer(settings, ctx).run(_Regression(), NoiseSource(0))  # resumes at step 6: nothing to do
    assert torch.equal(again.weight, model.weight)
