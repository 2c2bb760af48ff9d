"""The teacher's sampler: Euler steps on the flow ODE, the whole video at once, with named CFG.

Generic over backbones (:class:`harness.diffusion.backbone.Backbone`:
``forward(x_t, t, cond, *, causal) -> v``). The step grid is uniform in the un-shifted σ and warped with the time shift, the grid Wan / Self
Forcing use; with ``steps`` a multiple of 4 and shift 5 it passes exactly through the warped 4-step list
``[1000, 937.5, 833.3, 625]``, which is why the causal init can read its regression inputs straight off
the trajectory. One Euler step from pure noise to σ = 0 gives ``x0 = x_T - v``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from harness.diffusion.conventions import (
    DEFAULT_SHIFT,
    NUM_TRAIN_TIMESTEPS,
    apply_cfg,
    cfg_form,
    euler_step,
    shift_sigma,
    sigma_from_timestep,
)
from harness.errors import ConfigError


@dataclass
class ODEResult:
    """Final x0 [B, F, C, H, W]; with ``return_trajectory`` every state x_{t_i} (x_T first, x0 last)."""

    x0: torch.Tensor
    timesteps: list[float]
    trajectory: list[torch.Tensor] | None = None

    def states_at(self, timesteps: Sequence[float], tol: float = 1e-3) -> list[torch.Tensor]:
        """The trajectory states at the given network timesteps (each must lie on the grid)."""
        if self.trajectory is None:
            raise ValueError("the ODE was solved without return_trajectory=True")
        out = []
        for t in timesteps:
            hits = [i for i, grid_t in enumerate(self.timesteps) if abs(grid_t - float(t)) <= tol]
            if not hits:
                raise ConfigError(f"timestep {t} is not on the ODE grid of {len(self.timesteps) - 1} steps; "
                                  "choose a step count whose shifted grid contains it")
            out.append(self.trajectory[hits[0]])
        return out


def ode_timesteps(steps: int, shift: float = DEFAULT_SHIFT) -> list[float]:
    """``steps + 1`` network timesteps from 1000 down to 0: σ_i = shift(1 - i/steps)."""
    if steps < 1:
        raise ConfigError(f"ODE steps must be >= 1, got {steps}")
    return [float(shift_sigma(1.0 - i / steps, shift)) * NUM_TRAIN_TIMESTEPS for i in range(steps + 1)]


def guided_velocity(
    model: nn.Module,
    x_t: torch.Tensor,
    t: float | torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    *,
    scale: float = 1.0,
    form: str = "standard",
    causal: bool = False,
) -> torch.Tensor:
    """The CFG-combined velocity; one batched forward over (cond, uncond) when guidance is on.

    Guidance is skipped (conditional model only) when no ``uncond`` is given or when the scale makes
    the formula equal the conditional branch (standard g = 1, self_forcing g = 0).
    """
    if uncond is None or scale + cfg_form(form).standard_offset == 1.0:
        return model(x_t, t, cond, causal=causal)
    batch = x_t.shape[0]
    t_both = torch.cat([t, t]) if isinstance(t, torch.Tensor) and t.dim() > 0 else t
    v = model(torch.cat([x_t, x_t]), t_both, torch.cat([cond, uncond]), causal=causal)
    return apply_cfg(v[:batch], v[batch:], scale, form)


@torch.no_grad()
def sample_ode(
    model: nn.Module,
    noise: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None = None,
    *,
    steps: int = 50,
    shift: float = DEFAULT_SHIFT,
    guidance_scale: float = 1.0,
    cfg_form_name: str = "standard",
    causal: bool = False,
    return_trajectory: bool = False,
) -> ODEResult:
    """Integrate the flow ODE from ``noise`` (σ = 1) to σ = 0 with Euler steps on the shifted grid."""
    grid = ode_timesteps(steps, shift)
    x = noise
    trajectory = [x] if return_trajectory else None
    for t, t_next in itertools.pairwise(grid):
        v = guided_velocity(model, x, t, cond, uncond, scale=guidance_scale, form=cfg_form_name, causal=causal)
        x = euler_step(x, v, sigma_from_timestep(t), sigma_from_timestep(t_next))
        if trajectory is not None:
            trajectory.append(x)
    return ODEResult(x, grid, trajectory)
