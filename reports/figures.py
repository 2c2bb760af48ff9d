"""The report's figures, each a PNG drawn with Matplotlib's Agg backend from the collected numbers.

Every builder takes a :class:`FigureInputs` and returns a :class:`Figure` or None (with a problem line
saying why, e.g. no run has x̂0 cosine files); ``FIGURE_BUILDERS`` is the ordered registry the report
walks, so a new figure is one function and one entry.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reports.collect import StudyData
from reports.tables import ResultTable, TableRow

DPI = 110


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
        ax.set_title(textwrap.fill(term, 34), fontsize=9)  # a long term wraps instead of running into its neighbour
        ax.set_xlabel("critic step", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    fig.tight_layout()
    name = _save(fig, inputs, "training_curves.png")
    return Figure(name, "Training curves: losses and other logged training quantities per critic step",
                  "Mean over seeds per method; the band is the 95% t-interval over seeds (as in the tables), "
                  "absent with one seed. Counters (n, exit_step, updates) are not drawn; evaluation scores and the "
                  "DMD diagnostics have their own figures.")


# imported here, below Figure, FigureInputs, _save and band, which the learning-curve figures build on
from reports.asd_figures import alpha_figure, asd_diagnostics
from reports.comparison_figures import dimension_differences, frontier
from reports.learning_figures import (
    dmd_diagnostics,
    learning_seconds,
    learning_semantic,
    learning_updates,
)
from reports.sample_figures import cosine_figure, qualitative_grid

FIGURE_BUILDERS: tuple[Callable[[FigureInputs], Figure | None], ...] = (
    dimension_differences, frontier, qualitative_grid, cosine_figure, learning_updates, learning_seconds,
    learning_semantic, training_curves, dmd_diagnostics, alpha_figure, asd_diagnostics)


SCORE_FIGURES = ("dimensions", "frontier", "learning_", "alpha")  # file-name prefixes of figures that plot scores


def build_figures(inputs: FigureInputs) -> list[Figure]:
    """Every figure that the data allows, in the order the report shows them; a figure of scores says
    whose scores they are in its caption."""
    figures = [figure for build in FIGURE_BUILDERS if (figure := build(inputs)) is not None]
    evaluator = inputs.table.evaluator
    for figure in figures:
        if evaluator and figure.file.startswith(SCORE_FIGURES) and evaluator.name not in figure.caption:
            figure.caption += f" Scores: {evaluator.text}."
    return figures
