"""The fixed vocabulary of the sprites world: colours, shapes, directions, backgrounds.

Everything the renderer can draw is listed here once, so the prompt grammar, the renderer and the
detector cannot disagree. Object colours are saturated and far apart in RGB (pairwise distance >= 100),
backgrounds are dark and unsaturated, so a pixel's nearest known colour identifies it exactly on clean
frames and still does after moderate noise, blur or brightness flicker.
"""

from __future__ import annotations

import numpy as np

# Object colours (RGB, uint8). Pairwise Euclidean distance >= 100; every one is >= 130 away from any
# background colour below.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 90, 240),
    "yellow": (240, 220, 40),
    "purple": (180, 60, 220),
    "white": (235, 235, 235),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")

# Unit velocity per direction word, as (dx, dy) in image coordinates (y grows downwards).
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}

# Background tones (RGB). Patterns alternate two tones; tones are >= 40 apart so the detector can
# tell them from each other, and all stay dark so objects stand out.
_DARK = (20, 20, 28)
_SLATE = (64, 72, 84)
_BROWN = (60, 44, 30)
BACKGROUNDS: dict[str, tuple[str, tuple[tuple[int, int, int], ...]]] = {
    "dark": ("plain", (_DARK,)),
    "slate": ("plain", (_SLATE,)),
    "checker": ("checker", (_DARK, _SLATE)),
    "stripes": ("stripes", (_DARK, _BROWN)),
}


# Opacity of the trail copy at an object's last position; copies further back fade linearly (trail_alpha).
# Below one half, so a trail pixel is nearer its background than its object colour even when blurred.
TRAIL_OPACITY = 0.4


def trail_alpha(k: int, trail: int) -> float:
    """Opacity of copy ``k`` (1 … trail): fading linearly from TRAIL_OPACITY to TRAIL_OPACITY / trail."""
    return TRAIL_OPACITY * (trail + 1 - k) / trail


def trail_tone(color: np.ndarray, background: np.ndarray, alpha: float) -> np.ndarray:
    """A copy's pixel: ``alpha`` of the object colour over the background, rounded to uint8 like the
    renderer's frames (so the detector's table of known tones holds it exactly)."""
    mixed = np.asarray(background, dtype=np.float64) + alpha * (
        np.asarray(color, dtype=np.float64) - np.asarray(background, dtype=np.float64))
    return np.rint(mixed).astype(np.uint8)


def trail_tones(colors: tuple[str, ...], backgrounds: tuple[str, ...], trail: int) -> np.ndarray:
    """Every tone a trail can paint in this world, float [K, 3] (empty when ``trail`` is 0)."""
    tones = [trail_tone(np.asarray(COLORS[c]), bg, trail_alpha(k, trail))
             for c in colors for bg in background_tones(backgrounds) for k in range(1, trail + 1)]
    return np.asarray(tones, dtype=np.float64).reshape(-1, 3)


def background_image(name: str, resolution: int) -> np.ndarray:
    """The static background ``name`` as uint8 [H, W, 3]; patterns scale with the resolution."""
    kind, tones = BACKGROUNDS[name]
    h = w = resolution
    cell = max(2, resolution // 8)
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == "plain":
        which = np.zeros((h, w), dtype=np.int64)
    elif kind == "checker":
        which = ((yy // cell) + (xx // cell)) % 2
    else:  # stripes: horizontal bands
        which = (yy // cell) % 2
    return np.asarray(tones, dtype=np.uint8)[which]


def background_tones(names: tuple[str, ...]) -> np.ndarray:
    """All distinct background colours used by ``names`` as float [K, 3]."""
    tones = sorted({tone for name in names for tone in BACKGROUNDS[name][1]})
    return np.asarray(tones, dtype=np.float64)


def shape_templates(size: int) -> np.ndarray:
    """Binary masks bool [len(SHAPES), size, size]; every shape spans the full box.

    Spanning the full box makes the box-sum maximum land exactly on the object's top-left corner
    on clean frames, which is what makes detection exact.
    """
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = c + 0.3  # touches the box edges at their midpoints only, so it reads as round
    circle = (yy - c) ** 2 + (xx - c) ** 2 <= r * r
    square = np.ones((size, size), dtype=bool)
    # Apex at the top centre, base on the bottom row.
    half_width = (yy + 1) / size * (size / 2.0)
    triangle = np.abs(xx - c) <= half_width
    diamond = np.abs(xx - c) + np.abs(yy - c) <= size / 2.0
    arm = max(1, round(size / 3.0))
    lo = (size - arm) // 2
    band = np.zeros(size, dtype=bool)
    band[lo : lo + arm] = True
    cross = band[:, None] | band[None, :]
    masks = {"circle": circle, "square": square, "triangle": triangle, "diamond": diamond, "cross": cross}
    return np.stack([masks[name] for name in SHAPES])
