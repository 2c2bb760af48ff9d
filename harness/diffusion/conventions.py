"""Flow-matching conventions shared by every method and backbone (Wan / Self Forcing).

One place fixes the parametrisation so that no method or world re-derives it:

* noising: ``x_t = (1 - σ)·x0 + σ·ε`` with σ ∈ [0, 1];
* the network predicts the velocity ``v = ε - x0``; hence ``x0 = x_t - σ·v``;
* the timestep the network sees is ``t = 1000·σ`` (after the time shift);
* the shift ``σ' = s·σ / (1 + (s - 1)·σ)`` (default ``s = 5``) warps a uniform step list.

Conversions between x0 and v run in float64 and are cast back, because at small σ the division by σ
amplifies float32 rounding (Self Forcing computes its DMD terms in float64 for the same reason).
Classifier-free guidance comes in two forms that differ by one in the scale; the form is always
named (:data:`CFG_FORMS`), never implied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from harness.errors import ConfigError

NUM_TRAIN_TIMESTEPS = 1000.0
DEFAULT_SHIFT = 5.0
DEFAULT_STEP_LIST: tuple[float, ...] = (1000.0, 750.0, 500.0, 250.0)

# ---------------------------------------------------------------------------------------------
# σ ↔ t and the time shift


def sigma_from_timestep(t: torch.Tensor | float) -> torch.Tensor | float:
    """The noise level σ for a network timestep ``t = 1000·σ``."""
    return t / NUM_TRAIN_TIMESTEPS


def timestep_from_sigma(sigma: torch.Tensor | float) -> torch.Tensor | float:
    """The network timestep for noise level σ."""
    return sigma * NUM_TRAIN_TIMESTEPS


def shift_sigma(sigma: torch.Tensor | float, shift: float = DEFAULT_SHIFT) -> torch.Tensor | float:
    """Time shift ``σ' = s·σ / (1 + (s - 1)·σ)``: spends more steps at high noise when s > 1."""
    if shift <= 0:
        raise ConfigError(f"shift must be > 0, got {shift}")
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def warp_timesteps(steps: Sequence[float], shift: float = DEFAULT_SHIFT) -> list[float]:
    """Warp an un-shifted step list (in [0, 1000]) with the time shift.

    ``warp_timesteps([1000, 750, 500, 250], 5.0) == [1000, 937.5, 833.33…, 625]``, the values Self
    Forcing actually denoises at (its ``warp_denoising_step``).
    """
    warped = []
    for step in steps:
        if not 0.0 <= float(step) <= NUM_TRAIN_TIMESTEPS:
            raise ConfigError(f"denoising step {step} is outside [0, {NUM_TRAIN_TIMESTEPS:g}]")
        sigma = float(step) / NUM_TRAIN_TIMESTEPS
        warped.append(timestep_from_sigma(shift_sigma(sigma, shift)))
    return warped


