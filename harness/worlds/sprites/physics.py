"""Fit observed trajectories with the world's physics: constant speed, reflected off the walls.

Each axis moves independently in the world, so each is fitted on its own by brute force over a grid
of start positions (half-pixel steps) and velocities (quarter-pixel steps); the closed-form bounce of
render.py predicts every frame. Clean renders fit with zero error because their true start and speed
lie on the grid; a jittered or wobbling trajectory cannot be fitted and leaves a residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.worlds.sprites.render import bounce

POSITION_STEP = 0.5
VELOCITY_STEP = 0.25
CHUNK = 256  # trajectories per pass


@dataclass(frozen=True)
class PhysicsFit:
    """Per trajectory: fitted start (x, y), velocity leaving frame 0 (x, y) and RMS residual in pixels."""

    start: np.ndarray  # float64 [M, 2]
    velocity: np.ndarray  # float64 [M, 2]
    rms: np.ndarray  # float64 [M]


def fit_trajectories(
    positions: np.ndarray, observed: np.ndarray, travel: int, max_speed: float
) -> PhysicsFit:
    """Fit M trajectories ``positions`` float [M, T, 2] using only frames where ``observed`` [M, T].

    Trajectories with fewer than 2 observed frames get an infinite residual.
    """
    m, t, _ = positions.shape
    starts = np.arange(0.0, travel + 1e-9, POSITION_STEP)
    speeds = np.arange(-max_speed, max_speed + 1e-9, VELOCITY_STEP)
    grid_p, grid_v = (a.ravel() for a in np.meshgrid(starts, speeds, indexing="ij"))
    steps = np.arange(t, dtype=np.float64)
    predicted = bounce(grid_p[:, None], grid_v[:, None], steps[None, :], travel)[0]  # [G, T]
    start = np.zeros((m, 2))
    velocity = np.zeros((m, 2))
    sq_error = np.zeros(m)
    weights = observed.astype(np.float64)
    for axis in range(2):
        for lo in range(0, m, CHUNK):
            obs = positions[lo : lo + CHUNK, :, axis]
            wgt = weights[lo : lo + CHUNK]
            err = (((obs[:, None, :] - predicted[None]) ** 2) * wgt[:, None, :]).sum(-1)  # [chunk, G]
            best = err.argmin(-1)
            start[lo : lo + CHUNK, axis] = grid_p[best]
            velocity[lo : lo + CHUNK, axis] = bounce(grid_p[best], grid_v[best], 0.0, travel)[1]
            sq_error[lo : lo + CHUNK] += err[np.arange(len(best)), best]
    count = weights.sum(-1)
    rms = np.where(count >= 2, np.sqrt(sq_error / np.maximum(count, 1)), np.inf)
    return PhysicsFit(start, velocity, rms)
