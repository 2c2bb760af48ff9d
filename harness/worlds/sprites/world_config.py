"""What a sprites world contains: resolution, length, attribute sets, motion and the held-out pairs."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import ConfigError
from harness.worlds.sprites.palette import BACKGROUNDS, COLORS, DIRECTIONS, SHAPES


@dataclass(frozen=True)
class SpritesConfig:
    """One sprites world. Every field is part of the data's identity (teacher caches key on it).

    ``object_size`` 0 means "about 30% of the frame side", large enough for the shape to stay
    recognisable at 16x16. Speeds are whole pixels per frame so trajectories (and their wall
    bounces) are exact on the pixel grid. ``lead_frames`` sets how many steps an object first moves the way
    its prompt names before it may bounce; ``trail`` draws fading copies at an object's last positions.
    ``held_out`` lists colour-shape pairs never rendered for the train split; the ``heldout`` prompt
    split is made of them.
    """

    resolution: int = 32
    frames: int = 8
    colors: tuple[str, ...] = tuple(COLORS)
    shapes: tuple[str, ...] = SHAPES
    directions: tuple[str, ...] = tuple(DIRECTIONS)
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)
    max_objects: int = 2
    two_object_fraction: float = 0.5
    object_size: int = 0
    speed_min: int = 1
    speed_max: int = 3
    # every object starts with room for this many steps its named way before a wall can turn it
    lead_frames: int = 1
    # fading copies of each object at its last ``trail`` positions (motion blur): the way an object goes is
    # then visible in one frame, not only across frames (see trail_alpha in palette.py)
    trail: int = 0
    held_out: tuple[tuple[str, str], ...] = field(
        default=(("red", "triangle"), ("blue", "circle"), ("yellow", "cross"), ("green", "diamond"))
    )

    def __post_init__(self) -> None:
        _check_names("colors", self.colors, COLORS)
        _check_names("shapes", self.shapes, SHAPES)
        _check_names("directions", self.directions, DIRECTIONS)
        _check_names("backgrounds", self.backgrounds, BACKGROUNDS)
        if self.resolution < 12:
            raise ConfigError(
                f"sprites.resolution must be >= 12 to keep shapes recognisable, got {self.resolution}"
            )
        if self.frames < 3:
            raise ConfigError(f"sprites.frames must be >= 3 (motion needs three frames), got {self.frames}")
        if self.max_objects not in (1, 2):
            raise ConfigError(f"sprites.max_objects must be 1 or 2, got {self.max_objects}")
        if self.max_objects == 2 and len(self.colors) < 2:
            raise ConfigError("sprites.colors needs at least 2 colours when max_objects is 2")
        if not 0.0 <= self.two_object_fraction <= 1.0:
            raise ConfigError(
                f"sprites.two_object_fraction must be in [0, 1], got {self.two_object_fraction}"
            )
        size = self.size
        if not 5 <= size <= self.resolution // 2:
            raise ConfigError(
                f"sprites.object_size must be in [5, resolution/2 = {self.resolution // 2}], got {size}"
            )
        if not 1 <= self.speed_min <= self.speed_max < self.resolution - size:
            raise ConfigError(
                f"sprites.speed_min/speed_max must satisfy 1 <= min <= max < {self.resolution - size}, "
                f"got {self.speed_min}/{self.speed_max}"
            )
        if not 1 <= self.lead_frames or self.lead_frames * self.speed_max > self.travel:
            raise ConfigError(
                f"sprites.lead_frames must satisfy 1 <= lead_frames and lead_frames * speed_max <= "
                f"{self.travel} (the room an object has to travel), got {self.lead_frames} * {self.speed_max}"
            )
        if not 0 <= self.trail <= 3:
            raise ConfigError(f"sprites.trail must be in [0, 3] (fading copies behind an object), got {self.trail}")
        for pair in self.held_out:
            if len(pair) != 2 or pair[0] not in COLORS or pair[1] not in SHAPES:
                raise ConfigError(f"sprites.held_out entry {pair!r} is not a (colour, shape) pair")

    @property
    def size(self) -> int:
        """Side of an object's bounding box in pixels."""
        return self.object_size or max(5, round(0.3 * self.resolution))

    @property
    def travel(self) -> int:
        """Largest top-left coordinate an object can take (the wall for bounces)."""
        return self.resolution - self.size


def _check_names(field_name: str, names: tuple[str, ...], known) -> None:
    if not names:
        raise ConfigError(f"sprites.{field_name} must not be empty")
    for name in names:
        if name not in known:
            raise ConfigError(f"sprites.{field_name}: unknown value '{name}'; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"sprites.{field_name} lists a value twice: {list(names)}")
