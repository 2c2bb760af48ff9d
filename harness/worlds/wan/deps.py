"""The optional packages of the Wan backbone, imported lazily with one actionable line when missing.

diffusers provides ``WanTransformer3DModel``; accelerate is what ``from_pretrained`` needs (without it
diffusers refuses models with fp32-kept modules); transformers only where UMT5 prompts are encoded.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from harness.errors import require

# The minor version the backbone is tested against (pyproject extra `wan`).
DIFFUSERS_RANGE = ">=0.42,<0.43"


def diffusers(submodule: str = "") -> ModuleType:
    """``diffusers`` or one of its submodules (``"models.transformers.transformer_wan"``)."""
    module = require("diffusers", extra="wan", feature="the Wan backbone")
    return importlib.import_module(f"diffusers.{submodule}") if submodule else module


def accelerate() -> ModuleType:
    return require("accelerate", extra="wan", feature="loading Wan checkpoints with from_pretrained")


def transformers() -> ModuleType:
    return require("transformers", feature="encoding prompts with UMT5 (untested extra; any recent 4.x/5.x)")
