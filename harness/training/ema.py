"""One exponential moving average of a model's weights, for every trainer in the harness."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Exponential moving average of a model's floating-point state (other entries are copied).

    Args:
        decay: weight of the average at each update.
        start_step: no average before this step; the first update at or after it starts the average
            from the model's weights (the distillation methods' convention).
        warmup: use ``min(decay, (1 + step) / (10 + step))``, so the first weights do not linger (the
            teacher's and the causal init's convention); combine with :meth:`track` to start from the
            weights before training.
    """

    def __init__(self, decay: float, start_step: int = 0, *, warmup: bool = False) -> None:
        self.decay, self.start_step, self.warmup = decay, start_step, warmup
        self.shadow: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def track(self, model: nn.Module) -> EMA:
        """Start the average from ``model``'s weights now (before the first update)."""
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return self

    def weight(self, step: int) -> float:
        """The decay applied at ``step``."""
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if step < self.start_step:
            return
        state = model.state_dict()
        if not self.shadow:
            self.shadow = {k: v.detach().clone() for k, v in state.items()}
            return
        floats = [k for k, v in self.shadow.items() if v.is_floating_point()]
        # one multi-tensor kernel rather than one small op per tensor: a real share of a small model's step
        torch._foreach_lerp_([self.shadow[k] for k in floats], [state[k] for k in floats], 1.0 - self.weight(step))
        for key, value in self.shadow.items():
            if not value.is_floating_point():
                value.copy_(state[key])

    def averaged(self, model: nn.Module, shadow: dict[str, torch.Tensor] | None = None) -> nn.Module:
        """A copy of ``model`` carrying the EMA weights (``shadow`` when given, e.g. gathered from shards;
        the model itself when no average exists yet)."""
        weights = self.shadow if shadow is None else shadow
        if not weights:
            return model
        twin = copy.deepcopy(model)
        twin.load_state_dict(weights)
        return twin
