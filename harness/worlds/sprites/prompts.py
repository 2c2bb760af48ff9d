"""Prompts of the sprites world: grammar, parser, tokenizer and the train / eval / heldout suite.

Grammar (lower case, single spaces)::

    prompt := object [ " and " object ]
    object := "a" colour shape [ " moving " direction ]

e.g. ``a red circle moving left and a blue square moving up``. Prompts built by this module always name
a direction for every object; the parser also accepts objects without one (direction ``None``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError
from harness.worlds.sprites.palette import COLORS, DIRECTIONS, SHAPES
from harness.worlds.sprites.world_config import SpritesConfig

PAD, BOS = "<pad>", "<bos>"
GRAMMAR_WORDS = ("a", "and", "moving")
VOCAB: tuple[str, ...] = (PAD, BOS, *GRAMMAR_WORDS, *COLORS, *SHAPES, *DIRECTIONS)
MAX_TOKENS = 12  # <bos> + two objects of five words + "and"
SPLITS = ("train", "eval", "heldout")
_INDEX = {word: i for i, word in enumerate(VOCAB)}


@dataclass(frozen=True)
class ObjectSpec:
    """One object named by a prompt; ``direction`` may be None when the prompt leaves it open."""

    color: str
    shape: str
    direction: str | None = None

    def words(self) -> list[str]:
        tail = ["moving", self.direction] if self.direction else []
        return ["a", self.color, self.shape, *tail]


@dataclass(frozen=True)
class Scene:
    """The attributes a prompt names: one or two objects, drawn in this order (the last on top)."""

    objects: tuple[ObjectSpec, ...]

    @property
    def prompt(self) -> str:
        return " and ".join(" ".join(obj.words()) for obj in self.objects)


def parse_prompt(prompt: str) -> Scene:
    """Read a prompt back into its attributes; an unknown word raises ConfigError naming it."""
    words = prompt.strip().lower().split()
    for word in words:
        if word not in _INDEX or word in (PAD, BOS):
            raise ConfigError(f"prompt {prompt!r}: unknown word '{word}' (known: {', '.join(VOCAB[2:])})")
    parts: list[list[str]] = [[]]
    for word in words:
        if word == "and":
            parts.append([])
        else:
            parts[-1].append(word)
    if not 1 <= len(parts) <= 2:
        raise ConfigError(f"prompt {prompt!r}: names {len(parts)} objects; the sprites world has 1 or 2")
    objects = tuple(_parse_object(prompt, part) for part in parts)
    if len(objects) == 2 and objects[0].color == objects[1].color:
        raise ConfigError(
            f"prompt {prompt!r}: both objects are {objects[0].color}; each object needs its own colour"
        )
    return Scene(objects)


def _parse_object(prompt: str, words: list[str]) -> ObjectSpec:
    padded = words + [""] * (5 - len(words))
    shape_ok = len(words) in (3, 5) and padded[0] == "a" and padded[1] in COLORS and padded[2] in SHAPES
    motion_ok = len(words) == 3 or (padded[3] == "moving" and padded[4] in DIRECTIONS)
    if not (shape_ok and motion_ok):
        raise ConfigError(
            f"prompt {prompt!r}: '{' '.join(words)}' is not 'a <colour> <shape> [moving <direction>]'"
        )
    return ObjectSpec(words[1], words[2], words[4] if len(words) == 5 else None)


def encode(prompt: str) -> tuple[list[int], list[int]]:
    """Token ids and mask, both of length MAX_TOKENS; ``""`` (the CFG null prompt) is just <bos>."""
    if prompt.strip():
        parse_prompt(prompt)  # validates grammar and words with a clear error
    words = [BOS, *prompt.strip().lower().split()]
    ids = [_INDEX[w] for w in words] + [_INDEX[PAD]] * (MAX_TOKENS - len(words))
    mask = [1] * len(words) + [0] * (MAX_TOKENS - len(words))
    return ids, mask


def encode_batch(prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids [N, MAX_TOKENS] and bool mask [N, MAX_TOKENS]."""
    pairs = [encode(p) for p in prompts]
    ids = np.asarray([p[0] for p in pairs], dtype=np.int64).reshape(len(prompts), MAX_TOKENS)
    mask = np.asarray([p[1] for p in pairs], dtype=bool).reshape(len(prompts), MAX_TOKENS)
    return ids, mask


