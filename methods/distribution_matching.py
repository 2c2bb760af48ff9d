"""Distribution matching distillation (DMD): the generator loss and the critic ("fake score") loss.

Shared by every method here (docs/references.md#dmd-generator-and-critic-losses):

* the **real score** is the frozen bidirectional teacher with CFG in the world's named form;
* the **fake score** (critic) is a bidirectional copy of the teacher, trained with the flow loss on
  detached generator samples, queried without CFG;
* both see the generator's sample noised to one shifted timestep per sample, ``u ~ U[0, 1000)``,
  shifted with ``shift`` and clamped to ``[min_t, max_t]`` (Self Forcing: shift 5, clamp [20, 980]);
* the generator receives ``g = (x̂0_fake − x̂0_real) / mean|x − x̂0_real|`` (per sample) through the
  loss ``0.5·mean((x − stopgrad(x − g))²)``, whose gradient with respect to x is ``g / x.numel()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.diffusion.conventions import add_noise, apply_cfg, flow_target, shift_sigma, sigma_from_timestep
from harness.diffusion.sampling import NoiseSource, predict_x0
from harness.errors import ConfigError
from harness.worlds.base import Guidance


def dmd_gradient(x: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor) -> torch.Tensor:
    """``(x̂0_fake − x̂0_real) / mean|x − x̂0_real|`` with the mean per sample, in float64, no graph."""
    with torch.no_grad():
        x, real, fake = x.double(), x0_real.double(), x0_fake.double()
        dims = tuple(range(1, x.dim()))
        norm = (x - real).abs().mean(dim=dims, keepdim=True)
        return torch.nan_to_num((fake - real) / norm)


def dmd_loss(x: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor) -> torch.Tensor:
    """``0.5·mean((x − stopgrad(x − g))²)``: a scalar whose gradient wrt x is ``g / x.numel()``."""
    g = dmd_gradient(x, x0_real, x0_fake)
    target = (x.detach().double() - g).detach()
    return (0.5 * F.mse_loss(x.double(), target)).to(x.dtype)


@dataclass(frozen=True)
class ScoreTimesteps:
    """How the DMD / critic / discriminator noise level is drawn (Self Forcing defaults).

    ``truncate``: draw inside ``[min_t, max_t]`` (the shifted distribution restricted to the range)
    instead of clamping to it. Clamping is Self Forcing's rule and harmless at [20, 980]; for a narrow
    range such as ASD's Ψ at ``max_t`` 500 it would put every draw above the range on ``max_t`` itself
    (half of them at shift 1).
    """

    shift: float = 5.0
    min_t: float = 20.0
    max_t: float = 980.0
    truncate: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_t < self.max_t <= 1000.0:
            raise ConfigError(
                f"score timesteps need 0 <= min_t < max_t <= 1000, got [{self.min_t}, {self.max_t}]"
            )

    def sample(self, batch: int, noise: NoiseSource) -> torch.Tensor:
        """One network timestep per sample: shifted ``U[0, 1000)`` clamped to ``[min_t, max_t]`` (or
        restricted to it when ``truncate``)."""
        u = noise.uniform((batch,))
        if self.truncate:  # the un-shifted u whose shifted values lie in the range, then uniform between
            low, high = (_unshift(t / 1000.0, self.shift) for t in (self.min_t, self.max_t))
            u = low + (high - low) * u
        sigma = shift_sigma(u, self.shift)
        return (1000.0 * sigma).clamp(self.min_t, self.max_t).to(torch.float32)


def _unshift(sigma: float, shift: float) -> float:
    """The inverse of the time shift: ``σ = σ' / (s − (s − 1)·σ')``."""
    return sigma / (shift - (shift - 1.0) * sigma)


DEFAULT_TIMESTEPS = ScoreTimesteps()


@dataclass
class NoisedSample:
    """``x_t = Ψ(x, ε, t)`` with the ε and t that made it."""

    x_t: torch.Tensor
    noise: torch.Tensor
    timestep: torch.Tensor  # [B]


def noise_sample(
    x: torch.Tensor, timesteps: ScoreTimesteps, noise: NoiseSource, timestep: torch.Tensor | None = None
) -> NoisedSample:
    """Ψ: noise ``x`` to a drawn (or given) timestep with fresh ε."""
    t = timesteps.sample(x.shape[0], noise) if timestep is None else timestep
    eps = noise.normal(x.shape, x.device, x.dtype)
    t = t.to(x.device)
    return NoisedSample(add_noise(x, eps, sigma_from_timestep(t)), eps, t)


def score_gaps(real: torch.Tensor, real_cond: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Whether the fake score has left the teacher: mean absolute gaps between the three x̂0 predictions
    (means, so data-parallel ranks average to the full batch's value).

    ``fake_vs_real`` drives DMD's gradient; ``cfg_gap`` (guided vs conditional teacher) is the part of
    it guidance alone would cause; ``fake_vs_teacher`` (critic vs conditional teacher) is how far the
    critic has moved from its initialisation's function. While ``fake_vs_teacher`` stays far below
    ``cfg_gap``, DMD mostly distils guidance, not the generator's own distribution.
    """
    def gap(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.float() - b.float()).abs().mean())

    return {"fake_vs_real": gap(fake, real), "cfg_gap": gap(real, real_cond), "fake_vs_teacher": gap(fake, real_cond)}


