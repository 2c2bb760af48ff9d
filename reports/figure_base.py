"""What every report figure is built from: its inputs, the written figure, and the drawing helpers they share.

Apart from :mod:`reports.figures` (the registry of builders) so each family of figures imports these
without importing the registry back.
"""

from __future__ import annotations

import math
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


def save(fig: plt.Figure, inputs: FigureInputs, name: str) -> str:
    """Write ``fig`` into the report folder as ``name`` (a PNG) and close it; returns ``name``."""
    inputs.out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(inputs.out_dir / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return name


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