def sample_shifted_timesteps(
    shape: Sequence[int],
    *,
    shift: float = DEFAULT_SHIFT,
    min_t: float = 0.0,
    max_t: float = NUM_TRAIN_TIMESTEPS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw un-shifted t ~ U[min_t, max_t) and shift them: the DMD / critic timestep sampler."""
    u = torch.rand(tuple(shape), generator=generator, dtype=torch.float64)
    sigma = (min_t + (max_t - min_t) * u) / NUM_TRAIN_TIMESTEPS
    return (timestep_from_sigma(shift_sigma(sigma, shift))).to(torch.float32)


# ---------------------------------------------------------------------------------------------
# Per-frame timesteps


def per_frame_timesteps(t: torch.Tensor | float, batch: int, frames: int) -> torch.Tensor:
    """Broadcast a scalar, a per-sample [B] or a per-frame [B, F] timestep to a [B, F] float tensor.

    Per-frame timesteps are what diffusion forcing and the block-causal student need: every frame
    (and so every chunk) may sit at its own noise level.
    """
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.dim() == 0:
        return t.expand(batch, frames).clone()
    if t.dim() == 1 and t.shape[0] == batch:
        return t[:, None].expand(batch, frames).clone()
    if t.dim() == 2 and tuple(t.shape) == (batch, frames):
        return t.to(torch.float32)
    raise ValueError(f"timestep shape {tuple(t.shape)} is not (), ({batch},) or ({batch}, {frames})")


def _frame_sigma(sigma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """σ as a tensor broadcastable against a video [B, F, C, H, W] (σ may be scalar, [B] or [B, F])."""
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if sigma.dim() == 0:
        return sigma
    if sigma.dim() == 1:
        return sigma.view(-1, *([1] * (like.dim() - 1)))
    if sigma.dim() == 2:
        return sigma.view(*sigma.shape, *([1] * (like.dim() - 2)))
    raise ValueError(f"sigma of shape {tuple(sigma.shape)} must be scalar, [B] or [B, F]")


# ---------------------------------------------------------------------------------------------
# Noising and the x0 / v parametrisation


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``x_t = (1 - σ)·x0 + σ·ε``; σ may be per sample [B] or per frame [B, F]."""
    s = _frame_sigma(sigma, x0)
    return (1.0 - s) * x0 + s * noise


def flow_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity the network is trained to predict: ``v = ε - x0``."""
    return noise - x0


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``x0 = x_t - σ·v``, computed in float64 and cast back to x_t's dtype."""
    s = _frame_sigma(sigma, x_t.double())
    return (x_t.double() - s * v.double()).to(x_t.dtype)


def v_from_x0(
    x_t: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | float, *, min_sigma: float = 1e-12
) -> torch.Tensor:
    """``v = (x_t - x0) / σ`` in float64; σ is floored at ``min_sigma`` since v is undefined at σ = 0."""
    s = _frame_sigma(sigma, x_t.double()).clamp_min(min_sigma)
    return ((x_t.double() - x0.double()) / s).to(x_t.dtype)


def noise_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """The ε implied by x_t and x0: ``ε = x0 + v`` (float64, cast back)."""
    return (x0.double() + v_from_x0(x_t, x0, sigma).double()).to(x_t.dtype)


def euler_step(x_t: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor | float, sigma_next) -> torch.Tensor:
    """One Euler step of the flow ODE ``dx/dσ = v`` from σ to σ_next."""
    s, s_next = _frame_sigma(sigma, x_t), _frame_sigma(sigma_next, x_t)
    return x_t + (s_next - s) * v


# ---------------------------------------------------------------------------------------------
# Classifier-free guidance: a registry of named forms

CFGForm = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class GuidanceForm:
    """A named CFG formula and the offset that converts its scale to the standard form's."""

    combine: CFGForm
    standard_offset: float


CFG_FORMS: dict[str, GuidanceForm] = {}


def register_cfg_form(name: str, *, standard_offset: float) -> Callable[[CFGForm], CFGForm]:
    """Register a guidance form under the name configs use (``cfg_form: standard``)."""

    def decorate(fn: CFGForm) -> CFGForm:
        CFG_FORMS[name] = GuidanceForm(fn, standard_offset)
        return fn

    return decorate


@register_cfg_form("standard", standard_offset=0.0)
def cfg_standard(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``uncond + g·(cond - uncond)`` (Wan, DMD2, FastVideo); g = 1 is the conditional model."""
    return uncond + scale * (cond - uncond)


@register_cfg_form("self_forcing", standard_offset=1.0)
def cfg_self_forcing(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``cond + g·(cond - uncond)`` (Self Forcing / CausVid DMD); equals ``standard`` with g + 1."""
    return cond + scale * (cond - uncond)


def cfg_form(name: str) -> GuidanceForm:
    """Look up a guidance form by its config name."""
    try:
        return CFG_FORMS[name]
    except KeyError:
        raise ConfigError(f"cfg_form '{name}' is unknown; choose one of {sorted(CFG_FORMS)}") from None


def apply_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float, form: str = "standard") -> torch.Tensor:
    """Combine conditional and unconditional predictions with the named guidance form."""
    return cfg_form(form).combine(cond, uncond, scale)


def to_standard_scale(scale: float, form: str) -> float:
    """The ``standard``-form scale equivalent to ``scale`` in ``form`` (self_forcing g ↔ standard g + 1)."""
    return scale + cfg_form(form).standard_offset
