"""Does a sprites teacher know which object a word belongs to? Its x0 error on real two-object videos,
prompted with the true prompt and with the two objects' directions, shapes or colours swapped.

Swapping words between the objects keeps the prompt's bag of words, so a teacher that reads the prompt
as a bag (the default teacher before phrase pooling) predicts the swapped prompts exactly as well as the
true one: it cannot tell which object should go left. A teacher that binds words to their object predicts
worse after every swap; naming the objects in the other order should change nothing. "other directions"
(two directions the prompt does not name) is the scale: what a wrong word costs::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/binding_probe.py \
        harness/worlds/sprites/weights/default_teacher

The figures that led to phrase pooling are in docs/history.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from direction_probe import checkpoint_world

from harness.diffusion.conventions import add_noise, x0_from_v
from harness.worlds.sprites.prompts import ObjectSpec, Scene, encode_batch
from harness.worlds.sprites.render import Renderer, to_model
from harness.worlds.sprites.teacher import load_model
from harness.worlds.sprites.world_config import SpritesConfig

Pair = tuple[ObjectSpec, ObjectSpec]


def _swap(field: str) -> Callable[[ObjectSpec, ObjectSpec], Pair]:
    def swap(a: ObjectSpec, b: ObjectSpec) -> Pair:
        return (dataclasses.replace(a, **{field: getattr(b, field)}),
                dataclasses.replace(b, **{field: getattr(a, field)}))
    return swap


def _other_directions(world: SpritesConfig) -> Callable[[ObjectSpec, ObjectSpec], Pair]:
    def other(a: ObjectSpec, b: ObjectSpec) -> Pair:
        unused = [d for d in world.directions if d not in (a.direction, b.direction)]
        return dataclasses.replace(a, direction=unused[0]), dataclasses.replace(b, direction=unused[1])
    return other


def two_object_scenes(world: SpritesConfig, count: int, seed: int) -> list[Scene]:
    """Scenes of two objects differing in colour, shape and direction (so every swap changes the prompt)."""
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(count):
        colors, shapes, directions = (rng.choice(len(v), 2, replace=False)
                                      for v in (world.colors, world.shapes, world.directions))
        scenes.append(Scene(tuple(ObjectSpec(world.colors[colors[k]], world.shapes[shapes[k]],
                                             world.directions[directions[k]]) for k in (0, 1))))
    return scenes


def probe(model, world: SpritesConfig, videos: int, sigmas: tuple[float, ...], seed: int = 5) -> list[dict]:
    """Rows of (σ, x0 MSE per prompt variant)."""
    if len(world.directions) < 4:
        raise SystemExit("the probe needs a world with at least four directions")
    scenes = two_object_scenes(world, videos, seed)
    x0 = torch.from_numpy(to_model(Renderer(world).render(scenes, np.random.default_rng(seed)).videos))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    variants: dict[str, Callable[[ObjectSpec, ObjectSpec], Pair]] = {
        "true": lambda a, b: (a, b),
        "other order": lambda a, b: (b, a),
        "swap direction": _swap("direction"),
        "swap shape": _swap("shape"),
        "swap colour": _swap("color"),
        "other directions": _other_directions(world),
    }
    tokens = {name: torch.from_numpy(encode_batch([Scene(change(*s.objects)).prompt for s in scenes])[0])
              for name, change in variants.items()}
    rows = []
    for level in sigmas:
        sigma = torch.full(x0.shape[:2], level)
        x_t = add_noise(x0, noise, sigma)
        row: dict = {"sigma": level}
        for name, ids in tokens.items():
            with torch.no_grad():
                v = model(x_t, sigma * 1000.0, ids, causal=False)
            row[name] = float((x0_from_v(x_t, v, sigma) - x0).square().mean())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a teacher checkpoint folder (model.safetensors + model.json)")
    parser.add_argument("--videos", type=int, default=120)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = probe(load_model(args.model).eval(), checkpoint_world(Path(args.model)), args.videos,
                 (0.9, 0.8, 0.7, 0.6, 0.5))
    names = [k for k in rows[0] if k != "sigma"]
    print(f"{'sigma':>5s} " + " ".join(f"{n:>16s}" for n in names))
    for r in rows:
        print(f"{r['sigma']:5.1f} " + " ".join(f"{r[n]:16.4f}" for n in names))


if __name__ == "__main__":
    main()
