"""Retrain the sprites teacher: ``python -m harness.worlds.sprites.retrain_teacher --size default --out DIR``.

How the shipped teacher (``weights/default_teacher``) was made; a run never calls this (the world
trains a missing teacher through its stage cache instead).
"""

from __future__ import annotations

import argparse
import json

import torch

from harness.worlds.sprites.teacher import train_teacher
from harness.worlds.sprites.world import world_preset


def main(argv: list[str] | None = None) -> None:
    """Train a teacher from scratch into ``--out`` (``model.safetensors`` + ``model.json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default", help="world preset (smoke | default)")
    parser.add_argument("--out", required=True, help="output folder for model.safetensors + model.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = world_preset(args.size)

    def report(step: int, total: int) -> None:
        if step % 100 == 0 or step == total:
            print(f"step {step}/{total}", flush=True)

    metrics = train_teacher(args.out, preset.world, preset.dit, preset.teacher, progress=report)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
