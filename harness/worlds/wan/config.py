"""Shape of a Wan backbone: the diffusers ``WanTransformer3DModel`` arguments plus the harness's chunking.

Imports nothing optional, so studies can be validated on machines without diffusers. Presets: ``tiny``
(a few thousand parameters, CPU tests), ``wan2.1-t2v-1.3b`` (the paper's student and critic) and
``wan2.1-t2v-14b`` (the teacher Self Forcing uses).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

# the backends of harness.worlds.wan.block_causal.BACKENDS, plus "auto" (by device); named here because
# this module imports nothing but the standard library
CAUSAL_ATTENTION = ("auto", "dense", "flex", "chunked")


@dataclass(frozen=True)
class WanConfig:
    """Architecture (diffusers names) and the latent video geometry the world generates.

    ``frames_per_chunk`` latent frames are denoised together (3 in Self Forcing / CausVid: 12 pixel
    frames through the 4× temporal VAE). ``latent_*`` describe the videos a world asks for; the
    backbone itself accepts any height/width divisible by the patch size. ``causal_attention`` is how
    block-causal passes over several chunks attend (:mod:`harness.worlds.wan.block_causal`); it does
    not change the results, only their cost.
    """

    num_layers: int = 30
    num_attention_heads: int = 12
    attention_head_dim: int = 128
    ffn_dim: int = 8960
    text_dim: int = 4096
    freq_dim: int = 256
    in_channels: int = 16
    out_channels: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)
    cross_attn_norm: bool = True
    qk_norm: str = "rms_norm_across_heads"
    eps: float = 1e-6
    rope_max_seq_len: int = 1024
    frames_per_chunk: int = 3
    text_len: int = 512
    latent_frames: int = 21
    latent_height: int = 60
    latent_width: int = 104
    causal_attention: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        self.validate()

    def validate(self) -> None:
        """Fail on the first field that cannot work, naming it."""
        positive = ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim", "text_dim",
                    "freq_dim", "in_channels", "out_channels", "rope_max_seq_len", "frames_per_chunk",
                    "text_len", "latent_frames", "latent_height", "latent_width")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"WanConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.causal_attention not in CAUSAL_ATTENTION:
            raise ConfigError(f"WanConfig.causal_attention='{self.causal_attention}' is unknown; choose one of "
                              f"{', '.join(CAUSAL_ATTENTION)}")
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ConfigError(f"WanConfig.patch_size must be 3 positive ints, got {self.patch_size}")
        if self.patch_size[0] != 1:
            raise ConfigError(f"WanConfig.patch_size[0]={self.patch_size[0]}: chunking needs a temporal patch of 1")
        if self.attention_head_dim < 6 or self.attention_head_dim % 2:
            raise ConfigError(f"WanConfig.attention_head_dim={self.attention_head_dim} must be even and >= 6 (RoPE)")
        if self.freq_dim % 2:
            raise ConfigError(f"WanConfig.freq_dim={self.freq_dim} must be even")
        if self.latent_frames % self.frames_per_chunk:
            raise ConfigError(f"WanConfig.latent_frames={self.latent_frames} is not a multiple of "
                              f"frames_per_chunk={self.frames_per_chunk}")
        for side, patch in (("latent_height", self.patch_size[1]), ("latent_width", self.patch_size[2])):
            if getattr(self, side) % patch:
                raise ConfigError(f"WanConfig.{side}={getattr(self, side)} is not divisible by patch {patch}")

    @property
    def dim(self) -> int:
        """Width of the tokens (what feature taps and a discriminator head see)."""
        return self.num_attention_heads * self.attention_head_dim

    def tokens_per_frame(self, height: int | None = None, width: int | None = None) -> int:
        """Tokens of one latent frame after the 2×2 spatial patches (1560 at 60×104)."""
        height = self.latent_height if height is None else height
        width = self.latent_width if width is None else width
        return (height // self.patch_size[1]) * (width // self.patch_size[2])

    def diffusers_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of ``diffusers.WanTransformer3DModel`` (text-to-video: no image branch)."""
        names = ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim", "text_dim", "freq_dim",
                 "in_channels", "out_channels", "patch_size", "cross_attn_norm", "qk_norm", "eps",
                 "rope_max_seq_len")
        return {name: getattr(self, name) for name in names}

    def replace(self, **changes: Any) -> WanConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"WanConfig has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> WanConfig:
        """A named preset, optionally overridden."""
        if name not in PRESETS:
            raise ConfigError(f"Wan preset '{name}' is unknown; choose one of {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]

    @classmethod
    def from_diffusers(cls, config: Any, **overrides: Any) -> WanConfig:
        """The WanConfig of a loaded diffusers model's ``config`` (image-branch fields are refused)."""
        get = config.get if hasattr(config, "get") else lambda k, d=None: getattr(config, k, d)
        if get("image_dim") is not None or get("added_kv_proj_dim") is not None:
            raise ConfigError("the Wan backbone is text-to-video; this checkpoint has an image branch "
                              "(image_dim/added_kv_proj_dim set)")
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: get(k) for k in cls().diffusers_kwargs() if get(k) is not None and k in fields}
        return cls(**{**values, **overrides})


PRESETS: dict[str, WanConfig] = {
    # 2 layers, 2 heads × 8, text width 32, 8×8 latents, 2 chunks: every test forward runs in milliseconds
    "tiny": WanConfig(num_layers=2, num_attention_heads=2, attention_head_dim=8, ffn_dim=32, text_dim=32,
                      freq_dim=32, latent_frames=6, latent_height=8, latent_width=8),
    # Wan2.1-T2V-1.3B (diffusers config of Wan-AI/Wan2.1-T2V-1.3B-Diffusers): 81 frames 480×832 → 21×60×104
    "wan2.1-t2v-1.3b": WanConfig(),
    # Wan2.1-T2V-14B, the teacher of Self Forcing
    "wan2.1-t2v-14b": WanConfig(num_layers=40, num_attention_heads=40, ffn_dim=13824),
}
