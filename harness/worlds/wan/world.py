"""``WanWorld``: Wan2.1 backbones behind the World interface, for GPUs, with a ``tiny`` preset for CPU tests.

The same methods, pipelines and studies as the sprites world, on the models the paper used: a 1.3B causal
student and critic, the 14B bidirectional teacher as the real score (Self Forcing's recipe,
docs/references.md#self-forcings-training-recipe). Every input is named by the study; nothing is
downloaded unless a hub id is given, and building a world reads nothing (``harness validate`` runs
anywhere): files are opened the first time something asks for them.

Each part is a file the study names, or — only for the ``tiny`` preset — a stand-in built locally:

================  ==========================================  ==========================================
part              real scale (setting)                        tiny preset, when the setting is empty
================  ==========================================  ==========================================
prompts           ``train_prompts`` / ``eval_prompts`` files  a built-in list of 8 / 4 scene prompts
text conditions   ``text_embeddings`` (UMT5 store)            hashed random rows (``conditioning.py``)
teacher           ``teacher`` (diffusers id or folder)        a random tiny model, saved once as a stage
causal init       ``causal_init`` (converted ``ode_init``)    the tiny teacher's weights
critic init       ``critic`` (Self Forcing: the 1.3B base)    a copy of the teacher (also when unset)
decode            ``vae`` (pipeline id or folder)             a tiny ``AutoencoderKLWan``, seeded random
evaluator         VBench backend on the extended prompts      ``wan-tiny-bench`` (``evaluator.py``)
real videos       ``real_latents`` folder (DMD only)          seeded Gaussian latents
diffusion forcing ``diffusion_forcing`` (SkyReels-V2 DF)      the tiny teacher's weights
================  ==========================================  ==========================================

A missing setting is one :class:`ConfigError` naming it when the part is first needed; a missing
local folder is one :class:`CheckpointError` naming the setting and the path.

Precision: trained models (student, critic) hold fp32 master weights; under ``train.parallel: fsdp``
on GPUs they compute in bf16 (:mod:`harness.parallel.fsdp`). The frozen teacher may be loaded in bf16
(``teacher_dtype``) to halve its memory: 28 GiB for the 14B.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.errors import CheckpointError, ConfigError
from harness.evaluation.vbench import VBENCH_KEYS
from harness.worlds.base import Evaluator, Guidance, StageProvider, VideoShape, World
from harness.worlds.wan.conditioning import HashedConditions, StoredConditions, TextConditions
from harness.worlds.wan.config import WanConfig
from harness.worlds.wan.prompts import WAN_NEGATIVE_PROMPT, PromptLists
from harness.worlds.wan.sources import checked_source

LOCAL_PRESETS = frozenset({"tiny"})  # presets whose unset parts are built locally (no files exist for them)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
EVALUATORS = ("auto", "vbench", "tiny-bench")
TEACHER_FOLDER = "transformer"
# Version of the wan-tiny-teacher stage (tiny_teacher_artifact): bump it when it builds something else
# for the same config, so cached ones are rebuilt (the rule: harness/engine/versions.py).
STAGE_VERSION = 1


@dataclass(frozen=True)
class VBenchSettings:
    """How the VBench backend runs (see :class:`harness.worlds.wan.evaluator.VBenchEvaluator`)."""

    dimensions: tuple[str, ...] = VBENCH_KEYS
    python: str | None = None
    full_info: str | None = None
    device: str = "cuda"
    work_dir: str | None = None


class WanWorld(World):
    """Wan2.1 text-to-video latents in chunks of 3 frames; see the module docstring.

    Args:
        preset: ``WanConfig`` preset of the student and critic (``tiny`` | ``wan2.1-t2v-1.3b``); it fixes
            the latent video shape (1.3B: 21×16×60×104, i.e. 81 frames of 480×832).
        teacher: the bidirectional real score, a diffusers Wan id or folder (the paper: 14B).
        causal_init: the student's initialisation (a folder written by ``python -m
            harness.worlds.wan.convert ode_init.pt OUT``, or a diffusers model).
        critic: the fake score's initialisation; None copies the teacher (Self Forcing: the 1.3B base).
        text_embeddings: store of UMT5 embeddings of every train / eval prompt and the negative prompt.
        train_prompts, eval_prompts: prompt files (Self Forcing: VidProM extended; VBench extended).
        vae: a Wan diffusers pipeline (id or folder with ``vae/``) or a bare ``AutoencoderKLWan`` folder.
        real_latents: folder of real latent clips (``latents.py``); only CausVid-style DMD needs it.
        diffusion_forcing: a causal diffusers Wan for Table 1's SkyReels-V2 row.
        negative_prompt: the "unconditional" prompt of CFG (Wan's default, as Self Forcing).
        guidance_scale, cfg_form: the teacher's CFG in the real score. Self Forcing: 3.0 in its
            ``cond + g·(cond − uncond)`` form (= 4.0 standard).
        sample_steps, sample_shift, sample_guidance_scale: the teacher row's Euler sampler; its CFG scale
            (same form) defaults to ``guidance_scale``.
        sample_batch: videos per batch when this world samples the teacher (memory, not results).
        teacher_dtype: ``fp32`` | ``bf16`` | ``fp16`` weights of the frozen teacher.
        gradient_checkpointing: recompute blocks in backward for the trained models (Self Forcing: on).
        device: ``auto`` (this rank's GPU when there is one) or a torch device string.
        evaluator: ``auto`` (``tiny-bench`` for the tiny preset, else ``vbench``), ``vbench``, ``tiny-bench``.
        vbench: the VBench backend's settings (default :class:`VBenchSettings`).
        seed: seed of the tiny preset's random teacher.
    """

    name = "wan"

    def __init__(
        self,
        preset: str = "tiny",
        teacher: str | None = None,
        causal_init: str | None = None,
        critic: str | None = None,
        text_embeddings: str | None = None,
        train_prompts: str | None = None,
        eval_prompts: str | None = None,
        vae: str | None = None,
        real_latents: str | None = None,
        diffusion_forcing: str | None = None,
        negative_prompt: str = WAN_NEGATIVE_PROMPT,
        guidance_scale: float = 3.0,
        cfg_form: str = "self_forcing",
        sample_steps: int = 50,
        sample_shift: float = 5.0,
        sample_guidance_scale: float | None = None,
        sample_batch: int = 1,
        teacher_dtype: str = "fp32",
        gradient_checkpointing: bool = False,
        device: str = "auto",
        evaluator: str = "auto",
        vbench: VBenchSettings | None = None,
        seed: int = 0,
    ) -> None:
        from harness.diffusion.conventions import cfg_form as lookup_form

        lookup_form(cfg_form)  # unknown forms fail here, naming the choices
        self.backbone_config = WanConfig.preset(preset)
        self.preset, self.local = preset, preset in LOCAL_PRESETS
        if teacher_dtype not in DTYPES:
            raise ConfigError(
                f"WanWorld.teacher_dtype '{teacher_dtype}' is unknown; choose one of {sorted(DTYPES)}")
        if evaluator not in EVALUATORS:
            raise ConfigError(
                f"WanWorld.evaluator '{evaluator}' is unknown; choose one of {list(EVALUATORS)}")
        if device != "auto":
            try:
                torch.device(device)
            except RuntimeError:
                raise ConfigError(f"WanWorld.device '{device}' is not a torch device (e.g. cpu, cuda:0) "
                                  "or 'auto'") from None
        if sample_steps < 1 or sample_batch < 1:
            raise ConfigError("WanWorld.sample_steps and WanWorld.sample_batch must be >= 1")
        self.sources = {"teacher": teacher, "causal_init": causal_init, "critic": critic, "vae": vae,
                        "diffusion_forcing": diffusion_forcing}
        self.text_embeddings, self.real_latents = text_embeddings, real_latents
        self.negative_prompt = negative_prompt
        self._guidance = Guidance(float(guidance_scale), cfg_form)
        scale = guidance_scale if sample_guidance_scale is None else sample_guidance_scale
        self.sample_guidance = Guidance(float(scale), cfg_form)
        self.sample_steps, self.sample_shift, self.sample_batch = sample_steps, sample_shift, sample_batch
        self.teacher_dtype, self.gradient_checkpointing = teacher_dtype, gradient_checkpointing
        self.device_setting, self.evaluator_name = device, evaluator
        self.vbench = vbench or VBenchSettings()
        self.seed = seed
        self.prompt_lists = PromptLists(train_prompts, eval_prompts, builtin=self.local)
        self.text = self._text_conditions()
        self._decoder: Any = None
        self._real: Any = None

    def _text_conditions(self) -> TextConditions:
        cfg = self.backbone_config
        if self.text_embeddings or not self.local:
            return StoredConditions(self.text_embeddings, cfg.text_dim)
        return HashedConditions(cfg.text_dim, cfg.text_len)

    # -- shapes, prompts, conditions ----------------------------------------------------------------

    @property
    def video_shape(self) -> VideoShape:
        c = self.backbone_config
        return VideoShape(c.latent_frames, c.in_channels, c.latent_height, c.latent_width, c.frames_per_chunk)

    @property
    def guidance(self) -> Guidance:
        return self._guidance

    @property
    def device(self) -> torch.device:
        """This rank's GPU under ``auto`` when CUDA is there (torchrun sets LOCAL_RANK), else the CPU."""
        if self.device_setting != "auto":
            return torch.device(self.device_setting)
        from harness.parallel.ranks import device

        return device()

    def prompts(self, split: str) -> list[str]:
        return self.prompt_lists.get(split)

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.text.embed(list(prompts))

    def null_condition(self, batch: int) -> torch.Tensor:
        return self.text.embed([self.negative_prompt]).expand(batch, -1, -1).contiguous()

    # -- real videos --------------------------------------------------------------------------------

    def _latents(self) -> Any:
        if self._real is None:
            from harness.worlds.wan.latents import LatentFolder, NoiseLatents

            shape = self.video_shape
            dims = (shape.frames, shape.channels, shape.height, shape.width)
            if self.real_latents:
                self._real = LatentFolder(self.real_latents, dims)
            elif self.local:
                self._real = NoiseLatents(dims)
            else:
                raise ConfigError("WanWorld.real_latents is not set: name a folder of latent clips "
                                  "(harness/worlds/wan/latents.py describes the format)")
        return self._real

    def real_videos(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, list[str]]:
        return self._latents().sample(n, seed, self.prompts(split))

    def real_videos_of(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        return self._latents().of(list(prompts), seed)

    # -- models -------------------------------------------------------------------------------------

    def make_backbone(self) -> nn.Module:
        from harness.worlds.wan.backbone import WanBackbone

        return WanBackbone(self.backbone_config).to(self.device)

    def _source(self, setting: str) -> str | None:
        value = self.sources[setting]
        return None if value is None else checked_source(value, setting)

    def _load(self, source: str, setting: str, dtype: torch.dtype, *, trained: bool) -> nn.Module:
        """A checkpoint as a WanBackbone on this world's device, checked against the world's latents."""
        from harness.worlds.wan.loading import load_wan_backbone

        model = load_wan_backbone(source, dtype=dtype, frames_per_chunk=self.backbone_config.frames_per_chunk)
        self._check_io(model.config, setting)
        if trained and self.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        return model.to(self.device)

    def _check_io(self, config: WanConfig, setting: str) -> None:
        ours = self.backbone_config
        for name in ("in_channels", "out_channels", "text_dim", "patch_size"):
            if getattr(config, name) != getattr(ours, name):
                raise CheckpointError(
                    f"WanWorld.{setting}: the checkpoint has {name}={getattr(config, name)}, "
                    f"the world's '{self.preset}' latents need {getattr(ours, name)}")

    def tiny_teacher_artifact(self, stages: StageProvider) -> Any:
        """The tiny preset's random teacher, written once as a diffusers folder (then loaded strictly)."""
        config = {"world": self.name, "preset": self.preset, "backbone": asdict(self.backbone_config),
                  "seed": self.seed}

        def build(path: Path) -> None:
            from harness.worlds.wan.backbone import WanBackbone
            from harness.worlds.wan.convert import write_diffusers_folder

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = WanBackbone(self.backbone_config)
            state = model.transformer.state_dict()
            write_diffusers_folder(state, self.backbone_config, path / TEACHER_FOLDER)

        return stages.stage("wan-tiny-teacher", config, build, version=STAGE_VERSION)

    def _local_or_missing(self, stages: StageProvider, setting: str, hint: str) -> str:
        """The tiny teacher's folder for an unset part of the tiny preset; else a ConfigError naming it."""
        if not self.local:
            raise ConfigError(f"WanWorld.{setting} is not set: {hint}")
        return str(Path(self.tiny_teacher_artifact(stages).path) / TEACHER_FOLDER)

    def teacher(self, stages: StageProvider) -> nn.Module:
        source = self._source("teacher") or self._local_or_missing(
            stages, "teacher", "name the bidirectional Wan (a folder, or a hub id such as "
            "Wan-AI/Wan2.1-T2V-14B-Diffusers)")
        model = self._load(source, "teacher", DTYPES[self.teacher_dtype], trained=False)
        return model.eval().requires_grad_(False)

    def causal_init(self, stages: StageProvider) -> nn.Module:
        source = self._source("causal_init") or self._local_or_missing(
            stages, "causal_init", "convert Self Forcing's ode_init.pt with "
            "`python -m harness.worlds.wan.convert ode_init.pt OUT_DIR` and name OUT_DIR")
        return self._load(source, "causal_init", torch.float32, trained=True).eval().requires_grad_(False)

    def critic_init(self, teacher: nn.Module) -> nn.Module:
        """The fake score's start: ``critic`` when set (Self Forcing: the 1.3B base), else the teacher
        in fp32."""
        source = self._source("critic")
        if source is not None:
            return self._load(source, "critic", torch.float32, trained=True)
        critic = copy.deepcopy(teacher).float()
        if self.gradient_checkpointing:
            critic.enable_gradient_checkpointing()
        return critic

    def diffusion_forcing(self, stages: StageProvider) -> nn.Module:
        """The many-step causal model of Table 1's SkyReels-V2 row, sampled chunk by chunk."""
        source = self._source("diffusion_forcing") or self._local_or_missing(
            stages, "diffusion_forcing", "name a causal diffusers Wan (e.g. a SkyReels-V2 DF folder)")
        model = self._load(source, "diffusion_forcing", torch.float32, trained=False)
        return model.eval().requires_grad_(False)

    def sample_teacher(self, teacher: nn.Module, prompts: list[str], seed: int,
                       steps: int | None = None) -> torch.Tensor:
        """The teacher's Euler samples [n, F, C, H, W] with the sampling CFG, ``sample_batch`` at a time."""
        from harness.diffusion.ode import sample_ode
        from harness.diffusion.sampling import noise_source

        noise = noise_source(seed).normal(self.video_shape.tensor_shape(len(prompts)))  # int or per-video
        device = next(teacher.parameters()).device
        out = []
        for start in range(0, len(prompts), self.sample_batch):
            part = list(prompts[start : start + self.sample_batch])
            guide = self.sample_guidance
            x0 = sample_ode(teacher, noise[start : start + len(part)].to(device),
                            self.encode_prompts(part).to(device), self.null_condition(len(part)).to(device),
                            steps=steps or self.sample_steps, shift=self.sample_shift,
                            guidance_scale=guide.scale, cfg_form_name=guide.form).x0
            out.append(x0.float().cpu())
        return torch.cat(out)

    # -- decoding and evaluation --------------------------------------------------------------------

    def decode(self, x: torch.Tensor) -> np.ndarray:
        if self._decoder is None:
            from harness.worlds.wan.vae import WanDecoder

            source = self._source("vae")
            if source is None and not self.local:
                raise ConfigError(
                    "WanWorld.vae is not set: name a Wan diffusers pipeline (id or folder with vae/)")
            self._decoder = WanDecoder(source, device=self.device)
        return self._decoder.decode(x.detach())

    def _evaluator_kind(self) -> str:
        if self.evaluator_name != "auto":
            return self.evaluator_name
        return "tiny-bench" if self.local else "vbench"

    def evaluator(self, stages: StageProvider) -> Evaluator:
        from harness.worlds.wan.evaluator import TinyBench, VBenchEvaluator

        if self._evaluator_kind() == "tiny-bench":
            return TinyBench()
        v = self.vbench
        return VBenchEvaluator(v.dimensions, extended_prompts=self.prompt_lists.files["eval"],
                               full_info=v.full_info, vbench_python=v.python, device=v.device,
                               work_dir=v.work_dir)

    def metric_names(self) -> set[str]:
        from harness.worlds.wan.evaluator import SCORES, TinyBench

        dims = TinyBench.dimensions if self._evaluator_kind() == "tiny-bench" else self.vbench.dimensions
        return set(dims) | set(SCORES)

    def config(self) -> dict[str, Any]:
        return {"world": self.name, "preset": self.preset, "backbone": asdict(self.backbone_config),
                **self.sources, "text_embeddings": self.text_embeddings, "real_latents": self.real_latents,
                "train_prompts": self.prompt_lists.files["train"],
                "eval_prompts": self.prompt_lists.files["eval"],
                "negative_prompt": self.negative_prompt, "guidance": asdict(self.guidance),
                "sample_guidance": asdict(self.sample_guidance), "sample_steps": self.sample_steps,
                "sample_shift": self.sample_shift, "teacher_dtype": self.teacher_dtype,
                "gradient_checkpointing": self.gradient_checkpointing, "evaluator": self._evaluator_kind(),
                "vbench": asdict(self.vbench), "seed": self.seed}
