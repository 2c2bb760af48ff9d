"""Model weights as safetensors: written whole, read back strictly, never by unpickling objects."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import CheckpointError
from harness.io.atomic import default_file_mode


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """The model's state dict as a safetensors file (tensors made contiguous, on the CPU)."""
    from safetensors.torch import save_file

    path = Path(path)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path))
    # safetensors creates the file 0600; weights in a shared cache or a repository should read like any file
    os.chmod(path, default_file_mode())
    return path


def read_weights(path: str | Path, model: nn.Module, *, hint: str = "") -> dict[str, torch.Tensor]:
    """The tensors of ``path`` checked against ``model``: every key present, no extra, same shapes.

    Each problem is one :class:`CheckpointError` naming the file and the tensor; ``hint`` says how to
    rebuild a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing{f' ({hint})' if hint else ''}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from None
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{path}: tensor '{key}' missing")
        if state[key].shape != tensor.shape:
            raise CheckpointError(f"{path}: tensor '{key}' has shape {list(state[key].shape)}, "
                                  f"model expects {list(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor '{extra[0]}'")
    return state


def load_weights(model: nn.Module, path: str | Path, *, hint: str = "") -> nn.Module:
    """Load ``path`` into ``model`` strictly (see :func:`read_weights`)."""
    model.load_state_dict(read_weights(path, model, hint=hint))
    return model


def read_meta(path: str | Path, expected_format: str, *, hint: str = "") -> dict[str, Any]:
    """The JSON written beside a weights file, checked for its format tag; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing{f' ({hint})' if hint else ''}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: format is {found!r}, expected {expected_format!r}")
    return meta
