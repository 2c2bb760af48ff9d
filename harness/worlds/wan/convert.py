"""Original Self Forcing / CausVid ``.pt`` checkpoints → a diffusers-format Wan folder.

Those files are a dict with ``generator_ema`` and/or ``generator``, each a state dict whose keys are
``model.`` + the original Wan names (``blocks.0.self_attn.q.weight``, ``head.head.weight``, ...). The
rename to diffusers names is a table per component; the original ``norm3`` (the cross-attention norm,
the only block norm with weights) is diffusers' ``norm2``. The result must match the target config
exactly (strict key and shape check, one line naming what is missing or extra), and is written as
``diffusion_pytorch_model.safetensors`` + ``config.json``, loadable by :func:`load_wan_backbone`.
Files are read with ``torch.load(weights_only=True)``: no pickled code runs.

    python -m harness.worlds.wan.convert SRC.pt OUT_DIR [--key generator_ema] [--preset wan2.1-t2v-1.3b]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from harness.errors import CheckpointError, HarnessError
from harness.worlds.wan import deps
from harness.worlds.wan.config import WanConfig
from harness.worlds.wan.loading import CONFIG_NAME, WEIGHTS_NAME, expected_tensors

# original name → diffusers name, for the top level and inside ``blocks.N.``; matched on whole components
TOP_LEVEL_RENAMES: tuple[tuple[str, str], ...] = (
    ("patch_embedding", "patch_embedding"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("head.head", "proj_out"),
    ("head.modulation", "scale_shift_table"),
)
BLOCK_RENAMES: tuple[tuple[str, str], ...] = (
    *((f"self_attn.{p}", f"attn1.to_{p}") for p in "qkv"),
    ("self_attn.o", "attn1.to_out.0"),
    ("self_attn.norm_q", "attn1.norm_q"),
    ("self_attn.norm_k", "attn1.norm_k"),
    *((f"cross_attn.{p}", f"attn2.to_{p}") for p in "qkv"),
    ("cross_attn.o", "attn2.to_out.0"),
    ("cross_attn.norm_q", "attn2.norm_q"),
    ("cross_attn.norm_k", "attn2.norm_k"),
    ("norm3", "norm2"),  # cross-attention norm (affine)
    ("norm2", "norm3"),  # feed-forward norm (no weights in either naming)
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
    ("modulation", "scale_shift_table"),
)
PREFIXES = ("model.diffusion_model.", "model.", "module.", "_fsdp_wrapped_module.")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _rename_in(name: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for old, new in table:
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


def rename_key(key: str) -> str:
    """The diffusers name of one original Wan tensor name (unknown names come back unchanged)."""
    for prefix in PREFIXES:
        key = key.removeprefix(prefix)
    block = _BLOCK.match(key)
    if block:
        renamed = _rename_in(block.group(2), BLOCK_RENAMES)
        return key if renamed is None else f"blocks.{block.group(1)}.{renamed}"
    renamed = _rename_in(key, TOP_LEVEL_RENAMES)
    return key if renamed is None else renamed


def convert_state_dict(
    original: Mapping[str, torch.Tensor], config: WanConfig, *, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Rename and check strictly against ``config``; one CheckpointError lists what does not fit."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in original.items():
        if key.endswith("freqs"):  # RoPE tables some versions keep as tensors; diffusers recomputes them
            continue
        converted[rename_key(key)] = tensor
    expected = expected_tensors(config)
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = sorted(k for k in set(expected) & set(converted) if converted[k].shape != expected[k])
    if missing or unexpected or wrong:
        parts = [f"{label} {_few(names)}" for label, names in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if names]
        raise CheckpointError(f"{source}: does not match the Wan config ({'; '.join(parts)})")
    return converted


def _few(names: list[str], shown: int = 3) -> str:
    more = f" +{len(names) - shown} more" if len(names) > shown else ""
    return "[" + ", ".join(names[:shown]) + more + "]"


def read_original(path: str | Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """The generator state dict of a Self Forcing / CausVid file (``generator_ema`` first by default)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    data = None
    for mmap in (True, False):  # memory-map the zip format; legacy pickles can only be read whole
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception as exc:  # noqa: BLE001 - unpickling fails in many types, all mean the same here
            error = exc
    if data is None:
        raise CheckpointError(f"{path}: not a weights-only torch checkpoint ({type(error).__name__})")
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: expected a dict, found {type(data).__name__}")
    candidates = (key,) if key else ("generator_ema", "generator")
    for name in candidates:
        if name in data and isinstance(data[name], Mapping):
            return dict(data[name])
    if key is None and data and all(torch.is_tensor(v) for v in data.values()):
        return dict(data)  # already a bare state dict
    raise CheckpointError(f"{path}: no state dict under {list(candidates)} (top-level keys: {sorted(data)[:6]})")


def write_diffusers_folder(state: Mapping[str, torch.Tensor], config: WanConfig, out_dir: str | Path) -> Path:
    """``config.json`` + ``diffusion_pytorch_model.safetensors``, as diffusers' ``save_pretrained`` lays out."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        model = deps.diffusers().WanTransformer3DModel(**config.diffusers_kwargs())
    model.save_config(str(out))
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    return out


def convert_checkpoint(
    src: str | Path,
    out_dir: str | Path,
    *,
    key: str | None = None,
    config: WanConfig | str = "wan2.1-t2v-1.3b",
    dtype: torch.dtype | None = None,
) -> Path:
    """Convert ``src`` into a diffusers folder at ``out_dir``; returns the folder."""
    config = WanConfig.preset(config) if isinstance(config, str) else config
    state = convert_state_dict(read_original(src, key), config, source=str(src))
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    return write_diffusers_folder(state, config, out_dir)


DTYPES = {"keep": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.worlds.wan.convert", description=__doc__.split("\n")[0])
    parser.add_argument("src", help="Self Forcing / CausVid .pt file")
    parser.add_argument("out_dir", help="folder to write config.json and the safetensors weights to")
    parser.add_argument("--key", default=None, help="state dict inside the file (default: generator_ema, then generator)")
    parser.add_argument("--preset", default="wan2.1-t2v-1.3b", help="WanConfig preset the weights must match")
    parser.add_argument("--dtype", default="keep", choices=sorted(DTYPES))
    args = parser.parse_args(argv)
    try:
        out = convert_checkpoint(args.src, args.out_dir, key=args.key, config=args.preset, dtype=DTYPES[args.dtype])
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {out / WEIGHTS_NAME} and {out / CONFIG_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
