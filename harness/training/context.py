"""What a training loop may touch: its folder, seed, logger, progress, device and the evaluation hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class TrainContext:
    """What a method's training loop may touch.

    ``workdir`` holds its checkpoints (``workdir/checkpoints``) so an interrupted distillation resumes
    exactly; ``log`` records a metrics row (and fails on NaN/Inf); ``progress`` reports the step;
    ``evaluate`` scores a model at a schedule on a fixed set, for evaluation while training
    (:mod:`harness.training.evaluation`; None where the caller offers none).
    """

    workdir: Path | None  # None: a loop that keeps no checkpoints
    seed: int
    log: Callable[[Mapping[str, float], int], None]
    progress: Callable[..., None] = lambda **_: None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    evaluate: Any = None  # harness.training.evaluation.Evaluate
