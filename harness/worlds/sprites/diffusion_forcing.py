"""A causal model trained with diffusion forcing on data: the SkyReels-V2-style row of Table 1.

Diffusion forcing gives every chunk its own independent noise level and trains the block-causal
backbone with the plain flow loss, so at inference it can denoise chunk by chunk with many steps
against the clean context in its KV cache (the shared causal sampler, harness/diffusion/sampling.py). Like
SkyReels-V2, which fine-tunes a full-sequence model, it starts from the bidirectional teacher's
weights. Noise levels are drawn uniformly (not logit-normal) so that nearly clean context chunks,
what the model reads at inference, are seen during training.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.worlds.sprites.backbone import SpritesDiT
from harness.worlds.sprites.teacher import FlowRecipe, Progress, save_model, train_flow
from harness.worlds.sprites.world_config import SpritesConfig

# Version of the sprites-diffusion-forcing stage: bump it when build_diffusion_forcing builds something
# else for the same config, so cached ones are rebuilt (the rule: harness/engine/versions.py).
STAGE_VERSION = 1

DEFAULT_DF_RECIPE = FlowRecipe(steps=300, lr=3e-4, warmup=20, timestep_sampling="uniform", train_shift=1.0,
                               cfg_dropout=0.1, ema_decay=0.99, seed=1)


def train_diffusion_forcing(teacher: SpritesDiT, world: SpritesConfig, recipe: FlowRecipe,
                            progress: Progress | None = None) -> tuple[SpritesDiT, dict[str, Any]]:
    """Fine-tune a causal copy of ``teacher`` with per-chunk noise levels; returns (EMA model, metrics)."""
    model = SpritesDiT(teacher.config)
    model.load_state_dict(teacher.state_dict())
    return train_flow(model, world, recipe, causal=True, per_chunk_noise=True, progress=progress)


def build_diffusion_forcing(out_dir: str | Path, teacher: SpritesDiT, world: SpritesConfig, recipe: FlowRecipe,
                            progress: Progress | None = None) -> dict[str, Any]:
    """Train the diffusion-forcing model and write its checkpoint (kind ``diffusion_forcing``)."""
    model, metrics = train_diffusion_forcing(teacher, world, recipe, progress)
    save_model(out_dir, model, world, kind="diffusion_forcing", recipe=asdict(recipe), metrics=metrics,
               stage_version=STAGE_VERSION)
    return metrics
