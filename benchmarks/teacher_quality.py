"""Train a sprites teacher (or load one) and measure what the issue's quality target asks: sprites-bench
object class, colour and direction of its Euler samples on the eval prompts, plus a PNG strip of frames.

Every candidate design is tried the same way, so figures are comparable::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/teacher_quality.py --out /tmp/t1 \
        --set teacher.lr=6e-3 --set world.object_size=7 --set dit.patch_size=4

``--set`` takes ``teacher.FIELD``, ``world.FIELD`` and ``dit.FIELD`` of the ``default`` preset (values parsed as
YAML). ``--load DIR`` skips training and evaluates a saved checkpoint. ``--sample`` lists sampler settings
to score, as ``CFG:SHIFT`` (default ``3:5``), because the sampler's shift and guidance move the scores too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.diffusion.ode import sample_ode
from harness.io.video import frame_grid, save_png
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.evaluator import SpritesBench
from harness.worlds.sprites.prompts import encode_batch
from harness.worlds.sprites.render import from_model
from harness.worlds.sprites.teacher import load_model, null_tokens, train_teacher
from harness.worlds.sprites.world import world_preset

KEYS = ("object_class", "color", "motion_direction", "multiple_objects", "subject_consistency", "imaging_quality")


def preset_with(overrides: list[str]):
    preset = world_preset("default")
    parts = {"teacher": preset.teacher, "world": preset.world, "dit": preset.dit}
    for item in overrides:
        key, _, raw = item.partition("=")
        section, _, name = key.partition(".")
        if section not in parts or not name:
            raise SystemExit(f"--set {item}: expected teacher.FIELD, world.FIELD or dit.FIELD")
        value = yaml.safe_load(raw)
        parts[section] = dataclasses.replace(parts[section], **{name: tuple(value) if isinstance(value, list)
                                                                else value})
    if parts["world"].resolution != parts["dit"].height:
        parts["dit"] = dataclasses.replace(parts["dit"], height=parts["world"].resolution,
                                           width=parts["world"].resolution)
    return parts["world"], parts["dit"], parts["teacher"]


@torch.no_grad()
def sample(model, world, prompts: list[str], guidance: float, shift: float, steps: int, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    noise = torch.randn(len(prompts), world.frames, cfg.channels, cfg.height, cfg.width, generator=gen)
    ids = torch.from_numpy(encode_batch(prompts)[0])
    x0 = sample_ode(model, noise, ids, null_tokens(len(prompts)), steps=steps, shift=shift,
                    guidance_scale=guidance, cfg_form_name="standard").x0
    return from_model(x0.float().numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--load", help="evaluate this checkpoint folder instead of training")
    parser.add_argument("--sample", nargs="+", default=["3:5"], help="CFG:SHIFT pairs to score")
    parser.add_argument("--steps", type=int, default=50, help="Euler steps per sample")
    parser.add_argument("--repeats", type=int, default=1,
                        help="samples per eval prompt (each with its own noise): 48 videos score to about ±7%%")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world, dit, recipe = preset_with(args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.load:
        model = load_model(args.load)
        metrics = {}
    else:
        started = time.perf_counter()

        def report(step: int, total: int) -> None:
            if step % 200 == 0 or step == total:
                print(f"step {step}/{total} {time.perf_counter() - started:.0f}s", flush=True)

        metrics = train_teacher(out / "teacher", world, dit, recipe, progress=report)
        model = load_model(out / "teacher")
        print(json.dumps(metrics))
    data = SpritesData(world)
    prompts = data.suite.prompts("eval") * args.repeats
    bench = SpritesBench(world)
    real = bench.score(data.render_prompts(prompts, 0).videos, prompts)
    print("real      " + " ".join(f"{k}={real[k]:.3f}" for k in KEYS))
    results = {"overrides": args.overrides, "metrics": metrics, "real": real}
    for spec in args.sample:
        guidance, shift = (float(v) for v in spec.split(":"))
        videos = sample(model, world, prompts, guidance, shift, args.steps, seed=0)
        scores = bench.score(videos, prompts)
        results[spec] = scores
        print(f"cfg {guidance:g} shift {shift:g}  " + " ".join(f"{k}={scores[k]:.3f}" for k in KEYS), flush=True)
        grid = frame_grid([v.repeat(4, 1).repeat(4, 2) for v in videos[:12]], prompts[:12])
        save_png(grid, out / f"strip_cfg{guidance:g}_shift{shift:g}.png")
    (out / "quality.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
