"""Figures drawn from the runs' samples: the x̂0 cosine matrices (the paper's Fig. 4) and the
qualitative grid (rows × prompts × seeds).

Fig. 4 in the paper samples each model with the 4-step list; here too: one row per model from its
run sampled with 4 steps (a 1-step run has a 1×1 matrix, which says nothing), every frame index the
traces have. Models with no 4-step run are named in the caption, never dropped silently.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from harness.errors import HarnessError
from reports.figure_base import Figure, FigureInputs, save
from reports.tables import TableRow

FIG4_STEPS = "4"
MAX_COSINE_FRAMES = 8  # frame indices shown (the first ones); the caption says when there are more
GRID_PROMPTS, GRID_SEEDS, GRID_FRAMES, GRID_MIN_HEIGHT = 2, 2, 3, 64


# -- x̂0 cosine similarity (the paper's Figure 4) --------------------------------------------------
def _trace_paths(inputs: FigureInputs, row: TableRow) -> list[Path]:
    paths = [Path(s) / "x0_cosine.json" for s in inputs.runs_of(row)["samples_dir"]]
    return [p for p in paths if p.exists()]


def row_cosine(inputs: FigureInputs, row: TableRow) -> dict[int, np.ndarray]:
    """Frame index → S×S mean cosine matrix, averaged over the row's seeds that have the file."""
    from harness.evaluation.cosine import CosineAnalysis

    per_frame: dict[int, list[np.ndarray]] = {}
    for path in _trace_paths(inputs, row):
        try:
            analysis = CosineAnalysis.load(path)
        except HarnessError as exc:
            inputs.problems.append(f"{inputs.study.name}: {row.label}: {str(exc).split(': ', 1)[-1]}")
            continue
        for matrix in analysis.frames():
            per_frame.setdefault(matrix.index, []).append(matrix.mean)
    return {k: np.nanmean(np.stack(v), axis=0) for k, v in per_frame.items()
            if len({m.shape for m in v}) == 1}


def cosine_figure(inputs: FigureInputs) -> Figure | None:
    """One row per model sampled with 4 steps, one 4×4 matrix per frame index, on a 0–1 colour scale."""
    rows = [row for row in inputs.table.rows if row.steps == FIG4_STEPS]
    data = [(row, m) for row in rows if (m := row_cosine(inputs, row))]
    traced = list(dict.fromkeys(r.method for r in inputs.table.rows if _trace_paths(inputs, r)))
    without = [m for m in traced if m not in {row.method for row, _ in data}]
    if not data:
        inputs.problems.append(f"{inputs.study.name}: no run sampled with {FIG4_STEPS} steps has "
                               "samples/x0_cosine.json; no x̂0 cosine figure (Fig. 4 samples each model with 4 steps)")
        return None
    every = sorted(set().union(*(m.keys() for _, m in data)))
    frames = every[:MAX_COSINE_FRAMES]
    low = min(0.0, min(float(np.nanmin(mat)) for _, m in data for mat in m.values()))
    fig, axes = plt.subplots(len(data), len(frames), figsize=(1.7 * len(frames) + 1.4, 1.75 * len(data) + 0.5),
                             squeeze=False)
    image = None
    for r, (row, matrices) in enumerate(data):
        for c, frame in enumerate(frames):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row.method, fontsize=8)
            if r == 0:
                ax.set_title(f"frame {frame + 1}", fontsize=9)
            if frame not in matrices:
                ax.set_frame_on(False)
                continue
            image = _heatmap(ax, matrices[frame], low)
    fig.colorbar(image, ax=axes, shrink=0.8, label="cos(x̂0 at step i, x̂0 at step j)")
    name = save(fig, inputs, "x0_cosine.png")
    shown = (f"all {len(every)} frame indices" if len(frames) == len(every)
             else f"the first {len(frames)} of {len(every)} frame indices")
    missing = (f" Not shown: {', '.join(without)} (no run sampled with {FIG4_STEPS} steps)." if without else "")
    return Figure(name, "x̂0 cosine similarity across denoising steps (Fig. 4)",
                  f"Each model sampled with {FIG4_STEPS} steps, as in the paper's Fig. 4: per frame index ({shown}, "
                  f"from 1), the cosine similarity of the x̂0 predictions at steps i and j (from 1), mean over the "
                  f"traced videos and over seeds; colour scale from {low:.2f} to 1. Rows: "
                  f"{', '.join(r.method for r, _ in data)}.{missing}")


def _heatmap(ax: plt.Axes, matrix: np.ndarray, low: float):
    steps = matrix.shape[0]
    image = ax.imshow(matrix, vmin=low, vmax=1.0, cmap="viridis")
    ticks = list(range(steps))
    ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    if steps <= 4:
        for i in range(steps):
            for j in range(steps):
                dark = matrix[i, j] > low + 0.6 * (1.0 - low)
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if dark else "white")
    return image


# -- qualitative grid (the paper's Figure 2) ------------------------------------------------------
def _first_sample(inputs: FigureInputs, row: TableRow, samples_dir: Path, prompt: str) -> np.ndarray | None:
    """The frames of the run's first kept sample of ``prompt`` (its first noise draw)."""
    from harness.io.video import read_sidecar, read_video

    for path in sorted(samples_dir.glob("sample_*.mp4")):
        try:
            if read_sidecar(path).prompt == prompt:
                return read_video(path)
        except HarnessError as exc:
            inputs.problems.append(f"{inputs.study.name}: {row.label}: {str(exc).split(': ', 1)[-1]}")
    return None