class PromptSuite:
    """Scenes per split for one world config.

    ``train``: random scenes whose colour-shape pairs avoid ``cfg.held_out``; ``eval``: a fixed list of
    in-distribution prompts covering every colour, shape and direction; ``heldout``: a fixed list whose
    first object is a held-out pair (compositional generalisation). Fixed lists are deterministic.
    """

    def __init__(self, cfg: SpritesConfig, eval_size: int = 48) -> None:
        self.cfg = cfg
        held = set(cfg.held_out)
        pairs = [(c, s) for c in cfg.colors for s in cfg.shapes]
        self.train_pairs = [p for p in pairs if p not in held]
        self.heldout_pairs = [p for p in pairs if p in held]
        if not self.train_pairs:
            raise ConfigError("sprites.held_out removes every colour-shape pair; nothing is left to train on")
        self._fixed = {
            "eval": self._fixed_list(self.train_pairs, eval_size, seed=1),
            "heldout": self._fixed_list(self.heldout_pairs, eval_size, seed=2) if self.heldout_pairs else [],
        }

    def scenes(self, split: str) -> list[Scene]:
        """The fixed scene list of ``eval`` / ``heldout`` (``train`` is sampled, see ``sample``)."""
        _check_split(split)
        if split == "train":
            raise ConfigError("split 'train' has no fixed list; use PromptSuite.sample(n, rng, 'train')")
        return list(self._fixed[split])

    def prompts(self, split: str) -> list[str]:
        return [scene.prompt for scene in self.scenes(split)]

    def sample(self, n: int, rng: np.random.Generator, split: str = "train") -> list[Scene]:
        """``n`` scenes: fresh random ones for train, drawn with replacement from the list otherwise."""
        _check_split(split)
        if split == "train":
            return [self._random_scene(rng, self.train_pairs, self.train_pairs) for _ in range(n)]
        fixed = self._fixed[split]
        if not fixed:
            raise ConfigError(f"split '{split}' is empty for this config (sprites.held_out is empty)")
        return [fixed[i] for i in rng.integers(0, len(fixed), size=n)]

    def _fixed_list(self, first_pairs: list, size: int, seed: int) -> list[Scene]:
        rng = np.random.default_rng(seed)
        dirs = self.cfg.directions
        # Cycle through every (pair, direction) before repeating, so small lists still cover all attributes.
        base = list(itertools.product(first_pairs, dirs))
        order = rng.permutation(len(base))
        scenes = []
        for i in range(size):
            (color, shape), direction = base[order[i % len(base)]]
            first = ObjectSpec(color, shape, direction)
            scenes.append(self._with_second(rng, first, self.train_pairs))
        return scenes

    def _random_scene(self, rng: np.random.Generator, first_pairs: list, other_pairs: list) -> Scene:
        color, shape = first_pairs[rng.integers(len(first_pairs))]
        first = ObjectSpec(color, shape, self.cfg.directions[rng.integers(len(self.cfg.directions))])
        return self._with_second(rng, first, other_pairs)

    def _with_second(self, rng: np.random.Generator, first: ObjectSpec, pairs: list) -> Scene:
        """Adds a second object of a different colour with probability ``two_object_fraction``."""
        if self.cfg.max_objects < 2 or rng.random() >= self.cfg.two_object_fraction:
            return Scene((first,))
        options = [p for p in pairs if p[0] != first.color]
        if not options:
            return Scene((first,))
        color, shape = options[rng.integers(len(options))]
        second = ObjectSpec(color, shape, self.cfg.directions[rng.integers(len(self.cfg.directions))])
        return Scene((first, second))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown prompt split '{split}'; choose one of {', '.join(SPLITS)}")
