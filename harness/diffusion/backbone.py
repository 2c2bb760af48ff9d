"""The Backbone protocol: what the sampler, the methods and the discriminator ask of a video network.

A backbone predicts the flow-matching velocity ``v = ε − x0`` (:mod:`harness.diffusion.conventions`)
for a chunked video ``x_t`` ``[B, F, C, H, W]`` at network timesteps ``t`` (a scalar, ``[B]`` or
``[B, F]`` on the 0–1000 scale). Causal generation runs it chunk by chunk: each chunk attends to itself
and to the keys/values of earlier chunks held in a :class:`~harness.diffusion.kv_cache.KVCache`, and a
forward with ``write_cache=True`` on a clean chunk appends that chunk's keys/values. ``causal=False``
is the bidirectional teacher's full attention. ``return_features`` also returns every block's tokens
``[B, F, P, D]``: the discriminator's input and the critic's features.

Two implementations: the sprites DiT (:class:`harness.worlds.sprites.backbone.SpritesDiT`) and Wan2.1
through diffusers (:class:`harness.worlds.wan.backbone.WanBackbone`). The protocol is structural
(``typing.Protocol``): a backbone is any ``nn.Module`` with these members; it need not inherit.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from harness.diffusion.kv_cache import KVCache


@runtime_checkable
class Backbone(Protocol):
    """A chunk-causal video velocity network (see the module docstring)."""

    @property
    def frames_per_chunk(self) -> int:
        """Frames denoised together; videos are a whole number of chunks."""
        ...

    def num_parameters(self) -> int: ...

    def __call__(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | float,
        cond: torch.Tensor,
        *,
        kv_cache: KVCache | None = None,
        causal: bool = True,
        write_cache: bool = False,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Velocity like ``x_t``; with ``return_features`` also each block's tokens ``[B, F, P, D]``."""
        ...
