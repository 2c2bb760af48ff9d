"""The toy world's evaluator: one dimension, enough to run every evaluation path.

An evaluator names its dimensions and their groups (``quality`` / ``semantic``), scores a batch of uint8
videos into raw per-dimension numbers, and aggregates raw numbers into the scores a report ranks by
(``total`` at least).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np


class MeanBrightness:
    """The mean pixel value in [0, 1]; its total is that value."""

    name = "mean-brightness"
    dimensions = ("brightness",)
    groups: ClassVar[Mapping[str, str]] = MappingProxyType({"brightness": "quality"})

    def score(self, videos: np.ndarray, prompts: list[str]) -> dict[str, float]:
        return {"brightness": float(np.asarray(videos, dtype=np.float64).mean() / 255.0)}

    def aggregate(self, raw: Mapping[str, float]) -> dict[str, float]:
        return {"total": raw["brightness"]}
