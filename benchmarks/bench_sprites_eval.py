"""Throughput of the sprites world's data path and of sprites-bench, in videos per second.

    .venv/bin/python benchmarks/bench_sprites_eval.py [--resolution 32] [--frames 8] [--train-classifier]

Prints one line per figure: renderer (uint8 videos), the training batch API (render + tokens + torch
tensors), the evaluator (score of N videos), and optionally the classifier's training time and accuracy.
Figures are medians of a few repeats; the machine's other load shows up in them, so say what ran beside.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from harness.worlds.sprites.classifier import ClassifierConfig, train_classifier
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.evaluator import SpritesBench
from harness.worlds.sprites.world_config import SpritesConfig


def rate(fn, n: int, repeats: int) -> float:
    """Median videos/s of ``fn()`` processing ``n`` videos."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-videos", type=int, default=256)
    parser.add_argument("--train-classifier", action="store_true")
    parser.add_argument("--classifier-steps", type=int, default=ClassifierConfig.steps)
    args = parser.parse_args()
    cfg = SpritesConfig(resolution=args.resolution, frames=args.frames)
    data = SpritesData(cfg)
    print(f"world: {cfg.resolution}x{cfg.resolution}, {cfg.frames} frames, object size {cfg.size}px")
    seeds = iter(range(10**6))
    for n in (64, 1024):
        render = rate(lambda n=n: data.render(n, next(seeds)), n, args.repeats)
        batch = rate(lambda n=n: data.batch(n, next(seeds)), n, args.repeats)
        print(f"renderer, batch {n:5d}: {render:9.0f} videos/s")
        print(f"data.batch (render + tokens + tensors), batch {n:5d}: {batch:9.0f} videos/s")
    real = data.render(args.eval_videos, 0, split="eval")
    noise = np.random.default_rng(0).integers(0, 256, size=real.videos.shape, dtype=np.uint8)
    bench = SpritesBench(cfg)
    n = args.eval_videos
    for name, videos in (("real", real.videos), ("noise", noise)):
        speed = rate(lambda videos=videos: bench.score(videos, real.prompts), n, args.repeats)
        print(f"sprites-bench score, {n} {name} videos: {speed:9.1f} videos/s")
    if args.train_classifier:
        clf_cfg = ClassifierConfig(steps=args.classifier_steps)
        with tempfile.TemporaryDirectory() as out:
            metrics = train_classifier(out, clf_cfg, cfg)
        print(
            f"classifier: {clf_cfg.steps} steps x batch {clf_cfg.batch_size} in {metrics['train_seconds']:.1f} s"
        )
        heads = ", ".join(
            f"{k.removeprefix('eval_accuracy_')} {v:.3f}"
            for k, v in metrics.items()
            if k.startswith("eval_accuracy_")
        )
        print(
            f"classifier: exact multi-label accuracy on eval prompts {metrics['eval_accuracy']:.3f} ({heads})"
        )


if __name__ == "__main__":
    main()
