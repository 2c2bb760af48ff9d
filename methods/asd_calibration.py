"""How strongly the adversarial term pushes the generator: the α schedule and the gradient ratio.

The DMD loss is normalised per element, so an α that suits one backbone does not transfer to another
(the issue's probe: at α = 10 the adversarial gradient on sprites is 0.7×–7.9× the DMD gradient,
depending on n). What is comparable across backbones is the ratio ``‖∇θ α·L_ASD‖ / ‖∇θ L_DMD‖`` on
the generator's parameters. :func:`gradient_ratio` measures it with ``autograd.grad`` (two extra
backward passes, so only every few updates); :class:`AlphaCalibration` keeps the α in force per n —
the configured one, or, with a target ratio, the one that made the last measurement for that n hit
it — as a buffer, so a resumed run continues with the same α.

:func:`alpha_scale` is the warm-up and ramp: 0 for the first ``warmup`` critic steps (the
discriminator trains, the generator sees DMD alone), then linear to 1 over ``ramp`` critic steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def alpha_scale(step: int, warmup: int, ramp: int) -> float:
    """Fraction of α in force at critic step ``step``: 0 in the warm-up, then a linear ramp to 1."""
    if step < warmup:
        return 0.0
    if ramp <= 0:
        return 1.0
    return min(1.0, (step - warmup + 1) / ramp)


def gradient_norm(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> float:
    """``‖∇ loss‖`` over ``params`` (parameters the loss does not reach count as zero); keeps the graph.

    Under data parallelism each rank's loss is the mean over its share of the batch, so the full batch's
    gradient is the mean of the ranks' gradients: they are averaged before the norm is taken, and every
    rank reads the norm one process would on the whole batch."""
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    grads = [g for g in grads if g is not None]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        for g in grads:
            torch.distributed.all_reduce(g)
            g.div_(world)
    total = sum(float(g.double().pow(2).sum()) for g in grads)
    return math.sqrt(total)


def gradient_ratio(
    dmd: torch.Tensor, adversarial: torch.Tensor, params: Sequence[nn.Parameter]
) -> tuple[float, float]:
    """``(‖∇ L_DMD‖, ‖∇ L_ASD‖)`` on ``params``; the ratio at weight α is ``α·second / first``."""
    return gradient_norm(dmd, params), gradient_norm(adversarial, params)


class AlphaCalibration(nn.Module):
    """α per n (index n − 1): the configured α, or α set from ``target_ratio`` at each measurement.

    A buffer of 0 for an n means "not measured yet": with a target ratio that n's first generator step
    measures before it applies any adversarial gradient.
    """

    def __init__(self, num_logits: int, alpha: float, target_ratio: float) -> None:
        super().__init__()
        self.target_ratio = target_ratio
        start = 0.0 if target_ratio > 0 else alpha
        self.register_buffer("alpha", torch.full((num_logits,), float(start), dtype=torch.float64))

    @property
    def calibrated(self) -> bool:
        return self.target_ratio > 0

    def known(self, n: int) -> bool:
        return not self.calibrated or float(self.alpha[n - 1]) > 0

    def value(self, n: int) -> float:
        return float(self.alpha[n - 1])

    def update(self, n: int, dmd_norm: float, adversarial_norm: float) -> float:
        """With a target ratio, set α_n so that ``α_n·‖∇L_ASD‖ = r·‖∇L_DMD‖`` on this batch; return the
        ratio at the α now in force (r itself after calibration; the measured one otherwise)."""
        if self.calibrated and adversarial_norm > 0 and dmd_norm > 0:
            self.alpha[n - 1] = self.target_ratio * dmd_norm / adversarial_norm
        if dmd_norm <= 0:
            return math.inf if adversarial_norm > 0 else 0.0
        return self.value(n) * adversarial_norm / dmd_norm
