"""A tiny video classifier trained on real sprites; its features define the Fréchet distance.

The net sees all frames at once (frames stacked as channels, "early fusion"), so motion is visible to
its first layer, and learns multi-hot targets: which colours, shapes and directions a video contains,
and how many objects. Its pooled features are what distribution.py compares. Built into a directory
(``classifier.safetensors`` + ``classifier.json``) and loaded back with checks, so the engine's
stage cache can hold it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.errors import CheckpointError, ConfigError
from harness.io.weights import load_weights, read_meta, save_weights
from harness.worlds.sprites.data import SpritesData
from harness.worlds.sprites.palette import SHAPES
from harness.worlds.sprites.render import COLOR_NAMES, DIRECTION_NAMES, RenderedBatch, to_model
from harness.worlds.sprites.world_config import SpritesConfig

WEIGHTS_FILE, CONFIG_FILE = "classifier.safetensors", "classifier.json"
FORMAT = "sprites-classifier/1"
# Version of the sprites-classifier stage: bump it when train_classifier builds something else for the
# same config, so cached ones are rebuilt (the rule: harness/engine/versions.py).
STAGE_VERSION = 1

HEADS = {"color": len(COLOR_NAMES), "shape": len(SHAPES), "direction": len(DIRECTION_NAMES), "count": 2}


@dataclass(frozen=True)
class ClassifierConfig:
    """Defaults sized on the default world: enough steps that colour, direction and object count are
    near-perfect on held-out videos, in a few minutes (figures: docs/history.md)."""

    steps: int = 800
    batch_size: int = 64
    lr: float = 5e-3
    width: int = 32
    feature_dim: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width % 4 or self.width <= 0:
            raise ConfigError(
                f"classifier.width must be a positive multiple of 4 (GroupNorm), got {self.width}"
            )
        if self.steps < 1 or self.batch_size < 1 or self.feature_dim < 1:
            raise ConfigError("classifier.steps, batch_size and feature_dim must be >= 1")


class SpritesClassifier(nn.Module):
    """Two stems summed at half resolution, then a shared trunk; ``features`` are its pooled output.

    ``motion`` sees all frames stacked as channels (stride 2), which is enough for colour, count and
    direction; ``appearance`` looks at the first frame at full resolution, because shapes of a few
    pixels need it (with the motion stem alone the shape head reached 52% exact on eval videos, with
    both 69-79% over two runs, same training budget). Global max pooling, not average: objects cover a tenth of the
    frame and averaging dilutes them.
    """

    def __init__(self, frames: int, width: int, feature_dim: int) -> None:
        super().__init__()
        self.frames = frames
        self.motion = nn.Conv2d(3 * frames, width, 3, stride=2, padding=1)
        self.appearance = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(16, width, 3, stride=2, padding=1),
        )
        self.trunk = nn.Sequential(
            nn.GroupNorm(4, width),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GroupNorm(4, 2 * width),
            nn.GELU(),
            nn.Conv2d(2 * width, feature_dim, 3, stride=2, padding=1),
            nn.GELU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(feature_dim, sum(HEADS.values()))

    def forward(self, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """videos float [B, T, 3, H, W] in [-1, 1] -> (features [B, D], logits [B, sum(HEADS)])."""
        feats = self.trunk(self.motion(videos.flatten(1, 2)) + self.appearance(videos[:, 0]))
        return feats, self.head(feats)

    @torch.no_grad()
    def features(self, videos: np.ndarray, batch: int = 256) -> np.ndarray:
        """float64 features [N, D] of uint8 videos [N, T, H, W, 3]."""
        self.eval()
        if videos.shape[1] != self.frames:
            raise CheckpointError(
                f"classifier was trained on {self.frames}-frame videos, got {videos.shape[1]}"
            )
        parts = [
            self(torch.from_numpy(to_model(videos[i : i + batch])))[0] for i in range(0, len(videos), batch)
        ]
        return torch.cat(parts).double().numpy()


def targets(rendered: RenderedBatch) -> torch.Tensor:
    """Multi-hot targets [N, sum(HEADS)] from the ground truth of a rendered batch."""
    st = rendered.states
    n = len(st.present)
    blocks = []
    for name, attr in (("color", st.color), ("shape", st.shape), ("direction", st.direction)):
        hot = np.zeros((n, HEADS[name]), dtype=np.float32)
        for o in range(attr.shape[1]):
            hot[np.nonzero(st.present[:, o])[0], attr[st.present[:, o], o]] = 1.0
        blocks.append(hot)
    blocks.append(np.eye(2, dtype=np.float32)[st.present.sum(1) - 1])
    return torch.from_numpy(np.concatenate(blocks, 1))


def train_classifier(out_dir: str | Path, cfg: ClassifierConfig, world: SpritesConfig) -> dict:
    """Train on fresh rendered batches, write weights + JSON config into ``out_dir``; returns metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    data = SpritesData(world)
    model = SpritesClassifier(world.frames, cfg.width, cfg.feature_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    rng = np.random.default_rng(cfg.seed)
    started = time.perf_counter()
    model.train()
    for _ in range(cfg.steps):
        rendered = data.render(cfg.batch_size, rng)
        _, logits = model(torch.from_numpy(to_model(rendered.videos)))
        loss = nn.functional.binary_cross_entropy_with_logits(logits, targets(rendered))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    metrics = {
        "train_loss": float(loss.detach()),
        "train_seconds": time.perf_counter() - started,
        **evaluate_accuracy(model, data, cfg.seed + 1, n=max(256, 4 * cfg.batch_size)),
    }

    save_weights(model, out / WEIGHTS_FILE)
    meta = {"format": FORMAT, "classifier": asdict(cfg), "world": asdict(world), "metrics": metrics}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return metrics


@torch.no_grad()
def evaluate_accuracy(model: SpritesClassifier, data: SpritesData, seed: int, n: int) -> dict[str, float]:
    """Fraction of eval-split videos whose multi-hot labels are all right (threshold 0.5): over all heads
    (``eval_accuracy``) and per head (``eval_accuracy_<head>``)."""
    model.eval()
    rendered = data.render(n, seed, split="eval")
    _, logits = model(torch.from_numpy(to_model(rendered.videos)))
    right = (logits > 0) == (targets(rendered) > 0.5)
    scores = {"eval_accuracy": float(right.all(1).float().mean())}
    for name, block in zip(HEADS, right.split(list(HEADS.values()), dim=1)):
        scores[f"eval_accuracy_{name}"] = float(block.all(1).float().mean())
    return scores


def load_classifier(directory: str | Path, world: SpritesConfig | None = None) -> SpritesClassifier:
    """Load a classifier written by ``train_classifier``; CheckpointError names the bad file or field."""
    meta = _read_meta(Path(directory))
    if world is not None:
        saved = meta["world"]
        for key, value in asdict(world).items():
            if _jsonable(value) != saved.get(key):
                raise CheckpointError(
                    f"{Path(directory) / CONFIG_FILE}: classifier trained for sprites.{key}={saved.get(key)!r}, "
                    f"world has {_jsonable(value)!r}"
                )
    cfg = meta["classifier"]
    model = SpritesClassifier(int(meta["world"]["frames"]), int(cfg["width"]), int(cfg["feature_dim"]))
    load_weights(model, Path(directory) / WEIGHTS_FILE, hint="build it with train_classifier")
    model.eval()
    return model


def _read_meta(directory: Path) -> dict:
    path = directory / CONFIG_FILE
    meta = read_meta(path, FORMAT, hint="build it with train_classifier")
    for key in ("classifier", "world"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(f"{path}: key '{key}' missing")
    return meta


def _jsonable(value):
    """Tuples become lists in JSON; compare like with like."""
    return json.loads(json.dumps(value))
