"""The report's figures, each a PNG drawn with Matplotlib's Agg backend from the collected numbers.

Every builder takes a :class:`FigureInputs` and returns a :class:`Figure` or None (with a problem line
saying why, e.g. no run has x̂0 cosine files); ``FIGURE_BUILDERS`` is the ordered registry the report
walks, so a new figure is one function and one entry.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from reports.asd_figures import alpha_figure, asd_diagnostics
from reports.comparison_figures import dimension_differences, frontier
from reports.figure_base import Figure, FigureInputs, band, panel_grid, save
from reports.learning_figures import (
    dmd_diagnostics,
    learning_seconds,
    learning_semantic,
    learning_updates,
)
from reports.sample_figures import cosine_figure, qualitative_grid


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
    name = save(fig, inputs, "training_curves.png")
    return Figure(name, "Training curves: losses and other logged training quantities per critic step",
                  "Mean over seeds per method; the band is the 95% t-interval over seeds (as in the tables), "
                  "absent with one seed. Counters (n, exit_step, updates) are not drawn; evaluation scores and the "
                  "DMD diagnostics have their own figures.")



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
