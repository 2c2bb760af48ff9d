"""Flow-matching training of sprites DiTs on rendered data: the bidirectional teacher (and, with
per-chunk noise, the diffusion-forcing model), plus safe checkpoint files.

The recipe is what made a teacher learn on 2 CPU cores (reasons in docs/sprites_world.md): AdamW
with linear warm-up and cosine decay, an EMA of the weights (the EMA is what gets saved and sampled),
logit-normal timestep sampling (the mid-noise levels where layout and shape are decided get most of
the updates), gradient clipping, and CFG dropout (the prompt replaced by the null prompt with
probability ``cfg_dropout``) so the teacher can be sampled with classifier-free guidance. The prompt
encoder stays as initialised unless ``freeze_prompt_encoder`` is off: trained by the denoising loss it
learns to merge opposite direction words.

A checkpoint is a folder with ``model.safetensors`` and ``model.json`` (format tag, DiT config, world
config, recipe, metrics); loading checks every one and never unpickles anything.

Retrain the default teacher (under 20 minutes on 2 cores; on cores shared with other work prefix
OMP_WAIT_POLICY=PASSIVE; docs/history.md has the timings)::

    python -m harness.worlds.sprites.retrain_teacher --size default --out DIR

The project ships the weights this command wrote (shipped.py says where and when they are used).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.diffusion.conventions import add_noise, flow_target, shift_sigma
from harness.errors import CheckpointError, ConfigError
from harness.io.weights import load_weights, save_weights
from harness.io.weights import read_meta as read_json_meta
from harness.training.fit import fit
from harness.worlds.sprites.backbone import SpritesDiT
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.dit_config import SpritesDiTConfig
from harness.worlds.sprites.embeddings import grid_sincos
from harness.worlds.sprites.prompts import encode_batch
from harness.worlds.sprites.world_config import SpritesConfig

WEIGHTS_FILE, META_FILE = "model.safetensors", "model.json"
FORMAT = "sprites-dit/1"
# Version of the sprites-teacher stage: bump it when train_teacher builds something else for the
# same config, so cached ones are rebuilt (the rule: harness/engine/versions.py).
STAGE_VERSION = 1

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FlowRecipe:
    """How a flow-matching model is trained; every field changes the weights (stage keys hash it)."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    cfg_dropout: float = 0.1
    timestep_sampling: str = "logit_normal"  # see TIMESTEP_SAMPLERS
    logit_mean: float = 0.0
    logit_std: float = 1.0
    train_shift: float = 3.0  # σ ← shift(σ, train_shift): the sampler and DMD spend most steps at high σ
    precision: str = "fp32"  # "bf16": CPU autocast (faster matmuls, but slower steps for the small DiT)
    position_init: str = "sincos"  # "sincos": 2D sin/cos spatial table; "random": as built (zero if rotary)
    # keep the prompt encoder as initialised, the way Wan keeps its T5 frozen: trained by the denoising loss
    # it merges "left" with "right" and the teacher cannot tell them apart (docs/history.md has the figures)
    freeze_prompt_encoder: bool = True
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"recipe steps and batch_size must be >= 1, got {self.steps}/{self.batch_size}")
        if self.timestep_sampling not in TIMESTEP_SAMPLERS:
            raise ConfigError(f"recipe timestep_sampling '{self.timestep_sampling}' is unknown; choose one of "
                              f"{sorted(TIMESTEP_SAMPLERS)}")
        if self.position_init not in ("sincos", "random"):
            raise ConfigError(f"recipe position_init '{self.position_init}' is unknown; choose sincos or random")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"recipe precision '{self.precision}' is unknown; choose fp32 or bf16")
        if not 0.0 <= self.cfg_dropout < 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("recipe cfg_dropout and ema_decay must be in [0, 1)")


# -- timestep (σ) samplers: a registry, so a recipe names one --------------------------------------

def _logit_normal(shape: tuple[int, ...], recipe: FlowRecipe, gen: torch.Generator) -> torch.Tensor:
    u = torch.sigmoid(recipe.logit_mean + recipe.logit_std * torch.randn(shape, generator=gen))
    return shift_sigma(u, recipe.train_shift)


def _uniform(shape: tuple[int, ...], recipe: FlowRecipe, gen: torch.Generator) -> torch.Tensor:
    return shift_sigma(torch.rand(shape, generator=gen), recipe.train_shift)


TIMESTEP_SAMPLERS: dict[str, Callable[[tuple[int, ...], FlowRecipe, torch.Generator], torch.Tensor]] = {
    "logit_normal": _logit_normal,
    "uniform": _uniform,
}


