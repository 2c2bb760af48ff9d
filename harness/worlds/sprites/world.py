"""``SpritesWorld``: the embedded CPU-sized world behind the World interface.

A preset (``smoke`` for tests, ``default`` for studies) fixes what the world contains, the DiT that
models it and the recipes of its cached artifacts; constructor arguments override a few fields. The
teacher, the causal init, the diffusion-forcing model and the evaluator's classifier are stage
artifacts keyed by everything that determines their weights, so every study asking for the same
world shares them.

Why the default preset looks the way it does (measured on 2 shared CPU cores):
* 16-pixel frames with 5-pixel objects: the detector of sprites-bench is exact there on real videos
  (6-pixel objects: 83% object_class on real videos, since the templates blur into each other);
* two plain backgrounds instead of four patterned ones: patterns are pixel detail the teacher must
  reproduce and the evaluator does not ask for;
* fp32: bf16 autocast triples the bare matmul rate on AVX512-BF16 cores, but its casts make a
  whole training step of this small DiT slower (1.46 vs 1.80 steps/s on idle cores);
* the OpenMP wait policy moves a training step by 2x either way, so it is the machine's call. With
  one core busy elsewhere, threads that spin while waiting lose their core: the default teacher's step ran
  at 1.7 steps/s with the default policy and at 3.7 with OMP_WAIT_POLICY=PASSIVE (and 17 s vs 1.2 s per
  step at load average 11), which is why the Makefile sets PASSIVE. On idle cores of a virtual machine it
  is the reverse, since every small op then wakes a sleeping thread: 6.6 vs 2.7 steps/s. Fused AdamW and
  multi-tensor EMA and clipping (fewer, larger ops) narrowed that to 7.2 vs 4.3 (8.9 vs 5.6 and 9.8 vs 7.1
  later the same day: the host's speed varies too).

* teacher lr 6e-3: at 1e-3 the teacher was far from converged (final flow loss 0.125 after 1500
  steps) and its samples broke each object into patch-sized pieces scattered over the frame (24%
  object class, 85% colour, 21% direction). At 6e-3, 1800 steps (final loss 0.085) each object is
  one blob moving along one path: 41% object class, 89% colour, 73% direction (48 eval prompts,
  50 Euler steps, CFG 3). Still short of 90%: the blobs' shapes are not yet the templates.
  Measured at 300 steps and not kept: the frame sinusoid scaled by 0.1 (no change); rotary
  positions (``SpritesDiTConfig.rotary_positions``) helped at 300 steps but at 1800 gave 47% / 94% / 28%.
  Measured at 1800 steps and not kept (same prompts and sampler; benchmarks/teacher_quality.py):
  ``train_shift`` 1.0 instead of 3.0, i.e. more updates at the low noise levels where shapes are refined:
  34% / 84% / 30%, the objects scatter into single pixels and lose their path (a lower sampler shift does
  not recover it: 35% / 84% / 32% at shift 3); per-frame 3×3 convolutions around the patch path
  (``SpritesDiTConfig.pixel_channels`` = 16, pixel_layers.py): 35% / 86% / 10-15%.
* the same recipe trained twice gave 73% and then 21% direction: the direction is the fragile part.

* batch 16, token_conv and relative_bias (object class / colour / direction at CFG 3 of the EMA at
  steps 1000 / 2000 / 3000 / 4000 of one run; benchmarks/teacher_quality.py's scoring):
  plain DiT at batch 16: 31/87/24, 36/84/19 (same throughput as batch 32, twice the steps);
  + depthwise 3×3 conv over the token grid in the MLPs (token_mlp.py): 40/84/26, 49/91/20 — each object
  becomes one compact blob from step 1000 on (the plain DiT scatters it into patch-sized pieces);
  + learned relative attention bias (relative_bias.py): 37/85/27, 48/91/22, 58/97/25, 57/97/22, flow loss
  0.103 → 0.064 (0.119 at step 1000 without it); shapes recognisable, one object on a smooth path.
  Not kept: an x0-predicting output (v = (x_t − x0)/σ): 13/54/12 at 1000 steps, 17/71/10 at 2000.
* The default recipe (batch 16 × 3600 steps, EMA 0.998, both options; before rotary positions): 17.6
  minutes on 2 cores, final flow loss 0.066; its samples (2 per eval prompt): 53% object class, 90% colour,
  27% direction at CFG 3 (50 / 91 / 25 at CFG 5). The strip looks like the data: one object per prompt
  object, the right colour, a recognisable template, on a smooth path, but not the prompted one.
* Direction is where the teacher still fails, and the cause is measured: with the same noise, "a red
  circle moving left / right / up / down" give the same video. The velocity's change when only the
  direction word changes is 0.001 (mean |Δv|), against 0.01-0.05 for the shape word and 0.1-0.3 for
  the colour word. The teacher has learnt motion (low-residual constant-speed paths) but not which way:
  at every noise level where the video is readable it shows its own direction, so the denoising loss
  barely rewards reading the word. Tried, not kept (each 1000-2000 steps): objects moving the named way
  for 4 frames before a wall can turn them (``SpritesConfig.lead_frames`` = 4; kept as a world option),
  train_shift 6 (more updates where the video is unreadable), and half of each batch with one noise
  level per frame (so a noisy frame beside clean ones needs the word): the word's effect stayed at
  0.001-0.006 and direction at 8-20%.
* Rotary positions on top (``rotary_positions``, the default since): the teacher reads the *axis* of the
  motion from the word, still not its sign. benchmarks/direction_probe.py measures it on the shipped
  weights: the x0 error on real videos at σ 0.7 is 0.0140 with the true word, 0.0140 with the opposite
  one and 0.0292 with a perpendicular one (0.0132 / 0.0132 / 0.0279 with the first frame clean); the
  previous shipped teacher gave 0.0159 for all three. Its samples (2 per eval prompt, CFG 3): 53% object
  class, 89% colour, **42% direction** (was 27%), motion smoothness 0.47 (was 0.37), 19 minutes of
  training (1133 s, final flow loss 0.064). Single-object direction at 2000 steps: 52-56% (axis right,
  sign a coin flip) vs 23-29% without. Tried at 1000-2000 steps, not kept, none of them reads the sign:
  a learned key vector per head and joint (frame, row, column) offset dotted with the query (Shaw et
  al.'s relative positions; ignored the word entirely), rotary pairs along learned space-time directions
  (RoPE-Mixed in 3D; axis only), a per-frame adaLN term from (prompt, frame index) (ignored the word),
  half of each batch with a clean prefix of first frames and the loss on the noisy frames only
  (image-to-video; no change), and objects moving the named way for 5 frames (``lead_frames`` = 5, so
  the start position gives the sign away; axis only). On the shipped weights the pooled prompt vectors
  of "left" and "right" are 9× closer than those of "left" and "up" (mean |Δ| 0.005 vs 0.045): nothing
  in training has made the sign worth telling apart yet.
* Why the sign was lost, measured: at initialisation the pooled prompt vectors of every pair of words are
  1.2-1.5 apart ("left"/"right" 1.24, "left"/"up" 1.22); after training the prompt encoder with the
  denoising loss, "left"/"right" are 0.07 apart and "up"/"down" 0.06, "left"/"up" still 1.0 — although the
  token embeddings of "left" and "right" are 11.5 apart. The encoder learns to merge the signs: the data
  are nearly time-reversible, the teacher's outputs change by 2% when its input video is played backwards,
  and to such a model the sign is noise. The mean video of "moving left" and of "moving right" differ as
  much as those of "left" and "up" (MSE 0.0066 vs 0.0036), so the information was there.
  Since: the prompt encoder stays as initialised (``FlowRecipe.freeze_prompt_encoder``, Wan's T5 is frozen
  too), and a term from prompt × frame × place reaches every input token (``prompt_positions``,
  prompt_positions.py), since "moving left" means "right early, left late". 2000-step runs (object class /
  colour / direction on the eval prompts, then direction on 48 single-object prompts):
  both: 45/87/78, single 94 (75 and 88 at step 1000); the term alone: 46/88/40, single 54 (the encoder
  still merges); the frozen encoder alone (1000-step schedule): 39/85/49, single 46. direction_probe on the
  first of these: true word 0.0592, opposite 0.0634, perpendicular 0.0626 at σ 0.9 — the sign is read.
  A trail behind each object (``SpritesConfig.trail`` = 2, fading copies at its last positions, so one
  frame shows the way it goes) without these changes: 45/90/42, single 60, the sign still not read; the
  world keeps it as an option, off.
* The default recipe since (both changes, batch 16 × 3400 steps: 3600 took 19:00 of the 20 minutes last
  time, too close on a machine whose speed varies by 20%): 1005 s of training, 16:51 wall, final flow loss
  0.066. Its samples (2 per eval prompt, CFG 3, shift 5): 65% object class, 89% colour, **80% direction**
  (was 42%), multiple objects 15%, subject consistency 0.98. direction_probe at σ 0.9: true 0.0513,
  opposite 0.0602, perpendicular 0.0614 (first frame clean: 0.0514 / 0.0650 / 0.0718).
* Where that teacher still fails is the two-object prompts (14 of the 48 eval prompts). Split (2 samples
  per prompt): one object 72% object class, 100% colour, 93% direction; two objects 50%, 62%, 50%. Two
  objects get each other's colour, shape or direction: the prompt is not bound to the object. Single-object
  class by shape: square 99%, triangle 84%, diamond 82%, circle 62%, cross 38%. The sampler does not move
  it (object class / colour / direction at CFG:shift 3:5 65/89/80, 1.5:5 57/87/71, 2:5 61/87/78, 4.5:5
  63/89/81, 3:2 65/87/80, 3:8 64/89/80). Tried at 2000 steps, not kept (object class / colour / direction
  on the eval prompts, one-object / two-object in brackets, 2 samples per prompt):
  - the prompt encoder's attention kept inside each object's phrase (``SpritesDiTConfig.phrase_separator_id``
    alone, meant as binding by construction the way a trained text encoder binds): 48/89/72 (two
    objects 44/67/43), against 45/87/78 (1 sample per prompt) without it;
  - a cross whose arms are centred (a 1-pixel plus at 5 pixels; the default template's arms sit a pixel
    off-centre): 55/85/82 (two objects 44/55/50), but single-object cross class 4% (the shipped teacher draws
    the lopsided cross right 38% of the time) — the model draws a blob, and a blob reads as a diamond;
  - on that world, phrase-local attention plus the prompt-position term computed per phrase through a
    small MLP and summed (so it carries "red and moving left" as one product): 47/85/72 (two objects
    42/53/36), against the 55/85/82 above;
  - training on 60% two-object videos instead of the world's 30% (the eval prompts unchanged): 52/88/75
    (two objects 50/61/43) — more two-object data does not teach the binding either at this length.
* Why none of these bound anything, measured (benchmarks/binding_probe.py: x0 error on real two-object
  videos with the true prompt and with the objects' directions, shapes or colours swapped): that teacher
  gave the same error to 4 digits for all of them at every σ (0.0645 at σ 0.8, against 0.0823 for two
  unnamed directions), and so did the phrase-local one (0.0722, colour swap 0.0723, against 0.0854). The
  frozen encoder hands the DiT a bag of words: its position table starts at 0.02·randn (norm 0.19) against
  token embeddings of norm 9.8 and never grows. The context vector of "red" (norm 9.8) moves by 0.006 when
  the two objects' directions are swapped, by 0.76 with phrase-local attention. So a red object's tokens
  find "red" by cross-attention, but its value says nothing of "left".
  Since: phrase pooling (``SpritesDiTConfig.phrase_pooling``, with the "and" separator): every word's
  context vector is its phrase's mean, so the key a red object finds carries its shape and direction (the
  same swap moves "red" by 5.0). binding_probe then separates the swaps (σ 0.8: true 0.0599, other order
  0.0599, swapped direction 0.0647, shape 0.0669, colour 0.0709, two unnamed directions 0.0852). At 2000
  steps: 62/96/82, two objects 56/88/41 (2 samples per prompt). The default recipe with it (3400 steps,
  689 s of training, 11:33 wall on idle cores, final flow loss 0.064), 4 samples per eval prompt at CFG 3,
  shift 5: **80% object class, 99% colour, 86% direction** (was 65 / 89 / 80); CFG 2 / 4.5 and shift 3 are
  within 1.5 points. Single-object class by shape (2 samples per prompt): square 100, triangle 92,
  diamond 92, circle 75, cross 52. Seed 1 instead of 0: 76 / 99 / 87. Steps are what class is short of:
  5000 steps gave 86 / 99 / 86 (2 samples per prompt), but took 1143 s of training on idle cores, and
  about 1.5 times that on a shared machine: not within the 20-minute budget.
  Tried on top, not kept: the prompt-position term routed per token to the phrase its content points to
  (attention from each input token to the phrase vectors, so red tokens get "left"'s motion term and blue
  ones "up"'s): 64/96/77, two objects 56/85/43 at 2000 steps — no better; per-frame 3×3 convolutions at
  pixel resolution (``pixel_channels`` 16, to draw the cross's arms): 57/97/79 at 2000 steps, each step 25%
  slower.
* Sampler variants on the shipped teacher of the fifth session, not kept (object class / colour /
  direction, 2 samples per eval prompt; Euler at CFG 3 gave 65/89/80): stochastic sampling (each step's x0
  re-noised with a fraction η of fresh noise) η 0.5 68/89/83, η 1 69/90/81, η 1 only for σ in [0.1, 0.6]
  67/86/78; composable guidance on two-object prompts (each phrase's conditional added to the whole
  prompt's) collapses the shapes (object class 3-33% for any weight on the phrases); guidance on the shape
  word (the prompt against the prompt without its shape words) 63/86/76 at weight 2, 52/85/60 at 5. The
  shapes are decided, not lost at the end: that teacher denoises real videos to 98% object class from σ
  0.35 in one step.
* Steps were what the phrase-pooling teacher was short of, two-object direction included, and a step got
  cheaper: fused AdamW and multi-tensor EMA and clipping (teacher.py) took it from 6.6 to 7.2 steps/s on
  idle cores (2.7 to 4.3 under OMP_WAIT_POLICY=PASSIVE). One 6000-step run, its EMA scored at steps 3000 /
  4500 / 6000 (object class / colour / direction, 2 samples per eval prompt, CFG 3, shift 5; one-object
  and two-object prompts in brackets): 79/98/82 (82/100/93, 72/94/55), 86/99/87 (88/100/96, 80/97/64),
  89/100/90 (91/100/97, 83/99/73). On that teacher guidance 3 / 4 / 5 gave 89/100/90, 89/99/93, 86/99/95
  and shift 3 at guidance 3 88/100/89: more guidance buys direction with shapes and image quality.
  The default recipe since: 7000 steps, 1006 s of training (16:49 wall, 6.96 steps/s with the default
  wait policy on idle cores), final flow loss 0.052. 4 samples per eval prompt at shift 5: guidance 3
  92.1 / 99.5 / 89.6, guidance 4 **91.6 / 99.4 / 91.9** (imaging quality 0.66 and 0.59). The world samples
  and distils at guidance 4 since: that is the reference DMD's real-score guidance (3.0 in its
  cond + g·(cond − uncond) form) and the Wan world's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError
from harness.worlds.base import Evaluator, Guidance, StageProvider, VideoShape, World
from harness.worlds.sprites.backbone import SpritesDiT
from harness.worlds.sprites.causal_init import STAGE_VERSION as CAUSAL_INIT_VERSION
from harness.worlds.sprites.causal_init import CausalInitRecipe, build_causal_init
from harness.worlds.sprites.classifier import STAGE_VERSION as CLASSIFIER_VERSION
from harness.worlds.sprites.classifier import ClassifierConfig, load_classifier, train_classifier
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.diffusion_forcing import DEFAULT_DF_RECIPE, build_diffusion_forcing
from harness.worlds.sprites.diffusion_forcing import STAGE_VERSION as DIFFUSION_FORCING_VERSION
from harness.worlds.sprites.dit_config import SpritesDiTConfig
from harness.worlds.sprites.evaluator import SpritesBench
from harness.worlds.sprites.prompts import VOCAB, encode_batch
from harness.worlds.sprites.render import from_model, to_model
from harness.worlds.sprites.shipped import copy_shipped, find_shipped_teacher
from harness.worlds.sprites.teacher import STAGE_VERSION as TEACHER_VERSION
from harness.worlds.sprites.teacher import FlowRecipe, load_model, null_tokens, train_teacher
from harness.worlds.sprites.world_config import SpritesConfig

TRAIN_PROMPTS = 256  # size of the fixed train prompt list methods distill on


@dataclass(frozen=True)
class WorldPreset:
    """Everything a world size fixes: content, backbone and the recipes of its artifacts."""

    world: SpritesConfig
    dit: SpritesDiTConfig
    teacher: FlowRecipe
    causal_init: CausalInitRecipe
    diffusion_forcing: FlowRecipe
    classifier: ClassifierConfig
    guidance_scale: float = 3.0


_WORLD = SpritesConfig(resolution=16, object_size=5, speed_max=2, backgrounds=("dark", "slate"),
                       two_object_fraction=0.3)

PRESETS: dict[str, WorldPreset] = {
    # seconds: every artifact trains a few steps; quality is not the point, the plumbing is
    "smoke": WorldPreset(
        world=dataclasses.replace(_WORLD, frames=4),
        dit=SpritesDiTConfig.preset("smoke"),
        teacher=FlowRecipe(steps=8, batch_size=8, warmup=2),
        causal_init=CausalInitRecipe(pairs=8, ode_steps=4, steps=4, batch_size=4, warmup=1, precision="fp32"),
        diffusion_forcing=dataclasses.replace(DEFAULT_DF_RECIPE, steps=4, batch_size=4, warmup=1),
        classifier=ClassifierConfig(steps=5, batch_size=8, width=8, feature_dim=16),
    ),
    "default": WorldPreset(
        world=_WORLD,
        dit=SpritesDiTConfig(height=16, width=16, patch_size=4, dim=96, depth=4, heads=4, token_conv=True,
                             relative_bias=True, rotary_positions=True, prompt_positions=16,
                             phrase_separator_id=VOCAB.index("and"), phrase_pooling=True),
        # batch 16, not 32: the same compute, twice the steps, and steps are what this teacher is short of;
        # lr 6e-3, not 1e-3; 7000 steps: 17 minutes of training on 2 idle cores; the prompt encoder stays
        # frozen (the recipe's default); the module docstring has the measurements
        teacher=FlowRecipe(steps=7000, batch_size=16, lr=6e-3, warmup=100, ema_decay=0.998, train_shift=3.0),
        causal_init=CausalInitRecipe(),
        diffusion_forcing=DEFAULT_DF_RECIPE,
        classifier=ClassifierConfig(),
        # standard-form 4 is the reference DMD's real-score guidance, 3.0 in its cond + g·(cond − uncond)
        # form, and the Wan world's; on this teacher it gives 92/99/92% object class/colour/direction against
        # 92/100/90% at 3 (the module docstring has the figures)
        guidance_scale=4.0,
    ),
}


def world_preset(size: str) -> WorldPreset:
    if size not in PRESETS:
        raise ConfigError(f"sprites world size '{size}' is unknown; choose one of {sorted(PRESETS)}")
    return PRESETS[size]


class SpritesWorld(World):
    """Coloured shapes moving and bouncing; see the module docstring.

    Args:
        size: preset name (``smoke`` | ``default``).
        guidance_scale: the teacher's CFG scale (in ``cfg_form``); None keeps the preset's.
        cfg_form: ``standard`` (uncond + g·(cond − uncond)) or ``self_forcing`` (cond + g·(cond − uncond)).
        teacher_steps / init_steps / df_steps: override the training steps of those artifacts.
        sample_steps / sample_shift: the teacher's Euler sampler (evaluation of the teacher itself).
    """

    name = "sprites"

    def __init__(self, size: str = "default", guidance_scale: float | None = None, cfg_form: str = "standard",
                 teacher_steps: int | None = None, init_steps: int | None = None, df_steps: int | None = None,
                 sample_steps: int = 50, sample_shift: float = 5.0) -> None:
        from harness.diffusion.conventions import cfg_form as lookup_form

        lookup_form(cfg_form)  # unknown forms fail here, naming the choices
        preset = world_preset(size)
        self.size = size
        self.preset = dataclasses.replace(
            preset,
            teacher=_with_steps(preset.teacher, teacher_steps, "teacher_steps"),
            causal_init=_with_steps(preset.causal_init, init_steps, "init_steps"),
            diffusion_forcing=_with_steps(preset.diffusion_forcing, df_steps, "df_steps"),
        )
        self._guidance = Guidance(preset.guidance_scale if guidance_scale is None else float(guidance_scale), cfg_form)
        self.sample_steps, self.sample_shift = sample_steps, sample_shift
        dit, world = self.preset.dit, self.preset.world
        if (dit.height, dit.width) != (world.resolution, world.resolution):
            raise ConfigError(f"sprites preset '{size}': DiT {dit.height}x{dit.width} != world resolution "
                              f"{world.resolution}")
        if world.frames % dit.frames_per_chunk:
            raise ConfigError(f"sprites preset '{size}': frames={world.frames} is not a multiple of "
                              f"frames_per_chunk={dit.frames_per_chunk}")
        self.data = SpritesData(world)
        self._loaded: dict[str, nn.Module] = {}

    # -- shapes and prompts -------------------------------------------------------------------------

    @property
    def video_shape(self) -> VideoShape:
        dit = self.preset.dit
        return VideoShape(self.preset.world.frames, dit.channels, dit.height, dit.width, dit.frames_per_chunk)

    @property
    def guidance(self) -> Guidance:
        return self._guidance

    def prompts(self, split: str) -> list[str]:
        if split == "train":
            rng = np.random.default_rng(0)
            return [scene.prompt for scene in self.data.suite.sample(TRAIN_PROMPTS, rng, "train")]
        return self.data.suite.prompts(split)

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(encode_batch(list(prompts))[0])

    def null_condition(self, batch: int) -> torch.Tensor:
        return null_tokens(batch)

    def real_videos(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, list[str]]:
        videos, _, _, prompts = self.data.batch(n, seed, split)
        return videos, prompts

    def real_videos_of(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        return torch.from_numpy(to_model(self.data.render_prompts(list(prompts), seed).videos))

    def make_backbone(self) -> nn.Module:
        return SpritesDiT(self.preset.dit)

    def freeze_text_encoder(self, model: nn.Module) -> nn.Module:
        """Students keep the teacher's prompt encoder as it is when the teacher kept it frozen: trained by a
        distillation loss it could merge "left" with "right" again (see FlowRecipe.freeze_prompt_encoder)."""
        if self.preset.teacher.freeze_prompt_encoder:
            model.prompt.requires_grad_(False)
        return model

    def sample_teacher(self, teacher: nn.Module, prompts: Sequence[str], seed: int,
                       steps: int | None = None) -> torch.Tensor:
        """The teacher's Euler samples [n, F, C, H, W] with the world's CFG (the teacher row of a table)."""
        from harness.diffusion.ode import sample_ode
        from harness.diffusion.sampling import noise_source

        noise = noise_source(seed).normal(self.video_shape.tensor_shape(len(prompts)))  # int or per-video
        return sample_ode(teacher, noise, self.encode_prompts(prompts), self.null_condition(len(prompts)),
                          steps=steps or self.sample_steps, shift=self.sample_shift,
                          guidance_scale=self.guidance.scale, cfg_form_name=self.guidance.form).x0

    def decode(self, x: torch.Tensor) -> np.ndarray:
        return from_model(x.detach().float().cpu().numpy())

    # -- cached artifacts ---------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        return {"world": asdict(self.preset.world), "dit": asdict(self.preset.dit)}

    def teacher_artifact(self, stages: StageProvider) -> Any:
        config = {**self._identity(), "recipe": asdict(self.preset.teacher)}

        def build(path: Path) -> None:
            shipped = find_shipped_teacher(self.preset.world, self.preset.dit, self.preset.teacher)
            if shipped is not None:  # the same recipe's weights, trained by the project's command
                copy_shipped(shipped, path)
                return
            train_teacher(path, self.preset.world, self.preset.dit, self.preset.teacher,
                          progress=lambda s, n: stages.progress("teacher", s, n))

        return stages.stage("sprites-teacher", config, build, version=TEACHER_VERSION)

    def teacher(self, stages: StageProvider) -> nn.Module:
        return self._load(self.teacher_artifact(stages), "teacher")

    def causal_init(self, stages: StageProvider) -> nn.Module:
        teacher_art = self.teacher_artifact(stages)
        recipe, guidance = self.preset.causal_init, self.guidance
        config = {**self._identity(), "recipe": asdict(recipe), "guidance": asdict(guidance)}

        def build(path: Path) -> None:
            teacher = self._load(teacher_art, "teacher")
            build_causal_init(path, teacher, self.preset.world, recipe, guidance,
                              progress=lambda s, n: stages.progress("causal init", s, n))

        art = stages.stage("sprites-causal-init", config, build, inputs=[teacher_art],
                           version=CAUSAL_INIT_VERSION)
        return self._load(art, "causal_init")

    def diffusion_forcing(self, stages: StageProvider) -> nn.Module:
        """The SkyReels-V2-style causal model trained with diffusion forcing (sampled with many steps)."""
        teacher_art = self.teacher_artifact(stages)
        recipe = self.preset.diffusion_forcing
        config = {**self._identity(), "recipe": asdict(recipe)}

        def build(path: Path) -> None:
            teacher = self._load(teacher_art, "teacher")
            build_diffusion_forcing(path, teacher, self.preset.world, recipe,
                                    progress=lambda s, n: stages.progress("diffusion forcing", s, n))

        art = stages.stage("sprites-diffusion-forcing", config, build, inputs=[teacher_art],
                           version=DIFFUSION_FORCING_VERSION)
        return self._load(art, "diffusion_forcing")

    def evaluator(self, stages: StageProvider) -> Evaluator:
        world, cfg = self.preset.world, self.preset.classifier
        config = {"world": asdict(world), "classifier": asdict(cfg)}
        art = stages.stage("sprites-classifier", config, lambda path: train_classifier(path, cfg, world),
                           version=CLASSIFIER_VERSION)
        return SpritesBench(world, classifier=load_classifier(art.path, world))

    def _load(self, artifact: Any, kind: str) -> nn.Module:
        """Load a checkpoint once per process; callers get a fresh copy they may train."""
        path = str(artifact.path)
        if path not in self._loaded:
            self._loaded[path] = load_model(artifact.path, self.preset.dit, kind=kind).requires_grad_(False)
        model = SpritesDiT(self.preset.dit)
        model.load_state_dict(self._loaded[path].state_dict())
        return model.eval().requires_grad_(False)

    def metric_names(self) -> set[str]:
        """sprites-bench's dimensions, its aggregates and the classifier's distribution scores."""
        from harness.worlds.sprites.scoring import SCORING_TABLE

        return set(SCORING_TABLE) | {"total", "quality", "semantic", "frechet_distance", "diversity",
                                     "reference_diversity", "diversity_ratio"}

    def config(self) -> dict[str, Any]:
        return {"world": self.name, "size": self.size, **self._identity(),
                "teacher": asdict(self.preset.teacher), "causal_init": asdict(self.preset.causal_init),
                "diffusion_forcing": asdict(self.preset.diffusion_forcing),
                "classifier": asdict(self.preset.classifier), "guidance": asdict(self.guidance),
                "sample_steps": self.sample_steps, "sample_shift": self.sample_shift}


def _with_steps(recipe, steps: int | None, field: str):
    if steps is None:
        return recipe
    if steps < 1:
        raise ConfigError(f"SpritesWorld.{field} must be >= 1, got {steps}")
    return dataclasses.replace(recipe, steps=steps)
