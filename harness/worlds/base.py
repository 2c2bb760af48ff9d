"""The World interface: everything the methods and the pipeline need to know about a domain.

A world bundles prompts, real data (where it has data), the backbone architecture, the teacher
recipe (a cached bidirectional model), the causal initialisation of the student (a cached causal
model), decoding to frames and its evaluator. The embedded ``sprites`` world implements it on a CPU;
a Wan world implements it on GPUs with the same methods and pipeline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError


class StageProvider(Protocol):
    """What a world needs from the engine to cache its artifacts (``RunContext`` provides it)."""

    def stage(self, name: str, config: Mapping[str, Any], build: Callable[[Path], Any],
              inputs: Iterable[Any] = (), version: int = 1) -> Any: ...

    def progress(self, stage: str | None = None, step: int | None = None, total: int | None = None) -> None: ...


@dataclass(frozen=True)
class VideoShape:
    """Shape of one video in the space the backbone works in (latents or pixels)."""

    frames: int
    channels: int
    height: int
    width: int
    frames_per_chunk: int

    @property
    def num_chunks(self) -> int:
        return self.frames // self.frames_per_chunk

    def tensor_shape(self, batch: int) -> tuple[int, int, int, int, int]:
        return (batch, self.frames, self.channels, self.height, self.width)


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance of the teacher: the scale and the form it is written in."""

    scale: float = 3.0
    form: str = "standard"  # harness.diffusion.conventions CFG forms: "standard" | "self_forcing"


class Evaluator(Protocol):
    """Scores videos; ``aggregate`` turns raw per-dimension scores into quality / semantic / total.

    ``groups`` declares each dimension's group (``quality`` or ``semantic``, the VBench split); it goes
    into every result, so a report groups a world's columns without knowing the world."""

    name: str
    dimensions: Sequence[str]
    groups: Mapping[str, str]

    def score(self, videos: np.ndarray, prompts: list[str]) -> dict[str, float]: ...

    def aggregate(self, raw: Mapping[str, float]) -> dict[str, float]: ...


class World(ABC):
    """A domain the methods distill in. Constructors are cheap; artifacts are built on request."""

    name: str = "world"
    # Bumped when what a subclass computes for the same config changes (data, teacher use, decoding,
    # evaluation); enters the hash of every run and distillation it is part of (harness/engine/versions.py).
    version: ClassVar[int] = 1

    @property
    @abstractmethod
    def video_shape(self) -> VideoShape:
        """Shape of the videos the backbone generates."""

    @property
    @abstractmethod
    def guidance(self) -> Guidance:
        """The teacher's CFG, used by every method that queries the teacher."""

    @abstractmethod
    def prompts(self, split: str) -> list[str]:
        """Prompt list of a split (``train`` or ``eval``)."""

    @abstractmethod
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """The backbone's ``cond`` input for these prompts."""

    @abstractmethod
    def null_condition(self, batch: int) -> torch.Tensor:
        """The unconditional ``cond`` (the empty prompt) for CFG."""

    @abstractmethod
    def real_videos(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, list[str]]:
        """``n`` real videos [n, F, C, H, W] in the backbone's space, with their prompts."""

    @abstractmethod
    def real_videos_of(self, prompts: Sequence[str], seed: int) -> torch.Tensor:
        """Real videos [len(prompts), F, C, H, W] showing exactly these prompts (repeats give distinct
        videos): the real-data row and the distribution reference need the generated rows' prompt mix,
        or per-prompt diversity is undefined for them."""

    @abstractmethod
    def make_backbone(self) -> nn.Module:
        """A freshly initialised backbone (the same architecture serves teacher, student and critic)."""

    @abstractmethod
    def teacher(self, stages: StageProvider) -> nn.Module:
        """The trained bidirectional teacher (a cached artifact), in eval mode."""

    @abstractmethod
    def causal_init(self, stages: StageProvider) -> nn.Module:
        """The causal student's initialisation (a cached artifact)."""

    # -- what the reference rows call (a world that cannot provide one says so when the row runs) ------

    def sample_teacher(self, teacher: nn.Module, prompts: Sequence[str], seed: Any,
                       steps: int | None = None) -> torch.Tensor:
        """The teacher's own many-step samples [n, F, C, H, W] with the world's CFG: the teacher rows.
        ``seed`` is an int or a per-video noise source (:func:`harness.diffusion.sampling.noise_source`)."""
        raise ConfigError(f"the '{self.name}' world cannot sample its teacher: it has no teacher reference row")

    def diffusion_forcing(self, stages: StageProvider) -> nn.Module:
        """A many-step causal model trained with diffusion forcing (SkyReels-V2 style): its reference row."""
        raise ConfigError(f"the '{self.name}' world has no diffusion-forcing model: drop that reference row")

    def freeze_text_encoder(self, model: nn.Module) -> nn.Module:
        """Mark the parameters of ``model`` that distillation leaves as they are (``requires_grad`` False) and
        return it. The papers train the DiT and keep the text encoder (umT5) fixed; a world whose backbone
        holds its own prompt encoder says so here. Default: every parameter trains."""
        return model

    def critic_init(self, teacher: nn.Module) -> nn.Module:
        """The fake score's initialisation: a copy of the teacher (DMD). A world whose teacher is larger
        than the student overrides it (Self Forcing: 14B teacher, 1.3B fake score)."""
        import copy

        return copy.deepcopy(teacher)

    @property
    def device(self) -> torch.device:
        """Where this world's models train and sample: the CPU unless the world says otherwise."""
        return torch.device("cpu")

    @abstractmethod
    def decode(self, x: torch.Tensor) -> np.ndarray:
        """Backbone-space videos [n, F, C, H, W] → uint8 frames [n, F, H, W, 3]."""

    @abstractmethod
    def evaluator(self, stages: StageProvider) -> Evaluator:
        """The world's evaluator (may build cached artifacts such as a feature classifier)."""

    def metric_names(self) -> set[str] | None:
        """Names of the scores the world's evaluator produces (for checking sweep objectives), if known."""
        return None

    def config(self) -> dict[str, Any]:
        """The world's identity for stage keys; subclasses return their full config."""
        return {"world": self.name}
