"""Does a sprites teacher read the direction word? Its x0 error on real videos, prompted with the true,
the opposite and a perpendicular direction.

A teacher that uses the word predicts real videos best with the true word; equal errors for the true and
the opposite word mean it reads the axis of the motion but not its sign, equal errors for all three mean
it ignores the word. Two settings: every frame at one noise level (what the Euler sampler sees) and the
first frame clean with the rest noisy (image-to-video, where the word is the only clue to where the object
goes)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/direction_probe.py \
        harness/worlds/sprites/weights/default_teacher

This is how the teacher's direction failure was located (docs/history.md
has the figures); a probe takes a few seconds, sampling takes minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.diffusion.conventions import add_noise, x0_from_v
from harness.worlds.sprites.prompts import ObjectSpec, Scene, encode_batch
from harness.worlds.sprites.render import Renderer, to_model
from harness.worlds.sprites.teacher import load_model, read_meta
from harness.worlds.sprites.world import world_preset
from harness.worlds.sprites.world_config import SpritesConfig

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
PERPENDICULAR = {"left": "up", "up": "right", "right": "down", "down": "left"}
COLORS = ("red", "green", "yellow", "blue")
SHAPES = ("circle", "square", "cross", "diamond")


def probe(model, world, videos: int, sigmas: tuple[float, ...], seed: int = 5) -> list[dict]:
    """Rows of (setting, σ, x0 MSE on the noisy frames with the true / opposite / perpendicular word)."""
    directions = list(OPPOSITE)
    scenes = [Scene((ObjectSpec(COLORS[i % 4], SHAPES[(i // 4) % 4], directions[i % 4]),))
              for i in range(videos)]
    x0 = torch.from_numpy(to_model(Renderer(world).render(scenes, np.random.default_rng(seed)).videos))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    words = {"true": [s.objects[0].direction for s in scenes]}
    words["opposite"] = [OPPOSITE[d] for d in words["true"]]
    words["perpendicular"] = [PERPENDICULAR[d] for d in words["true"]]
    tokens = {name: torch.from_numpy(encode_batch([
        Scene((ObjectSpec(s.objects[0].color, s.objects[0].shape, d),)).prompt for s, d in zip(scenes, ds)
    ])[0]) for name, ds in words.items()}
    rows = []
    for setting in ("uniform", "first frame clean"):
        for level in sigmas:
            sigma = torch.full(x0.shape[:2], level)
            if setting != "uniform":
                sigma[:, 0] = 0.0
            x_t = add_noise(x0, noise, sigma)
            row = {"setting": setting, "sigma": level}
            for name, ids in tokens.items():
                with torch.no_grad():
                    v = model(x_t, sigma * 1000.0, ids, causal=False)
                row[name] = float((x0_from_v(x_t, v, sigma) - x0)[:, 1:].square().mean())
            rows.append(row)
    return rows


def checkpoint_world(folder: Path) -> SpritesConfig:
    """The world the checkpoint was trained on (its model.json), so the probe's videos look like its data;
    the default preset's for fields an older checkpoint does not record."""
    recorded = read_meta(folder).get("world", {})
    as_tuples = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                 for k, v in recorded.items()}
    return dataclasses.replace(world_preset("default").world, **as_tuples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a teacher checkpoint folder (model.safetensors + model.json)")
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--lead-frames", type=int, default=None, help="render with this world lead_frames")
    args = parser.parse_args()
    torch.set_num_threads(2)
    world = checkpoint_world(Path(args.model))
    if args.lead_frames is not None:
        world = dataclasses.replace(world, lead_frames=args.lead_frames)
    rows = probe(load_model(args.model), world, args.videos, (0.9, 0.7, 0.5))
    print(f"{'setting':18s} {'sigma':>5s} {'true':>8s} {'opposite':>9s} {'perpendicular':>13s}")
    for r in rows:
        errors = f"{r['true']:8.4f} {r['opposite']:9.4f} {r['perpendicular']:13.4f}"
        print(f"{r['setting']:18s} {r['sigma']:5.1f} {errors}")


if __name__ == "__main__":
    main()