def _prompts(inputs: FigureInputs) -> list[str]:
    """The first prompts of the first run that kept samples, in the order they were sampled."""
    from harness.io.video import read_sidecar

    for row in inputs.table.rows:
        for samples in inputs.runs_of(row)["samples_dir"]:
            prompts: list[str] = []
            for path in sorted(Path(samples).glob("sample_*.mp4")):
                try:
                    prompt = read_sidecar(path).prompt
                except HarnessError:
                    continue
                if prompt not in prompts:
                    prompts.append(prompt)
            if prompts:
                return prompts[:GRID_PROMPTS]
    return []


def _enlarge(frames: np.ndarray, min_height: int = GRID_MIN_HEIGHT) -> np.ndarray:
    """Nearest-neighbour upscaling so that tiny sprites frames stay legible in the grid."""
    factor = max(1, math.ceil(min_height / frames.shape[1]))
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def _pick(frames: np.ndarray, count: int) -> np.ndarray:
    return frames[np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)]


def qualitative_grid(inputs: FigureInputs) -> Figure | None:
    """A line per table row; blocks of frames (first, middle, last) per (prompt, seed), separated by a
    blank frame; a missing sample is a grey block, named in the caption."""
    from harness.io.video import VideoError, frame_grid

    prompts = _prompts(inputs)
    seeds = sorted({s for s in inputs.study.complete["seed"].dropna()})[:GRID_SEEDS]
    blocks = [(p, s) for p in prompts for s in seeds]
    lines, labels, missing, shape = [], [], [], None
    for row in inputs.table.rows:
        runs = inputs.runs_of(row)
        parts = []
        for prompt, seed in blocks:
            run = runs[runs["seed"] == seed]
            frames = _first_sample(inputs, row, Path(run["samples_dir"].iloc[0]), prompt) if len(run) else None
            parts.append(None if frames is None else _pick(_enlarge(frames), GRID_FRAMES))
        if all(p is None for p in parts):
            continue
        shape = shape or next(p for p in parts if p is not None).shape[1:]
        missing += [f"{row.label} (prompt {prompts.index(b[0]) + 1}, seed {_seed_text(b[1])})"
                    for b, p in zip(blocks, parts) if p is None]
        lines.append(parts)
        labels.append(row.label)
    if not lines:
        inputs.problems.append(f"{inputs.study.name}: no run kept an mp4 sample; no qualitative grid")
        return None
    gap, grey = np.full((1, *shape), 255, np.uint8), np.full((GRID_FRAMES, *shape), 200, np.uint8)
    videos = []
    for parts in lines:
        pieces = []
        for i, part in enumerate(parts):
            pieces += ([gap] if i else []) + [part if part is not None and part.shape[1:] == shape else grey]
        videos.append(np.concatenate(pieces))
    try:
        grid = frame_grid(videos)
    except VideoError as exc:
        inputs.problems.append(f"{inputs.study.name}: qualitative grid not drawn: {exc}")
        return None
    _draw_grid(inputs, grid, labels, blocks, prompts, shape)
    listed = "; ".join(f"prompt {i + 1}: \"{p}\"" for i, p in enumerate(prompts))
    absent = f" No sample (grey): {', '.join(missing)}." if missing else ""
    every = len({s for s in inputs.study.complete["seed"].dropna()})
    shown = (f"Seeds: {', '.join(_seed_text(s) for s in seeds)}"
             + (f" (the first {len(seeds)} of {every})" if every > len(seeds) else " (all)"))
    return Figure("qualitative.png", "Samples: rows are method × steps; blocks are prompts × seeds",
                  f"Each block: the first, middle and last frame of the first noise draw of a prompt, from the "
                  f"model of one seed; the noise is the same for every row at a seed. {listed} (the first "
                  f"{len(prompts)} prompts sampled). {shown}.{absent} The video gallery shows every frame.")


def _seed_text(seed: object) -> str:
    return str(int(seed)) if isinstance(seed, float) and seed.is_integer() else str(seed)


def _draw_grid(inputs: FigureInputs, grid: np.ndarray, labels: list[str], blocks: list, prompts: list[str],
               shape: tuple) -> None:
    """The grid image at its own pixel size, row labels on the left and a header over each block
    ('prompt 1 · seed 0'); Matplotlib's DejaVu font has the paper's marks (†) that PIL's default lacks."""
    pad, (height, width) = 2, shape[:2]
    left = 8 + 7 * max(len(label) for label in labels)  # px for the labels
    top = 40
    tall, wide = grid.shape[0] + top, grid.shape[1] + left
    fig = plt.figure(figsize=(wide / 100, tall / 100), dpi=100)
    ax = fig.add_axes((left / wide, 0, grid.shape[1] / wide, grid.shape[0] / tall))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    for r, label in enumerate(labels):
        middle = pad + r * (height + pad) + height / 2
        fig.text((left - 6) / wide, 1 - (top + middle) / tall, label, ha="right", va="center", fontsize=9)
    for b, (prompt, seed) in enumerate(blocks):
        center = left + pad + (b * (GRID_FRAMES + 1) + GRID_FRAMES / 2) * (width + pad)
        fig.text(center / wide, 1 - 20 / tall, f"prompt {prompts.index(prompt) + 1} · seed {_seed_text(seed)}",
                 ha="center", va="center", fontsize=9)
    inputs.out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(inputs.out_dir / "qualitative.png", dpi=100)
    plt.close(fig)
