"""The report's figures, each a PNG drawn with Matplotlib's Agg backend from the collected numbers.

Every builder takes a :class:`FigureInputs` and returns a :class:`Figure` or None (with a problem line
saying why, e.g. no run has x̂0 cosine files); ``FIGURE_BUILDERS`` is the ordered registry the report
walks, so a new figure is one function and one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.errors import HarnessError
from reports.collect import StudyData
from reports.tables import ResultTable, TableRow

DPI = 110
MAX_COSINE_ROWS, MAX_COSINE_FRAMES, GRID_FRAMES, GRID_MIN_HEIGHT = 6, 6, 8, 64


@dataclass
class Figure:
    """A written figure: file name (relative to the report folder), title and a caption of facts."""

    file: str
    title: str
    caption: str


@dataclass
class FigureInputs:
    study: StudyData
    table: ResultTable
    curves: pd.DataFrame
    out_dir: Path
    problems: list[str] = field(default_factory=list)

    def runs_of(self, row: TableRow) -> pd.DataFrame:
        """The complete runs behind a table row, lowest seed first."""
        runs = self.study.complete
        return runs[(runs["method"] == row.method) & (runs["steps"] == row.steps)].sort_values("seed")

    def headline(self) -> str | None:
        keys = [c.key for c in self.table.columns]
        return next((k for k in ("total", "quality", "semantic") if k in keys), None)


def _save(fig: plt.Figure, inputs: FigureInputs, name: str) -> str:
    inputs.out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(inputs.out_dir / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return name


def _spread(items: list, limit: int) -> list:
    """At most ``limit`` evenly spaced items, always keeping the first."""
    if len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


# -- x̂0 cosine similarity (the paper's Figure 4) --------------------------------------------------
def _row_cosine(inputs: FigureInputs, row: TableRow) -> dict[int, np.ndarray]:
    """Frame index → S×S mean cosine matrix, averaged over the row's seeds that have the file."""
    from harness.evaluation.cosine import CosineAnalysis

    per_frame: dict[int, list[np.ndarray]] = {}
    for samples in inputs.runs_of(row)["samples_dir"]:
        path = Path(samples) / "x0_cosine.json"
        if not path.exists():
            continue
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
    data = [(row, m) for row in inputs.table.rows if (m := _row_cosine(inputs, row))][:MAX_COSINE_ROWS]
    if not data:
        inputs.problems.append(f"{inputs.study.name}: no run has samples/x0_cosine.json; no x̂0 cosine figure")
        return None
    frames = _spread(sorted(set().union(*(m.keys() for _, m in data))), MAX_COSINE_FRAMES)
    low = min(float(np.nanmin(mat)) for _, m in data for mat in m.values())
    fig, axes = plt.subplots(len(data), len(frames), figsize=(1.7 * len(frames) + 1.2, 1.7 * len(data) + 0.4),
                             squeeze=False)
    image = None
    for r, (row, matrices) in enumerate(data):
        for c, frame in enumerate(frames):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row.label, fontsize=8)
            if r == 0:
                ax.set_title(f"frame {frame}", fontsize=9)
            if frame not in matrices:
                ax.set_frame_on(False)
                continue
            image = _heatmap(ax, matrices[frame], low)
    fig.colorbar(image, ax=axes, shrink=0.8, label="cos(x̂0_i, x̂0_j)")
    name = _save(fig, inputs, "x0_cosine.png")
    return Figure(name, "x̂0 cosine similarity across denoising steps",
                  f"One S×S matrix per frame index (steps i, j from 1), mean over videos and over seeds; "
                  f"rows: {', '.join(r.label for r, _ in data)}.")


def _heatmap(ax: plt.Axes, matrix: np.ndarray, low: float):
    steps = matrix.shape[0]
    image = ax.imshow(matrix, vmin=min(low, 0.999), vmax=1.0, cmap="viridis")
    ticks = list(range(steps))
    ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
    if steps <= 4:
        for i in range(steps):
            for j in range(steps):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6, color="white")
    return image