def sample_sigmas(batch: int, frames: int, frames_per_chunk: int | None, recipe: FlowRecipe,
                  gen: torch.Generator) -> torch.Tensor:
    """Per-frame σ [B, F]: one level per video, or (diffusion forcing) one per chunk of frames."""
    sampler = TIMESTEP_SAMPLERS[recipe.timestep_sampling]
    if frames_per_chunk is None:
        return sampler((batch, 1), recipe, gen).expand(batch, frames).contiguous()
    per_chunk = sampler((batch, frames // frames_per_chunk), recipe, gen)
    return per_chunk.repeat_interleave(frames_per_chunk, dim=1)


@torch.no_grad()
def init_spatial_positions(model: SpritesDiT, max_period: float = 64.0) -> None:
    """Overwrite the learned spatial position table with a 2D sin/cos table (half the dims per axis).

    The backbone starts it at 0.02·randn while the frame sinusoid it is added to has norm sqrt(dim/2):
    after the first LayerNorm a token barely knows where it is, and a teacher trained from there
    scatters object-coloured patches instead of one coherent shape (docs/history.md). A table of the same
    norm as the frame sinusoid gives every token its place from step 0.
    """
    model.spatial_position.copy_(grid_sincos(model.config, max_period))


# -- the training loop ----------------------------------------------------------------------------

def null_tokens(batch: int) -> torch.Tensor:
    """Token ids of the empty prompt (the CFG null condition)."""
    return torch.from_numpy(encode_batch([""] * batch)[0])


def trained_parameters(model: SpritesDiT, freeze_prompt_encoder: bool) -> list[nn.Parameter]:
    """Mark the prompt encoder frozen (or trainable) and return the parameters an optimiser should see."""
    model.prompt.requires_grad_(not freeze_prompt_encoder)
    return [p for p in model.parameters() if p.requires_grad]


def flow_loss(model: SpritesDiT, x0: torch.Tensor, ids: torch.Tensor, null: torch.Tensor, recipe: FlowRecipe,
              gen: torch.Generator, *, causal: bool, frames_per_chunk: int | None) -> torch.Tensor:
    """The flow-matching loss of one batch, with CFG dropout to ``null`` and the recipe's σ sampler."""
    drop = torch.rand(x0.shape[0], generator=gen) < recipe.cfg_dropout
    cond = torch.where(drop[:, None], null[: x0.shape[0]], ids)
    noise = torch.randn(x0.shape, generator=gen)
    sigma = sample_sigmas(x0.shape[0], x0.shape[1], frames_per_chunk, recipe, gen)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.precision == "bf16"):
        v = model(add_noise(x0, noise, sigma), sigma * 1000.0, cond, causal=causal)
    return (v.float() - flow_target(x0, noise)).square().mean()


def train_flow(model: SpritesDiT, world: SpritesConfig, recipe: FlowRecipe, *, causal: bool,
               per_chunk_noise: bool, progress: Progress | None = None) -> tuple[SpritesDiT, dict[str, Any]]:
    """Train ``model`` with the flow loss on fresh rendered batches; returns (EMA model, metrics)."""
    recipe.validate()
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    data = SpritesData(world)
    trained = trained_parameters(model, recipe.freeze_prompt_encoder)
    fpc = model.config.frames_per_chunk if per_chunk_noise else None
    null = null_tokens(recipe.batch_size)

    def step_loss(step: int) -> torch.Tensor:
        x0, ids, _, _ = data.batch(recipe.batch_size, rng)
        return flow_loss(model, x0, ids, null, recipe, gen, causal=causal, frames_per_chunk=fpc)

    result = fit(model, trained, step_loss, recipe, what="flow loss", progress=progress)
    metrics = {"train_seconds": round(result.seconds, 2), "steps_per_second": round(recipe.steps / result.seconds, 3),
               **result.summary()}
    return result.model, metrics


def train_teacher(out_dir: str | Path, world: SpritesConfig, dit: SpritesDiTConfig, recipe: FlowRecipe,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Train the bidirectional teacher and write its checkpoint into ``out_dir``."""
    torch.manual_seed(recipe.seed)  # the initial weights, a frozen prompt encoder's for good, follow the recipe
    model = SpritesDiT(dit)
    if recipe.position_init == "sincos":
        init_spatial_positions(model)
    ema, metrics = train_flow(model, world, recipe, causal=False, per_chunk_noise=False, progress=progress)
    save_model(out_dir, ema, world, kind="teacher", recipe=asdict(recipe), metrics=metrics,
               stage_version=STAGE_VERSION)
    return metrics


# -- checkpoint files -----------------------------------------------------------------------------

def save_model(out_dir: str | Path, model: SpritesDiT, world: SpritesConfig, *, kind: str,
               recipe: dict[str, Any], metrics: dict[str, Any], stage_version: int = 1) -> None:
    """Write ``model.safetensors`` and ``model.json`` into ``out_dir`` (``stage_version``: the builder's)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model, out / WEIGHTS_FILE)
    meta = {"format": FORMAT, "kind": kind, "dit": asdict(model.config), "world": asdict(world),
            "recipe": recipe, "metrics": metrics, "stage_version": stage_version}
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_model(directory: str | Path, dit: SpritesDiTConfig | None = None, *, kind: str | None = None) -> SpritesDiT:
    """Load a checkpoint folder; CheckpointError names the missing, corrupt or mismatched file/field."""
    directory = Path(directory)
    meta = read_meta(directory)
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{directory / META_FILE}: holds a '{meta.get('kind')}' model, expected '{kind}'")
    try:
        fields = {"rotary_positions": False, **meta["dit"]}  # older checkpoints: additive positions only
        saved = SpritesDiTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{directory / META_FILE}: field 'dit' is not a valid SpritesDiTConfig ({exc})") from exc
    if dit is not None:
        for key, value in asdict(dit).items():
            if getattr(saved, key) != value:
                raise CheckpointError(f"{directory / META_FILE}: model has dit.{key}={getattr(saved, key)!r}, "
                                      f"expected {value!r}")
    model = SpritesDiT(saved)
    load_weights(model, directory / WEIGHTS_FILE)
    return model.eval()


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    meta = read_json_meta(path, FORMAT)
    if not isinstance(meta.get("dit"), dict):
        raise CheckpointError(f"{path}: key 'dit' missing")
    return meta
