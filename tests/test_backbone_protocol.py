"""Both backbones satisfy the declared Backbone protocol, and a module missing a member does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.diffusion.backbone import Backbone
from harness.worlds.sprites.backbone import build_sprites_dit


def test_the_sprites_dit_is_a_backbone():
    model = build_sprites_dit("smoke")
    assert isinstance(model, Backbone)
    x = torch.zeros(1, 2 * model.frames_per_chunk, model.config.channels, model.config.height, model.config.width)
    v, features = model(x, 500.0, torch.zeros(1, 4, dtype=torch.long), causal=False, return_features=True)
    assert v.shape == x.shape and len(features) == model.config.depth


def test_the_wan_backbone_is_a_backbone():
    pytest.importorskip("diffusers", reason="the wan extra is part of dev: pip install '.[dev]'")
    from harness.worlds.wan.backbone import build_wan_backbone

    assert isinstance(build_wan_backbone("tiny"), Backbone)


def test_a_module_without_chunks_is_not_a_backbone():
    assert not isinstance(nn.Linear(2, 2), Backbone)


def test_a_world_without_reference_models_says_which_row_it_cannot_serve():
    from harness.errors import ConfigError
    from harness.worlds.toy import ToyWorld

    world = ToyWorld()
    with pytest.raises(ConfigError, match="world cannot sample its teacher"):
        world.sample_teacher(nn.Identity(), ["a red circle"], 0)
    with pytest.raises(ConfigError, match="has no diffusion-forcing model"):
        world.diffusion_forcing(None)