class DistributionMatching:
    """The real score (teacher + CFG), the fake score (critic) and the two DMD losses built on them."""

    def __init__(
        self,
        teacher: nn.Module,
        critic: nn.Module,
        guidance: Guidance,
        timesteps: ScoreTimesteps = DEFAULT_TIMESTEPS,
    ) -> None:
        self.teacher, self.critic, self.guidance, self.timesteps = teacher, critic, guidance, timesteps

    def real_x0(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor
    ) -> torch.Tensor:
        """Teacher x̂0 with CFG; cond and uncond share one batched forward when their shapes agree."""
        return self.real_x0_parts(x_t, t, cond, uncond)[0]

    def real_x0_parts(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher x̂0 with CFG, and the conditional x̂0 without it."""
        if cond.shape == uncond.shape:
            both = predict_x0(
                self.teacher,
                torch.cat([x_t, x_t]),
                torch.cat([t, t]),
                torch.cat([cond, uncond]),
                causal=False,
            )
            on, off = both.chunk(2)
        else:
            on = predict_x0(self.teacher, x_t, t, cond, causal=False)
            off = predict_x0(self.teacher, x_t, t, uncond, causal=False)
        return apply_cfg(on, off, self.guidance.scale, self.guidance.form), on

    def generator_loss(
        self, x: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, noise: NoiseSource
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """DMD loss on the generator's sample ``x`` (with graph); the scores run without gradient."""
        noised = noise_sample(x.detach(), self.timesteps, noise)
        with torch.no_grad():
            real, real_cond = self.real_x0_parts(noised.x_t, noised.timestep, cond, uncond)
            fake = predict_x0(self.critic, noised.x_t, noised.timestep, cond, causal=False)
        loss = dmd_loss(x, real, fake)
        grad = dmd_gradient(x, real, fake)
        return loss, {
            "dmd_gradient_mean_abs": float(grad.abs().mean()),
            "dmd_t_mean": float(noised.timestep.mean()),
            **score_gaps(real, real_cond, fake),
        }

    def critic_loss(self, x: torch.Tensor, cond: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        """Flow loss of the critic on a detached generator sample: ``mean((v_fake − (ε − x))²)``."""
        noised = noise_sample(x.detach(), self.timesteps, noise)
        v = self.critic(noised.x_t, noised.timestep, cond, causal=False)
        return F.mse_loss(v.float(), flow_target(x.detach(), noised.noise).float())