# -- qualitative grid (the paper's Figure 2) ------------------------------------------------------
def _sample_for(inputs: FigureInputs, row: TableRow, prompt: str | None):
    """(frames, sidecar) of the row's first sample with ``prompt`` (any prompt when None)."""
    from harness.io.video import read_sidecar, read_video

    for samples in inputs.runs_of(row)["samples_dir"]:
        for path in sorted(Path(samples).glob("sample_*.mp4")):
            try:
                meta = read_sidecar(path)
                if prompt is None or meta.prompt == prompt:
                    return read_video(path), meta
            except HarnessError as exc:
                inputs.problems.append(f"{inputs.study.name}: {row.label}: {str(exc).split(': ', 1)[-1]}")
    return None


def _enlarge(frames: np.ndarray, min_height: int = GRID_MIN_HEIGHT) -> np.ndarray:
    """Nearest-neighbour upscaling so that tiny sprites frames stay legible in the grid."""
    factor = max(1, math.ceil(min_height / frames.shape[1]))
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def qualitative_grid(inputs: FigureInputs) -> Figure | None:
    from harness.io.video import VideoError, frame_grid, save_png

    rows, labels, prompt, meta0 = [], [], None, None
    for row in inputs.table.rows:
        found = _sample_for(inputs, row, prompt)
        if found is None:
            if not row.reference:
                inputs.problems.append(f"{inputs.study.name}: {row.label}: no sample with the grid's prompt")
            continue
        frames, meta = found
        prompt, meta0 = prompt or meta.prompt, meta0 or meta
        rows.append(_enlarge(frames))
        labels.append(row.label)
    if not rows:
        inputs.problems.append(f"{inputs.study.name}: no run kept an mp4 sample; no qualitative grid")
        return None
    try:
        grid = frame_grid(rows, labels, columns=GRID_FRAMES)
    except VideoError as exc:
        inputs.problems.append(f"{inputs.study.name}: qualitative grid not drawn: {exc}")
        return None
    inputs.out_dir.mkdir(parents=True, exist_ok=True)
    save_png(grid, inputs.out_dir / "qualitative.png")
    return Figure("qualitative.png", "Samples: rows are method × steps, columns are frames",
                  f'Prompt "{prompt}", sampling noise seed {meta0.seed}, the same for every row '
                  f"(the lowest seed's model of each row).")


# -- training curves ------------------------------------------------------------------------------
def panel_grid(count: int, max_cols: int, width: float, height: float, **kw) -> tuple[plt.Figure, np.ndarray]:
    """A figure of ``count`` panels, at most ``max_cols`` a row, each ``width`` × ``height`` inches."""
    ncols = min(max_cols, count)
    nrows = math.ceil(count / ncols)
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def band(ax: plt.Axes, stats: pd.DataFrame, label: str) -> None:
    """A line at the mean over seeds with its 95% t-interval band (from :func:`reports.learning.curve`)."""
    n = int(stats["n"].max()) if len(stats) else 0
    (line,) = ax.plot(stats["x"], stats["mean"], label=f"{label} (n={n})", marker="." if len(stats) < 12 else None)
    ax.fill_between(stats["x"], stats["low"], stats["high"], alpha=0.2, color=line.get_color(), linewidth=0)


