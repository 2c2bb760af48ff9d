"""The causal student's initialisation: regression onto the teacher's ODE trajectories.

The asymmetric init of CausVid / Self Forcing
(docs/references.md#causvid-causal-init-and-teacher-forced-dmd): the bidirectional teacher samples Euler
trajectories of the flow ODE with CFG; the states at the few-step timesteps (``[1000, 750, 500, 250]``
warped with shift 5, which lie on the ODE grid when ``ode_steps`` is a multiple of 4) are paired with the
trajectory's final x0. The student, a copy of the teacher's weights run block-causally, learns to map a
noisy chunk at one of those timesteps straight to the teacher's x0 of that chunk, reading the clean
context of the earlier chunks of the same trajectory from its KV cache (written by the t = 0 pass, exactly
as at inference). Each chunk of each video gets its own random step, as in CausVid's per-block index.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.diffusion.conventions import DEFAULT_SHIFT, DEFAULT_STEP_LIST, warp_timesteps, x0_from_v
from harness.diffusion.kv_cache import KVCache
from harness.diffusion.ode import sample_ode
from harness.errors import ConfigError
from harness.training.fit import fit
from harness.worlds.base import Guidance
from harness.worlds.sprites.backbone import SpritesDiT
from harness.worlds.sprites.prompts import PromptSuite, encode_batch
from harness.worlds.sprites.teacher import (
    Progress,
    null_tokens,
    save_model,
    trained_parameters,
)
from harness.worlds.sprites.world_config import SpritesConfig

# Version of the sprites-causal-init stage: bump it when build_causal_init builds something else for the
# same config, so cached ones are rebuilt (the rule: harness/engine/versions.py).
STAGE_VERSION = 1


@dataclass(frozen=True)
class CausalInitRecipe:
    """ODE pair generation and the regression; every field changes the weights."""

    pairs: int = 128
    ode_steps: int = 16
    denoising_steps: tuple[float, ...] = DEFAULT_STEP_LIST
    shift: float = DEFAULT_SHIFT
    steps: int = 150
    batch_size: int = 16
    lr: float = 2e-4
    warmup: int = 10
    min_lr_ratio: float = 0.1
    ema_decay: float = 0.99
    grad_clip: float = 1.0
    precision: str = "fp32"
    # regress the DiT and keep the teacher's prompt encoder as it is (the teacher's recipe says why)
    freeze_prompt_encoder: bool = True
    seed: int = 0

    def validate(self) -> None:
        if self.pairs < 1 or self.steps < 1 or self.batch_size < 1:
            raise ConfigError("causal init pairs, steps and batch_size must be >= 1")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"causal init precision '{self.precision}' is unknown; choose fp32 or bf16")


@dataclass
class ODEPairs:
    """Teacher trajectories: ``states`` [N, K, F, C, H, W] at ``timesteps`` (K), ``x0`` [N, F, C, H, W]."""

    states: torch.Tensor
    timesteps: list[float]
    x0: torch.Tensor
    cond: torch.Tensor


@torch.no_grad()
def generate_ode_pairs(teacher: nn.Module, world: SpritesConfig, recipe: CausalInitRecipe,
                       guidance: Guidance, batch: int = 64) -> ODEPairs:
    """Sample ``recipe.pairs`` teacher trajectories on train-split prompts and keep the step-list states."""
    timesteps = warp_timesteps(recipe.denoising_steps, recipe.shift)
    rng = np.random.default_rng(recipe.seed)
    prompts = [scene.prompt for scene in PromptSuite(world).sample(recipe.pairs, rng, "train")]
    cond = torch.from_numpy(encode_batch(prompts)[0])
    gen = torch.Generator().manual_seed(recipe.seed)
    cfg = teacher.config
    states, finals = [], []
    for lo in range(0, recipe.pairs, batch):
        ids = cond[lo: lo + batch]
        noise = torch.randn(len(ids), world.frames, cfg.channels, cfg.height, cfg.width, generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.precision == "bf16"):
            result = sample_ode(teacher, noise, ids, null_tokens(len(ids)), steps=recipe.ode_steps,
                                shift=recipe.shift, guidance_scale=guidance.scale, cfg_form_name=guidance.form,
                                causal=False, return_trajectory=True)
        states.append(torch.stack([s.float() for s in result.states_at(timesteps)], dim=1))
        finals.append(result.x0.float())
    return ODEPairs(torch.cat(states), timesteps, torch.cat(finals), cond)


def regression_loss(student: SpritesDiT, states: torch.Tensor, x0: torch.Tensor, cond: torch.Tensor,
                    timesteps: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """MSE of the student's x̂0 per chunk, chunk by chunk against the cache of the clean earlier chunks.

    ``states`` [B, K, F, ...]; ``choice`` [B, chunks] picks each chunk's trajectory state.
    """
    fpc = student.config.frames_per_chunk
    cache = KVCache()
    losses = []
    rows = torch.arange(states.shape[0])
    for chunk in range(choice.shape[1]):
        frames = slice(chunk * fpc, (chunk + 1) * fpc)
        x_t = states[rows, choice[:, chunk], frames]
        t = timesteps[choice[:, chunk]]
        v = student(x_t, t, cond, kv_cache=cache, causal=True)
        x0_hat = x0_from_v(x_t, v.float(), (t / 1000.0)[:, None].expand(-1, fpc))
        losses.append((x0_hat - x0[:, frames]).square().mean())
        if chunk + 1 < choice.shape[1]:
            student(x0[:, frames], 0.0, cond, kv_cache=cache, causal=True, write_cache=True)
    return torch.stack(losses).mean()


def train_causal_init(teacher: SpritesDiT, world: SpritesConfig, recipe: CausalInitRecipe, guidance: Guidance,
                      progress: Progress | None = None) -> tuple[SpritesDiT, dict[str, Any]]:
    """Generate ODE pairs from ``teacher``, then regress a causal copy of it onto them."""
    recipe.validate()
    torch.manual_seed(recipe.seed)
    started = time.perf_counter()
    pairs = generate_ode_pairs(teacher, world, recipe, guidance)
    pair_seconds = time.perf_counter() - started
    student = SpritesDiT(teacher.config)
    student.load_state_dict(teacher.state_dict())
    trained = trained_parameters(student, recipe.freeze_prompt_encoder)
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    timesteps = torch.tensor(pairs.timesteps)
    chunks = world.frames // teacher.config.frames_per_chunk

    def step_loss(step: int) -> torch.Tensor:
        idx = torch.randint(0, len(pairs.x0), (recipe.batch_size,), generator=gen)
        choice = torch.randint(0, len(pairs.timesteps), (recipe.batch_size, chunks), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.precision == "bf16"):
            return regression_loss(student, pairs.states[idx], pairs.x0[idx], pairs.cond[idx], timesteps, choice)

    result = fit(student, trained, step_loss, _as_flow_recipe(recipe), what="causal init regression loss",
                 progress=progress)
    metrics = {"pair_seconds": round(pair_seconds, 2), "train_seconds": round(time.perf_counter() - started, 2),
               **result.summary()}
    return result.model, metrics


def build_causal_init(out_dir: str | Path, teacher: SpritesDiT, world: SpritesConfig, recipe: CausalInitRecipe,
                      guidance: Guidance, progress: Progress | None = None) -> dict[str, Any]:
    """Train the causal init and write its checkpoint (kind ``causal_init``) into ``out_dir``."""
    model, metrics = train_causal_init(teacher, world, recipe, guidance, progress)
    save_model(out_dir, model, world, kind="causal_init",
               recipe={**asdict(recipe), "guidance": asdict(guidance)}, metrics=metrics,
               stage_version=STAGE_VERSION)
    return metrics


def _as_flow_recipe(recipe: CausalInitRecipe):
    """The optimisation fields as a FlowRecipe, what :func:`harness.training.fit.fit` reads."""
    from harness.worlds.sprites.teacher import FlowRecipe

    return FlowRecipe(steps=recipe.steps, warmup=recipe.warmup, min_lr_ratio=recipe.min_lr_ratio, lr=recipe.lr,
                      betas=(0.9, 0.99), weight_decay=0.0, grad_clip=recipe.grad_clip)
