"""Wan2.1 through diffusers behind the harness Backbone protocol (needs ``pip install '.[wan]'``).

Public API (imported lazily: ``import harness.worlds.wan`` works without diffusers; touching a name
that needs it raises one line saying what to install):

* ``WanConfig`` (``config.py``, no optional imports): diffusers architecture fields plus
  ``frames_per_chunk`` (3) and the latent geometry; presets ``tiny`` (2 layers, 2 heads × 8, text
  width 32, 6×8×8 latents), ``wan2.1-t2v-1.3b``, ``wan2.1-t2v-14b``. ``config.dim`` is the token width.
* ``WanBackbone(config | preset, transformer=None)`` (``backbone.py``): an ``nn.Module`` whose
  ``.transformer`` is an unmodified ``diffusers.WanTransformer3DModel`` (state-dict keys
  ``transformer.*``). ``forward(x_t [B,F,16,H,W], t (scalar | [B] | [B,F], = 1000·σ), cond [B,L,text_dim],
  *, kv_cache=None, causal=True, write_cache=False, return_features=False, start_frame=None)`` returns
  ``v = ε − x0`` [B,F,16,H,W] (x0 = x_t − σ·v, as ``harness.diffusion.conventions``), and with ``return_features``
  also a list with every block's output [B, F, P, D] (P = H/2·W/2 tokens per frame, D = ``config.dim``;
  ``depth`` and ``feature_dim`` give the sizes the ASD head needs). ``causal=False`` without a cache is
  stock diffusers bitwise. ``frames_per_chunk``; ``enable_gradient_checkpointing()`` (use this one,
  not the diffusers model's: the forward refuses the latter). ``build_wan_backbone(preset, **overrides)``,
  ``count_parameters(config)``.
* KV cache: any ``harness.diffusion.kv_cache.KVCache`` (what ``harness.diffusion.sampling`` creates); the
  t = 0 pass with ``write_cache=True`` appends detached post-RoPE keys/values [B, heads, tokens, head_dim];
  other passes only read. ``WanKVCache`` (``kv_cache.py``) adds ``truncate(frames)`` so a write with
  ``start_frame`` below the cached length replaces that chunk.
* Loading: ``load_wan_backbone(hub id | folder, subfolder=None, dtype=None)`` (``loading.py``;
  strict key/shape check naming the file, then ``from_pretrained``, which needs accelerate);
  ``convert_checkpoint(src.pt, out_dir, key=None, config="wan2.1-t2v-1.3b")`` and
  ``python -m harness.worlds.wan.convert SRC.pt OUT_DIR`` (``convert.py``) for Self Forcing / CausVid files.
* Text: ``TextEmbeddingStore`` (``text.py``): ``load(path)``, ``embed(prompts, text_dim=...)`` →
  [B, 512, D] zero-padded; ``python -m harness.worlds.wan.text PROMPTS.txt STORE.safetensors`` encodes
  with UMT5 where transformers and the encoder weights are available.

* World: ``WanWorld`` (``world.py``): the World interface on these backbones (prompt files, the
  embedding store, teacher / causal init / critic checkpoints, ``AutoencoderKLWan`` decode, VBench),
  with a ``tiny`` preset whose unset parts are built locally for CPU tests; the pieces are
  ``prompts.py``, ``conditioning.py``, ``vae.py``, ``evaluator.py``, ``latents.py``, ``sources.py``.
  ``WanBackbone.fsdp_units()`` gives :mod:`harness.parallel.fsdp` its per-block shard units.

* Block-causal attention (``block_causal.py``): ``WanConfig.causal_attention`` / ``WanBackbone(...,
  causal_attention=)`` / ``set_causal_attention()``: ``dense`` (bool [L, L] mask), ``flex`` (BlockMask,
  compiled on CUDA), ``chunked`` (one unmasked SDPA per chunk, no mask), ``auto`` (chunked for now).

Not here yet: per-frame (rather than per-token) modulation to save memory at 21×1560 tokens.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "WanConfig": "config",
    "PRESETS": "config",
    "WanBackbone": "backbone",
    "build_wan_backbone": "backbone",
    "count_parameters": "backbone",
    "WanKVCache": "kv_cache",
    "load_wan_backbone": "loading",
    "convert_checkpoint": "convert",
    "convert_state_dict": "convert",
    "TextEmbeddingStore": "text",
    "WanWorld": "world",
}

__all__ = [  # noqa: RUF022 - grouped as in the docstring
    "WanConfig", "PRESETS", "WanBackbone", "build_wan_backbone", "count_parameters", "WanKVCache",
    "load_wan_backbone", "convert_checkpoint", "convert_state_dict", "TextEmbeddingStore", "WanWorld",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness.worlds.wan' has no attribute {name!r}")
    return getattr(importlib.import_module(f"harness.worlds.wan.{_EXPORTS[name]}"), name)
