"""Configuration of the sprites block-causal DiT, with named presets sized for a CPU."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True)
class SpritesDiTConfig:
    """Shape and size of the sprites DiT.

    Tokens per frame are ``(height/patch_size)·(width/patch_size)``; on 2 CPU cores the token count
    per video is what sets the training speed, so presets keep it to a few hundred per video.
    """

    channels: int = 3
    height: int = 16
    width: int = 16
    patch_size: int = 4
    frames_per_chunk: int = 2
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    timestep_freq_dim: int = 64
    vocab_size: int = 64
    max_prompt_len: int = 12
    pad_id: int = 0
    prompt_layers: int = 1
    # the token id that separates a prompt's object phrases ("and" in the sprites vocabulary): the prompt
    # encoder's attention then stays inside each phrase, so a word's context vector carries its own object's
    # words only; None: one phrase. Alone it binds too weakly to matter (docs/history.md has the figures)
    phrase_separator_id: int | None = None
    # with a separator: every word's context vector becomes the mean of its phrase's, so one key carries an
    # object's colour, shape and direction together and a red object's tokens find "moving left" in one
    # attention hop. On in the default world: without it the frozen encoder hands the DiT a bag of words and
    # the teacher cannot tell which object a word belongs to (docs/history.md has the figures)
    phrase_pooling: bool = False
    cross_attention: bool = True
    # 3D rotary (frame, row, column) queries/keys in self-attention; on in the default world, where it is
    # what lets the teacher read the axis of a motion from the direction word (figures: docs/history.md)
    rotary_positions: bool = False
    # > 0: per-frame 3x3 convolutions at pixel resolution before patchify and after unpatchify, with this
    # many channels (pixel_layers.py says why); 0: linear patch embedding and head only. Off by default: at
    # 1800 teacher steps 16 channels gave 35%/86%/10-15% object class/colour/direction vs 41%/89%/73%; on
    # the phrase-pooling default DiT at 2000 steps 57%/97%/79% vs 62%/96%/82%, each step 25% slower
    pixel_channels: int = 0
    # a depthwise 3x3 convolution over each frame's token grid inside every block's MLP (token_mlp.py); on in
    # the default world: 49%/91% object class/colour at 2000 teacher steps vs 36%/84% without it
    token_conv: bool = False
    # a learned attention bias per head and (frame, row, column) offset between tokens (relative_bias.py); on
    # in the default world: flow loss 0.103 vs 0.119 at 1000 steps, 58%/97% object class/colour at 3000
    relative_bias: bool = False
    # > 0: the rank of a term added to every input token from the product of the pooled prompt, the token's
    # frame and its place in the frame (prompt_positions.py says why); 0: off
    prompt_positions: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Fail on the first field that cannot work, naming it."""
        positive = (
            "channels",
            "height",
            "width",
            "patch_size",
            "frames_per_chunk",
            "dim",
            "depth",
            "heads",
            "timestep_freq_dim",
            "vocab_size",
            "max_prompt_len",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"SpritesDiTConfig.{name} must be >= 1, got {getattr(self, name)}")
        for side in ("height", "width"):
            if getattr(self, side) % self.patch_size:
                raise ConfigError(
                    f"SpritesDiTConfig.{side}={getattr(self, side)} is not divisible by patch_size={self.patch_size}"
                )
        if self.dim % self.heads:
            raise ConfigError(f"SpritesDiTConfig.dim={self.dim} is not divisible by heads={self.heads}")
        if self.timestep_freq_dim % 2:
            raise ConfigError(f"SpritesDiTConfig.timestep_freq_dim={self.timestep_freq_dim} must be even")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ConfigError(
                f"SpritesDiTConfig.pad_id={self.pad_id} is outside vocab_size={self.vocab_size}"
            )
        separator = self.phrase_separator_id
        if separator is not None and not (0 <= separator < self.vocab_size and separator != self.pad_id):
            raise ConfigError(
                f"SpritesDiTConfig.phrase_separator_id={separator} must be a token id in [0, {self.vocab_size}) "
                f"other than pad_id={self.pad_id}"
            )
        if self.phrase_pooling and separator is None:
            raise ConfigError("SpritesDiTConfig.phrase_pooling needs phrase_separator_id (the word between phrases)")
        if self.prompt_positions < 0:
            raise ConfigError(f"SpritesDiTConfig.prompt_positions must be >= 0, got {self.prompt_positions}")
        if self.pixel_channels < 0:
            raise ConfigError(f"SpritesDiTConfig.pixel_channels must be >= 0, got {self.pixel_channels}")
        if self.prompt_layers < 0 or self.mlp_ratio <= 0:
            raise ConfigError("SpritesDiTConfig.prompt_layers must be >= 0 and mlp_ratio > 0")

    @property
    def token_grid(self) -> tuple[int, int]:
        """(rows, columns) of patch tokens in one frame."""
        return self.height // self.patch_size, self.width // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        rows, cols = self.token_grid
        return rows * cols

    @property
    def patch_dim(self) -> int:
        """Values per patch at the token boundary: pixels, plus pixel features with ``pixel_channels``."""
        return (self.channels + self.pixel_channels) * self.patch_size * self.patch_size

    def replace(self, **changes) -> SpritesDiTConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"SpritesDiTConfig has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides) -> SpritesDiTConfig:
        """A named preset (``smoke`` for tests, ``default`` for real runs), optionally overridden."""
        if name not in PRESETS:
            raise ConfigError(f"SpritesDiT preset '{name}' is unknown; choose one of {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides)


PRESETS: dict[str, SpritesDiTConfig] = {
    # a few thousand parameters: every test that builds a model runs in milliseconds
    "smoke": SpritesDiTConfig(
        height=16, width=16, patch_size=4, dim=32, depth=2, heads=2, timestep_freq_dim=32
    ),
    # 16×16 frames in 4×4 patches: 16 tokens per frame, 128 per 8-frame video
    "default": SpritesDiTConfig(height=16, width=16, patch_size=4, dim=128, depth=4, heads=4),
}