def training_curves(inputs: FigureInputs) -> Figure | None:
    from reports.learning import plotted_terms, step_curve

    curves = inputs.curves
    if curves.empty:
        inputs.problems.append(f"{inputs.study.name}: no training curves in the stage cache")
        return None
    terms = plotted_terms(curves)
    if not terms:
        return None
    fig, axes = panel_grid(len(terms), 4, 3.6, 2.8)
    for ax, term in zip(axes.flat, terms):
        for method, stats in step_curve(curves, term, inputs.table.confidence).items():
            band(ax, stats, method)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("critic step", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    fig.tight_layout()
    name = _save(fig, inputs, "training_curves.png")
    return Figure(name, "Training curves of every loss term",
                  "Mean over seeds per method; the band is the 95% t-interval over seeds. Counters, "
                  "evaluation scores and the DMD diagnostics are drawn elsewhere.")


# -- per-dimension bars ---------------------------------------------------------------------------
def dimension_bars(inputs: FigureInputs) -> Figure | None:
    table = inputs.table
    dims = [c for c in table.columns if c.group in ("quality", "semantic")]
    rows = [r for r in table.rows if any(r.cells.get(c.key) for c in dims)]
    if not dims or not rows:
        return None
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(dims) * max(1, len(rows) / 4)), 3.6))
    for i, row in enumerate(rows):
        cells = [row.cells.get(c.key) for c in dims]
        means = [c.mean * 100 if c else np.nan for c in cells]
        errors = [0.0 if c is None or math.isnan(c.half_width) else c.half_width * 100 for c in cells]
        ax.bar(np.arange(len(dims)) + (i - (len(rows) - 1) / 2) * width, means, width, yerr=errors,
               label=row.label, capsize=1.5)
    ax.set_xticks(range(len(dims)), [c.label for c in dims], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("score (%)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    name = _save(fig, inputs, "dimensions.png")
    return Figure(name, "Per-dimension scores", "Mean over seeds with the 95% t-interval as error bars.")


# -- quality–speed frontier -----------------------------------------------------------------------
def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and score (higher), by increasing cost."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def frontier(inputs: FigureInputs) -> Figure | None:
    key = inputs.headline()
    latency = "latency_s" if any(c.key == "latency_s" for c in inputs.table.columns) else None
    rows = [r for r in inputs.table.rows if key and r.cells.get(key) and not math.isnan(r.nfe)]
    if not rows:
        inputs.problems.append(f"{inputs.study.name}: no row has both NFE and {key or 'a score'}; no frontier plot")
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, cost, xlabel in ((axes[0], lambda r: (r.nfe, 0.0), "NFE"),
                             (axes[1], lambda r: _cell_pair(r, latency), "measured latency (s)")):
        points = []
        for row in rows:
            x, xerr = cost(row)
            y = row.cells[key]
            if x is None or math.isnan(x):
                continue
            yerr = 0.0 if math.isnan(y.half_width) else y.half_width
            ax.errorbar(x, y.mean, yerr=yerr, xerr=xerr, fmt="o", capsize=2)
            ax.annotate(row.label, (x, y.mean), fontsize=7, xytext=(3, 3), textcoords="offset points")
            points.append((x, y.mean))
        if points:
            front = _pareto(points)
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", alpha=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(key.capitalize())
    name = _save(fig, inputs, "frontier.png")
    return Figure(name, "Quality against speed",
                  f"{key.capitalize()} (mean ± 95% CI over seeds) against NFE and against measured sampling "
                  "latency; the grey line is the Pareto frontier.")


def _cell_pair(row: TableRow, key: str | None) -> tuple[float | None, float]:
    cell = row.cells.get(key) if key else None
    if cell is None:
        return None, 0.0
    return cell.mean, 0.0 if math.isnan(cell.half_width) else cell.half_width


# imported here, below Figure, FigureInputs, _save and band, which the learning-curve figures build on
from reports.asd_figures import alpha_figure, asd_diagnostics
from reports.learning_figures import (
    dmd_diagnostics,
    learning_seconds,
    learning_semantic,
    learning_updates,
)

FIGURE_BUILDERS: tuple[Callable[[FigureInputs], Figure | None], ...] = (
    dimension_bars, frontier, qualitative_grid, cosine_figure, learning_updates, learning_seconds,
    learning_semantic, training_curves, dmd_diagnostics, alpha_figure, asd_diagnostics)


def build_figures(inputs: FigureInputs) -> list[Figure]:
    """Every figure that the data allows, in the order the report shows them."""
    return [figure for build in FIGURE_BUILDERS if (figure := build(inputs)) is not None]
