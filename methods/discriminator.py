"""ASD's discriminator: a small multi-logit head on the critic backbone's features.

Modelled on Self Forcing's GAN branch, which ASD most plausibly reuses
(docs/references.md#self-forcings-gan-branch): features are tapped after some DiT blocks; each tap gets
one learnable register token that cross-attends to that block's tokens; the tapped readouts are
concatenated and mapped by ``LayerNorm → Linear → SiLU → Linear`` to ``num_logits`` logits, and D_n is
logit ``n − 1``. The head gets no timestep (``concat_time_embeddings=False``); the backbone does, through
its adaLN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.errors import ConfigError


class RegisterReadout(nn.Module):
    """One learnable token attending to all tokens of a feature map [B, F, P, D] → [B, D]."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.register = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(features.flatten(1, 2))
        query = self.register.expand(tokens.shape[0], -1, -1)
        out, _ = self.attention(query, tokens, tokens, need_weights=False)
        return out[:, 0]


class DiscriminatorHead(nn.Module):
    """Logits [B, num_logits] from the critic backbone's block outputs at ``layers``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        depth: int,
        num_logits: int,
        layers: Sequence[int] = (-1,),
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        if not layers or any(not -depth <= layer < depth for layer in layers):
            raise ConfigError(
                f"asd.feature_layers {list(layers)} must index blocks of a depth-{depth} backbone"
            )
        if num_logits < 1:
            raise ConfigError(f"discriminator needs at least one logit, got {num_logits}")
        self.layers = sorted({layer % depth for layer in layers})
        self.readouts = nn.ModuleList(RegisterReadout(dim, heads) for _ in self.layers)
        hidden = hidden or dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim * len(self.layers)),
            nn.Linear(dim * len(self.layers), hidden),
            nn.SiLU(),
            nn.Linear(hidden, num_logits),
        )

    def readout(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The register readouts of the tapped layers, concatenated [B, D·taps]: what the MLP classifies."""
        taps = [readout(features[layer]) for readout, layer in zip(self.readouts, self.layers, strict=True)]
        return torch.cat(taps, dim=-1)

    def pooled(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The tapped layers' tokens averaged, concatenated [B, D·taps]: the backbone's view, before the head."""
        return torch.cat([features[layer].flatten(1, 2).mean(dim=1) for layer in self.layers], dim=-1)

    def forward(
        self, features: Sequence[torch.Tensor], *, with_readout: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, num_logits] (and the readout they are computed from). Callers go through here, not
        through ``readout``/``mlp``: under FSDP2 the head's weights are gathered for its forward only."""
        readout = self.readout(features)
        logits = self.mlp(readout)
        return (logits, readout) if with_readout else logits


class Discriminator:
    """D(x_t, t, cond)[n − 1]: the critic backbone (shared with the fake score, owned by it) plus the head."""

    def __init__(self, backbone: nn.Module, head: DiscriminatorHead, *, train_backbone: bool) -> None:
        self.backbone, self.head, self.train_backbone = backbone, head, train_backbone

    def __call__(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, n: int, *, for_generator: bool = False
    ) -> torch.Tensor:
        """Logit of D_n per sample [B]. For the discriminator's own loss the backbone is frozen unless
        ``train_backbone``; for the generator the graph always reaches ``x_t``."""
        keep_graph = for_generator or self.train_backbone
        with torch.set_grad_enabled(torch.is_grad_enabled() and keep_graph):
            _, features = self.backbone(x_t, t, cond, causal=False, return_features=True)
        if not keep_graph:
            features = [f.detach() for f in features]
        return self.head(features)[:, n - 1]

    @torch.no_grad()
    def inspect(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, n: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Without graph: D_n's logit [B], the pooled backbone features and the head's readout [B, ·]."""
        _, features = self.backbone(x_t, t, cond, causal=False, return_features=True)
        logits, readout = self.head(features, with_readout=True)
        return logits[:, n - 1], self.head.pooled(features), readout
