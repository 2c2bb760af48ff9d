"""Learning-curve figures: evaluation scores while training, and the DMD diagnostics.

One line per distilled variant, the mean over seeds with its 95% t-interval band (not ± SD), from
the eval hook's rows of each distillation's log (:mod:`reports.learning`). A study whose runs never
evaluated while training gets no such figure and one note saying why.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from reports.collect import dimension_groups
from reports.figure_base import Figure, FigureInputs, band, panel_grid, save
from reports.learning import (
    CONVERGENCE_SCHEDULE,
    DIAGNOSTICS,
    NO_EVAL_NOTE,
    curve,
    eval_points,
    preferred,
    step_curve,
)

PANEL_SCHEDULES = ("1", "2")
TOTAL = "total"
SEMANTIC = "semantic"
X_LABELS = {"updates": "generator updates", "seconds": "training wall time (s, mean over seeds)"}
EMA_NOTE = "the EMA generator's score (the raw generator's before the EMA starts)"


def _evaluator(inputs: FigureInputs) -> str:
    """Whose scores the curves are ('sprites-bench'), for the score axes."""
    return inputs.table.evaluator.name if inputs.table.evaluator else "evaluator"


def _points(inputs: FigureInputs, note: bool = False) -> pd.DataFrame:
    points = eval_points(inputs.curves)
    if points.empty and note and not inputs.curves.empty:
        inputs.problems.append(f"{inputs.study.name}: {NO_EVAL_NOTE}")
    return points


def _schedules(points: pd.DataFrame, metric: str) -> list[str]:
    logged = list(dict.fromkeys(points.loc[points["metric"] == metric, "schedule"]))
    chosen = [s for s in PANEL_SCHEDULES if s in logged]
    return chosen or logged[:2]


def _panel(ax: plt.Axes, points: pd.DataFrame, schedule: str, metric: str, x: str, scale: float,
           confidence: float) -> None:
    frame = preferred(points, schedule, metric)
    frame = frame.assign(value=frame["value"] * scale)
    for method, group in frame.groupby("method", sort=False):
        band(ax, curve(group, x=x, confidence=confidence), str(method))
    ax.set_xlabel(X_LABELS[x], fontsize=8)
    ax.legend(fontsize=7)


def _total_figure(inputs: FigureInputs, x: str, note: bool) -> Figure | None:
    points = _points(inputs, note)
    schedules = _schedules(points, TOTAL) if not points.empty else []
    if not schedules:
        return None
    fig, axes = plt.subplots(1, len(schedules), figsize=(4.6 * len(schedules), 3.4), squeeze=False)
    for ax, schedule in zip(axes[0], schedules):
        _panel(ax, points, schedule, TOTAL, x, 1.0, inputs.table.confidence)
        ax.set_title(f"Total at {schedule} step{'s' if schedule != '1' else ''}", fontsize=9)
        ax.set_ylabel(f"Total ({_evaluator(inputs)})")
    fig.tight_layout()
    name = save(fig, inputs, f"learning_total_{x}.png")
    return Figure(name, f"Learning curves: Total against {X_LABELS[x]}",
                  f"One line per distilled variant: the mean over seeds of {EMA_NOTE} on the training-eval set "
                  "(train prompts, the hook's own noise), with its 95% t-interval over seeds as the band.")


def learning_updates(inputs: FigureInputs) -> Figure | None:
    return _total_figure(inputs, "updates", note=True)


def learning_seconds(inputs: FigureInputs) -> Figure | None:
    return _total_figure(inputs, "seconds", note=False)


def learning_semantic(inputs: FigureInputs) -> Figure | None:
    points = _points(inputs)
    if points.empty:
        return None
    dims = inputs.study.dimension_groups or dimension_groups()
    logged = set(points["metric"])
    metrics = ([SEMANTIC] if SEMANTIC in logged else []) + [k for k, g in dims.items()
                                                              if g == SEMANTIC and k in logged]
    schedules = list(dict.fromkeys(points["schedule"]))
    schedule = CONVERGENCE_SCHEDULE if CONVERGENCE_SCHEDULE in schedules else schedules[0]
    if not metrics:
        return None
    fig, axes = panel_grid(len(metrics), 3, 3.8, 3.0)
    for ax, metric in zip(axes.flat, metrics):
        _panel(ax, points, schedule, metric, "updates", 100.0 if metric in dims else 1.0, inputs.table.confidence)
        ax.set_title(metric.replace("_", " ").capitalize() + ("" if metric == SEMANTIC else " (%)"), fontsize=9)
        ax.set_ylabel(_evaluator(inputs), fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    name = save(fig, inputs, "learning_semantic.png")
    return Figure(name, f"Learning curves: the semantic dimensions at {schedule} step{'s' if schedule != '1' else ''}",
                  f"The Semantic score and each semantic dimension against generator updates: the mean over seeds "
                  f"of {EMA_NOTE}, with the 95% t-interval over seeds as the band.")


def dmd_diagnostics(inputs: FigureInputs) -> Figure | None:
    """Has the fake score moved off the teacher? One panel per variant: its diagnostics per critic step."""
    curves = inputs.curves
    terms = [t for t in DIAGNOSTICS if len(curves) and (curves["term"] == t).any()]
    if not terms:
        if not curves.empty:
            inputs.problems.append(f"{inputs.study.name}: no distillation logged the DMD diagnostics "
                                   f"({', '.join(DIAGNOSTICS)}); no diagnostics figure")
        return None
    per_term = {term: step_curve(curves, term, inputs.table.confidence) for term in terms}
    methods = list(dict.fromkeys(m for stats in per_term.values() for m in stats))
    fig, axes = panel_grid(len(methods), 4, 4.0, 3.0, sharey=True)
    for ax, method in zip(axes.flat, methods):
        for term in terms:
            if method in per_term[term]:
                band(ax, per_term[term][method], term.split("/", 1)[-1])
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("critic step", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("mean |gap| of x̂0 predictions")
    fig.tight_layout()
    name = save(fig, inputs, "dmd_diagnostics.png")
    return Figure(name, "DMD diagnostics: has the fake score left the teacher?",
                  "Per distilled variant, mean absolute gaps between x̂0 predictions on the generator's noised samples, mean "
                  "over seeds with the 95% t-interval band: fake_vs_teacher (critic vs conditional teacher) far below "
                  "cfg_gap (guided vs conditional teacher) means DMD mostly distils guidance; fake_vs_real (critic vs "
                  "guided teacher) drives DMD's gradient.")
