"""Controlled defects for validating sprites-bench: each targets one dimension.

Pixel corruptions act on uint8 videos; state corruptions edit the ground truth and redraw, so the
defect is exactly the one named and nothing else changes.
"""

from __future__ import annotations

import numpy as np

from harness.worlds.sprites.render import BACKGROUND_NAMES, COLOR_NAMES, Renderer, SpriteStates


def blur(videos: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur of every frame (separable, edge-replicating) -> imaging_quality."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = videos.astype(np.float32)
    for axis in (2, 3):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        length = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + length), axis=axis) for i, w in enumerate(taps))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def flicker(videos: np.ndarray, amplitude: float = 12.0) -> np.ndarray:
    """Global brightness alternating +-amplitude from frame to frame -> temporal_flickering."""
    sign = np.where(np.arange(videos.shape[1]) % 2 == 0, 1.0, -1.0).reshape(1, -1, 1, 1, 1)
    return np.clip(videos.astype(np.float32) + amplitude * sign, 0, 255).astype(np.uint8)


def jitter(renderer: Renderer, states: SpriteStates, pixels: int = 2, seed: int = 0) -> np.ndarray:
    """Objects displaced by up to +-pixels per frame, off their physical path -> motion_smoothness."""
    rng = np.random.default_rng(seed)
    shaken = states.top_left + rng.integers(-pixels, pixels + 1, size=states.top_left.shape)
    return renderer.draw(states.edit(top_left=np.clip(shaken, 0, renderer.cfg.travel)))


def recolor(renderer: Renderer, states: SpriteStates, seed: int = 0) -> np.ndarray:
    """The first object painted in a colour of the config the video does not use -> color."""
    rng = np.random.default_rng(seed)
    allowed = [COLOR_NAMES.index(c) for c in renderer.cfg.colors]
    color = states.color.copy()
    for i in range(len(color)):
        options = [c for c in allowed if c not in color[i][states.present[i]]]
        color[i, 0] = options[rng.integers(len(options))]
    return renderer.draw(states.edit(color=color))


def drop_second(renderer: Renderer, states: SpriteStates) -> np.ndarray:
    """The second object of two-object videos left out -> multiple_objects."""
    present = states.present.copy()
    present[:, 1] = False
    return renderer.draw(states.edit(present=present))


def switch_background(renderer: Renderer, states: SpriteStates) -> np.ndarray:
    """The background changes to another one of the config half-way through -> background_consistency."""
    allowed = [BACKGROUND_NAMES.index(b) for b in renderer.cfg.backgrounds]
    position = np.searchsorted(allowed, states.background)
    other = np.asarray(allowed)[(position + 1) % len(allowed)]
    videos = renderer.draw(states)
    half = videos.shape[1] // 2
    videos[:, half:] = renderer.draw(states.edit(background=other))[:, half:]
    return videos


def pure_noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def static_grey(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, 128, dtype=np.uint8)
