"""Cosine similarity of the x̂0 predictions across denoising steps (the paper's Figure 4, FFE's motivation).

Trace format (what a sampler records, :class:`X0Trace`):
    ``trace.chunks[c][s]`` is the x̂0 the generator predicted at denoising step ``s + 1`` for the frames
    of chunk ``c`` only, a tensor ``[B, F_c, C, H, W]`` with ``B`` videos (the same videos in every
    chunk and step). Chunks may have different step counts (FFE: the first chunk runs the 4-step
    list, later chunks ``n`` steps), so the trace is a list per chunk rather than one tensor.
    Frames are numbered globally from 0 in chunk order.

Output (:class:`CosineAnalysis`): for every frame, and for every chunk, the ``S_c × S_c`` matrix of
``cos(vec(x̂0_i), vec(x̂0_j))`` averaged over videos, with its standard error over videos
(``std(ddof=1)/sqrt(B)``; NaN with one video). A frame's vector is its flattened ``[C, H, W]``; a
chunk's is its flattened ``[F_c, C, H, W]``. Saved as JSON (nested matrices) and a tidy CSV
(``scope, index, chunk, step_i, step_j, mean, se, n_videos``; steps numbered from 1 as in the paper)
so the reporting layer can draw it without torch.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import ConfigError

FORMAT = "harness.x0_cosine/v1"
CSV_FIELDS = ("scope", "index", "chunk", "step_i", "step_j", "mean", "se", "n_videos")


@dataclass
class X0Trace:
    """Per chunk, per denoising step, the x̂0 prediction ``[B, F_c, C, H, W]`` (see module docstring)."""

    chunks: list[list[torch.Tensor]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def record(self, chunk: int, x0: torch.Tensor) -> None:
        """Append the next step's x̂0 for ``chunk`` (chunks are opened in order: 0, 1, 2, ...)."""
        if chunk == len(self.chunks):
            self.chunks.append([])
        elif not 0 <= chunk < len(self.chunks):
            raise ConfigError(f"x0 trace: chunk {chunk} recorded before chunk {len(self.chunks)}")
        self.chunks[chunk].append(x0.detach().to("cpu", torch.float32))

    @classmethod
    def from_steps(cls, steps: Sequence[torch.Tensor], frames_per_chunk: int, **meta: Any) -> X0Trace:
        """A trace from whole-video predictions per step (``[B, F, C, H, W]``; every chunk has all steps)."""
        if not steps:
            raise ConfigError("x0 trace: no steps given")
        frames = steps[0].shape[1]
        if frames_per_chunk <= 0 or frames % frames_per_chunk:
            raise ConfigError(f"x0 trace: {frames} frames do not split into chunks of {frames_per_chunk}")
        chunks = [
            [s[:, start : start + frames_per_chunk].detach().to("cpu", torch.float32) for s in steps]
            for start in range(0, frames, frames_per_chunk)
        ]
        return cls(chunks, dict(meta))

    @property
    def steps_per_chunk(self) -> list[int]:
        return [len(steps) for steps in self.chunks]

    @property
    def num_videos(self) -> int:
        self.validate()
        return self.chunks[0][0].shape[0]

    def first_frames(self) -> list[int]:
        """Global index of each chunk's first frame."""
        starts, total = [], 0
        for steps in self.chunks:
            starts.append(total)
            total += steps[0].shape[1]
        return starts

    def validate(self) -> None:
        if not self.chunks or any(not steps for steps in self.chunks):
            raise ConfigError("x0 trace: every chunk needs at least one recorded step")
        reference = self.chunks[0][0]
        for c, steps in enumerate(self.chunks):
            for s, x0 in enumerate(steps):
                where = f"x0 trace: chunk {c} step {s + 1}"
                if x0.ndim != 5:
                    raise ConfigError(f"{where}: expected [B, F, C, H, W], got {list(x0.shape)}")
                if x0.shape != steps[0].shape:
                    raise ConfigError(
                        f"{where}: shape {list(x0.shape)} differs from step 1 {list(steps[0].shape)}"
                    )
                if x0.shape[0] != reference.shape[0] or x0.shape[2:] != reference.shape[2:]:
                    raise ConfigError(
                        f"{where}: batch/C/H/W {list(x0.shape)} differ from chunk 0 {list(reference.shape)}"
                    )

    @staticmethod
    def concat(traces: Sequence[X0Trace]) -> X0Trace:
        """Join traces of different videos (same schedule) along the batch dimension."""
        if not traces:
            raise ConfigError("x0 trace: nothing to concatenate")
        layout = traces[0].steps_per_chunk
        for trace in traces:
            trace.validate()
            if trace.steps_per_chunk != layout:
                raise ConfigError(f"x0 trace: steps per chunk {trace.steps_per_chunk} differ from {layout}")
        chunks = [
            [torch.cat([t.chunks[c][s] for t in traces]) for s in range(n)] for c, n in enumerate(layout)
        ]
        return X0Trace(chunks, dict(traces[0].meta))

    def save(self, path: str | os.PathLike) -> Path:
        """Store as safetensors (keys ``chunk{c}.step{s}``, 1-based steps) with ``meta`` as JSON metadata."""
        from safetensors.torch import save_file

        self.validate()
        tensors = {
            f"chunk{c}.step{s + 1}": x0.contiguous()
            for c, steps in enumerate(self.chunks)
            for s, x0 in enumerate(steps)
        }
        save_file(
            tensors, str(path), metadata={"format": "harness.x0_trace/v1", "meta": json.dumps(self.meta)}
        )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> X0Trace:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != "harness.x0_trace/v1":
                raise ConfigError(f"{path}: not an x0 trace file (format {metadata.get('format')!r})")
            keys = handle.keys()
            trace = cls(meta=json.loads(metadata.get("meta", "{}")))
            for c in range(len({k.split(".")[0] for k in keys})):
                steps = sorted(
                    (k for k in keys if k.startswith(f"chunk{c}.")), key=lambda k: int(k.split("step")[1])
                )
                trace.chunks.append([handle.get_tensor(k) for k in steps])
        trace.validate()
        return trace


