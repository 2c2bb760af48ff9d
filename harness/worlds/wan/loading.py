"""Diffusers-format Wan checkpoints (a hub id or a folder) into a :class:`WanBackbone`, strictly.

``from_pretrained`` only warns about missing or unexpected tensors and a foreign ``_class_name``
(FastVideo's ``CausalWanTransformer3DModel`` folders carry one), and would leave a missing tensor at
its random initialisation. So the safetensors headers are checked first against the model the
folder's ``config.json`` describes: every tensor present, none extra, same shapes; each problem is one
:class:`CheckpointError` naming the file. Then ``from_pretrained`` loads (it needs accelerate).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from harness.errors import CheckpointError, ConfigError, require
from harness.worlds.wan import deps
from harness.worlds.wan.config import WanConfig

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
CONFIG_NAME = "config.json"


def resolve_folder(source: str | Path, subfolder: str | None = None) -> Path:
    """The local folder holding ``config.json`` and the weights.

    A local path is used as is (its ``transformer/`` subfolder when it is a whole pipeline); anything
    else is a hub id whose ``subfolder`` (default ``transformer``) is fetched into the hub cache.
    """
    path = Path(source).expanduser()
    if path.exists():
        folder = path / subfolder if subfolder else path
        if not subfolder and not (folder / CONFIG_NAME).is_file() and (folder / "transformer" / CONFIG_NAME).is_file():
            folder = folder / "transformer"
        if not (folder / CONFIG_NAME).is_file():
            raise CheckpointError(f"{folder}: no {CONFIG_NAME} (not a diffusers model folder)")
        return folder
    hub = require("huggingface_hub", extra="wan", feature="fetching Wan checkpoints from the hub")
    subfolder = subfolder or "transformer"
    try:
        root = hub.snapshot_download(str(source), allow_patterns=[f"{subfolder}/*"])
    except Exception as exc:  # noqa: BLE001 - network, auth, unknown repo: all end the same way
        raise CheckpointError(f"{source}: cannot fetch '{subfolder}/' from the hub ({type(exc).__name__}: {exc})"
                              ) from None
    return resolve_folder(root, subfolder)


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a folder: one file, or the shards its index names."""
    single, index = folder / WEIGHTS_NAME, folder / INDEX_NAME
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{index}: unreadable shard index ({exc})") from None
        return [folder / name for name in shards]
    raise CheckpointError(f"{folder}: no {WEIGHTS_NAME} or {INDEX_NAME} (only safetensors weights are loaded)")


def read_config(folder: Path) -> dict:
    path = folder / CONFIG_NAME
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return config


def check_weights(folder: Path, expected: dict[str, torch.Size]) -> None:
    """Every expected tensor in the folder's safetensors with its shape, and nothing else."""
    from safetensors import safe_open

    files = weight_files(folder)
    found: dict[str, tuple[Path, list[int]]] = {}
    for file in files:
        if not file.is_file():
            raise CheckpointError(f"{file}: missing shard")
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open is no dict
                    found[key] = (file, list(handle.get_slice(key).get_shape()))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for corrupt headers
            raise CheckpointError(f"{file}: unreadable safetensors file ({exc})") from None
    named = files[0] if len(files) == 1 else folder / INDEX_NAME
    for key, shape in expected.items():
        if key not in found:
            raise CheckpointError(f"{named}: tensor '{key}' missing")
        file, got = found[key]
        if got != list(shape):
            raise CheckpointError(f"{file}: tensor '{key}' has shape {got}, model expects {list(shape)}")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise CheckpointError(f"{found[extra[0]][0]}: unexpected tensor '{extra[0]}' ({len(extra)} in all)")


def expected_tensors(config: WanConfig) -> dict[str, torch.Size]:
    """Names and shapes of the diffusers Wan state dict a config describes (built on the meta device)."""
    with torch.device("meta"):
        model = deps.diffusers().WanTransformer3DModel(**config.diffusers_kwargs())
    return {k: v.shape for k, v in model.state_dict().items()}


def load_wan_backbone(
    source: str | Path,
    *,
    subfolder: str | None = None,
    dtype: torch.dtype | None = None,
    frames_per_chunk: int = 3,
):
    """A :class:`WanBackbone` around the diffusers checkpoint at ``source`` (hub id or folder)."""
    from harness.worlds.wan.backbone import WanBackbone

    folder = resolve_folder(source, subfolder)
    raw = read_config(folder)
    try:
        config = WanConfig.from_diffusers(raw, frames_per_chunk=frames_per_chunk)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / CONFIG_NAME}: {exc}") from None
    check_weights(folder, expected_tensors(config))
    deps.accelerate()
    model_class = deps.diffusers().WanTransformer3DModel
    transformer = model_class.from_pretrained(str(folder), torch_dtype=dtype)
    return WanBackbone(config, transformer=transformer)
