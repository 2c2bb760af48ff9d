"""Evaluators of the Wan world: VBench at real scale, a cheap stand-in for the tiny preset.

* :class:`VBenchEvaluator` scores a folder of mp4s (16 fps, Wan's rate) with sidecars — the one a
  pipeline writes batch by batch (:mod:`harness.evaluation.streaming`), or a scratch folder of given
  arrays — with the VBench backend of :mod:`harness.evaluation.vbench_backend`: vbench
  0.1.5 in its own environment, standard mode, the extended prompts mapped back to VBench's originals
  through the aligned extended prompt file. Quality / Semantic / Total are VBench's official
  aggregation; they need all 16 dimensions, so a subset gives only the groups it covers.
* :class:`TinyBench` (``wan-tiny-bench``, never labelled VBench) scores the tiny preset's random-weight
  videos in milliseconds, with the names every study reads (total, quality, semantic): VBench's own
  ``temporal_flickering`` formula on the frames (Quality) and ``prompt_retrieval`` (Semantic), the
  fraction of videos whose nearest other video — cosine of 4×4-pooled mean frames — shows the same
  prompt, among prompts with at least two videos (0 when no prompt repeats). It checks plumbing, not
  quality.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from harness.errors import ConfigError
from harness.evaluation.flicker import temporal_flickering_frames
from harness.evaluation.vbench import QUALITY, SEMANTIC, VBENCH, VBENCH_KEYS, Dimension, ScoringTable

WAN_FPS = 16.0
SCORES = ("total", "quality", "semantic")

TINY_TABLE = ScoringTable("wan-tiny-bench", (
    Dimension("temporal_flickering", 0.6293, 1.0, 1.0, QUALITY),  # VBench's range for this dimension
    Dimension("prompt_retrieval", 0.0, 1.0, 1.0, SEMANTIC),
))


def prompt_retrieval(videos: np.ndarray, prompts: Sequence[str]) -> float:
    """Nearest-neighbour prompt accuracy over videos whose prompt occurs at least twice (0 if none)."""
    frames = torch.from_numpy(np.asarray(videos, dtype=np.float32)).mean(dim=1)  # [n, H, W, 3]
    pooled = torch.nn.functional.adaptive_avg_pool2d(frames.permute(0, 3, 1, 2), 4).flatten(1)
    pooled = torch.nn.functional.normalize(pooled - pooled.mean(dim=0), dim=1)
    similarity = pooled @ pooled.T
    similarity.fill_diagonal_(-float("inf"))
    counts = {p: list(prompts).count(p) for p in prompts}
    hits = [prompts[int(similarity[i].argmax())] == p for i, p in enumerate(prompts) if counts[p] > 1]
    return float(np.mean(hits)) if hits else 0.0


class TinyBench:
    """The tiny preset's evaluator; see the module docstring."""

    name = "wan-tiny-bench"
    dimensions = tuple(TINY_TABLE.dimension_keys())
    groups = TINY_TABLE.groups()

    def score(self, videos: np.ndarray, prompts: list[str]) -> dict[str, float]:
        flicker = [temporal_flickering_frames(video, source="wan tiny video") for video in videos]
        return {"temporal_flickering": float(np.mean(flicker)),
                "prompt_retrieval": prompt_retrieval(videos, prompts)}

    def aggregate(self, raw: Mapping[str, float]) -> dict[str, float]:
        return TINY_TABLE.score(raw).as_dict()


class VBenchEvaluator:
    """VBench through its backend; see the module docstring.

    Args:
        dimensions: VBench dimension keys (default all 16).
        extended_prompts: the extended prompt file the videos were generated from, aligned line by line
            with the suite (None: the prompts are VBench's originals).
        full_info: a ``VBench_full_info.json`` (default: the one inside the vbench environment).
        vbench_python: the vbench environment's interpreter (default ``$HARNESS_VBENCH_PYTHON`` or
            ``.cache/vbench-venv``).
        device: torch device vbench runs on.
        work_dir: where :meth:`score` puts its scratch folder of mp4s (default the system temp folder);
            a pipeline streams into its run folder instead (:meth:`score_folder`).
    """

    name = "VBench"
    fps = WAN_FPS  # what the mp4s it scores are written at

    def __init__(self, dimensions: Sequence[str] = VBENCH_KEYS, *, extended_prompts: str | None = None,
                 full_info: str | None = None, vbench_python: str | None = None, device: str = "cuda",
                 work_dir: str | None = None) -> None:
        from harness.evaluation.vbench_backend import check_dimensions

        self.dimensions = tuple(check_dimensions(list(dimensions)))
        self.groups = {key: VBENCH.dimension(key).group for key in self.dimensions}
        self.extended_prompts, self.full_info = extended_prompts, full_info
        self.vbench_python, self.device, self.work_dir = vbench_python, device, work_dir

    def write_samples(self, videos: np.ndarray, prompts: Sequence[str], folder: Path) -> None:
        """mp4 + sidecar per video; ``seed`` is the video's index among its prompt's videos (-0 .. -4)."""
        from harness.io.video import SampleMeta, write_video

        folder.mkdir(parents=True, exist_ok=True)
        seen: dict[str, int] = {}
        for i, (video, prompt) in enumerate(zip(videos, prompts, strict=True)):
            index = seen.get(prompt, 0)
            seen[prompt] = index + 1
            meta = SampleMeta(prompt=prompt, seed=index, method="wan", schedule="-", nfe=0,
                              extra={"index": i})
            write_video(folder / f"{i:06d}.mp4", video, fps=WAN_FPS, meta=meta)

    def score(self, videos: np.ndarray, prompts: list[str]) -> dict[str, float]:
        with tempfile.TemporaryDirectory(prefix="wan-vbench-", dir=self.work_dir) as scratch:
            samples = Path(scratch) / "samples"
            self.write_samples(videos, prompts, samples)
            return self.score_folder(samples, Path(scratch) / "vbench")

    # -- the folder protocol (harness.evaluation.streaming): pipelines write the mp4s batch by batch --

    def check(self) -> None:
        """The vbench environment, the weights of every dimension and the named files exist."""
        from harness.evaluation.vbench_backend import check_weights, find_vbench_python

        for setting in ("full_info", "extended_prompts"):
            path = _path(getattr(self, setting))
            if path is not None and not path.is_file():
                raise ConfigError(f"VBench {setting} file not found: {path}")
        check_weights(self.dimensions)
        find_vbench_python(_path(self.vbench_python))

    def score_folder(self, folder: Path, output_dir: Path) -> dict[str, float]:
        """VBench's raw scores of every mp4 in ``folder`` (sidecars name the prompts)."""
        from harness.evaluation.vbench_backend import evaluate_samples

        return evaluate_samples(
            folder, "vbench", list(self.dimensions), output_dir=output_dir,
            mode="vbench_standard", device=self.device, full_info=_path(self.full_info),
            extended_prompts=_path(self.extended_prompts), vbench_python=_path(self.vbench_python),
        )

    def aggregate(self, raw: Mapping[str, float]) -> dict[str, float]:
        if set(VBENCH_KEYS) <= set(raw):
            return VBENCH.score(raw).as_dict()
        groups = {}
        for group in (QUALITY, SEMANTIC):
            if set(VBENCH.dimension_keys(group)) <= set(raw):
                groups[group] = VBENCH.group_score(raw, group)
        return groups


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value).expanduser()