@dataclass
class CosineMatrix:
    """Mean and standard error over videos of the step × step cosine similarities of one frame or chunk."""

    scope: str
    index: int
    chunk: int
    mean: np.ndarray
    se: np.ndarray
    n_videos: int

    @property
    def steps(self) -> int:
        return self.mean.shape[0]


def _pairwise_cosine(vectors: torch.Tensor) -> torch.Tensor:
    """``[S, B, D]`` → ``[B, S, S]`` cosine similarities in float64 (a zero vector gives 0)."""
    unit = torch.nn.functional.normalize(vectors.to(torch.float64), dim=-1, eps=1e-12)
    return torch.einsum("ibd,jbd->bij", unit, unit)


def _summarise(per_video: torch.Tensor, scope: str, index: int, chunk: int) -> CosineMatrix:
    n = per_video.shape[0]
    mean = per_video.mean(0).numpy()
    se = (per_video.std(0, correction=1) / math.sqrt(n)).numpy() if n > 1 else np.full_like(mean, np.nan)
    return CosineMatrix(scope, index, chunk, mean, se, n)


def cosine_similarity_matrices(trace: X0Trace) -> CosineAnalysis:
    """Per-frame and per-chunk step × step cosine matrices of a trace (see module docstring)."""
    trace.validate()
    matrices: list[CosineMatrix] = []
    for c, (steps, first) in enumerate(zip(trace.chunks, trace.first_frames())):
        stacked = torch.stack(steps)  # [S, B, F_c, C, H, W]
        s, b, f = stacked.shape[:3]
        matrices.append(_summarise(_pairwise_cosine(stacked.reshape(s, b, -1)), "chunk", c, c))
        for k in range(f):
            per_video = _pairwise_cosine(stacked[:, :, k].reshape(s, b, -1))
            matrices.append(_summarise(per_video, "frame", first + k, c))
    return CosineAnalysis(matrices, dict(trace.meta))


def _plain(array: np.ndarray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else float(v) for v in row] for row in array.tolist()]


def _array(rows: Sequence[Sequence[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


@dataclass
class CosineAnalysis:
    """All matrices of one trace; ``frames()``/``chunks()`` select a scope; save/load as JSON + CSV."""

    matrices: list[CosineMatrix]
    meta: dict[str, Any] = field(default_factory=dict)

    def frames(self) -> list[CosineMatrix]:
        return sorted((m for m in self.matrices if m.scope == "frame"), key=lambda m: m.index)

    def chunks(self) -> list[CosineMatrix]:
        return sorted((m for m in self.matrices if m.scope == "chunk"), key=lambda m: m.index)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows, one per (matrix, step_i, step_j); steps are 1-based."""
        rows = []
        for m in self.matrices:
            for i in range(m.steps):
                for j in range(m.steps):
                    se = float(m.se[i, j])
                    rows.append(
                        {
                            "scope": m.scope,
                            "index": m.index,
                            "chunk": m.chunk,
                            "step_i": i + 1,
                            "step_j": j + 1,
                            "mean": float(m.mean[i, j]),
                            "se": None if math.isnan(se) else se,
                            "n_videos": m.n_videos,
                        }
                    )
        return rows

    def save(self, directory: str | os.PathLike, stem: str = "x0_cosine") -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.csv`` into ``directory``; returns both paths."""
        from harness.io.video import write_json_atomic

        directory = Path(directory)
        payload = {
            "format": FORMAT,
            "meta": self.meta,
            "matrices": [
                {
                    "scope": m.scope,
                    "index": m.index,
                    "chunk": m.chunk,
                    "n_videos": m.n_videos,
                    "mean": _plain(m.mean),
                    "se": _plain(m.se),
                }
                for m in self.matrices
            ],
        }
        json_path = write_json_atomic(directory / f"{stem}.json", payload)
        csv_path = directory / f"{stem}.csv"
        tmp = csv_path.with_name(f".{csv_path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in self.rows())
        os.replace(tmp, csv_path)
        return json_path, csv_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CosineAnalysis:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read cosine analysis ({exc})") from exc
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a cosine analysis file (expected format '{FORMAT}')")
        matrices = [
            CosineMatrix(
                m["scope"], m["index"], m["chunk"], _array(m["mean"]), _array(m["se"]), m["n_videos"]
            )
            for m in data["matrices"]
        ]
        return cls(matrices, dict(data.get("meta", {})))
