"""ASD's figures: why the adversarial term helps or not (issue 19), and the paper's Figure 8.

:func:`asd_diagnostics` draws, per distilled variant and per n, what :mod:`methods.asd_diagnostics` and
:mod:`methods.asd_calibration` log while training: D's accuracy and logit gap on the held-out pairs, the
n vs n+1 feature distance against its shuffled-label null, the gradient ratio ``‖∇θ α·L_ASD‖ / ‖∇θ
L_DMD‖`` — and the quality gap the adversarial term feeds on, the eval hook's Total at n+1 steps minus
at n steps. :func:`alpha_figure` draws Total at 1 and 2 steps against α when a study varies it (Fig. 8).
Lines are means over seeds with their 95% t-interval band.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from reports.figure_base import Figure, FigureInputs, band, panel_grid, save
from reports.learning import ASD_DIAGNOSTIC, curve, eval_points, preferred

PANELS = (  # (logged quantity, panel title, y label)
    ("heldout_acc", "D's held-out accuracy", "share of pairs ranked right"),
    ("heldout_gap", "logit gap D(x_{n+1}) − D(x_n)", "mean logit gap"),
    ("feat_ratio", "n vs n+1 feature distance / spread", "ratio (dashed: shuffled null)"),
    ("grad_ratio", "‖∇ α·L_ASD‖ / ‖∇ L_DMD‖", "gradient ratio"),
    ("quality_gap", "Total at n+1 − at n steps (eval hook)", "Total difference"),
)
CHANCE, GATE = 0.5, 0.6
ASD_KINDS = ("asd", "dmd")
QUALITY_METRIC = "total"


def diagnostic_terms(curves: pd.DataFrame) -> pd.DataFrame:
    """The logged ASD diagnostics as rows: method, seed, step, quantity, n, value."""
    if curves.empty:
        return pd.DataFrame(columns=["method", "seed", "step", "quantity", "n", "value"])
    parts = curves["term"].str.extract(ASD_DIAGNOSTIC.pattern)
    rows = curves[parts[2].notna()].assign(quantity=parts[1], n=pd.to_numeric(parts[2], errors="coerce"))
    return rows[["method", "seed", "step", "quantity", "n", "value"]].reset_index(drop=True)


def quality_gaps(curves: pd.DataFrame) -> pd.DataFrame:
    """Per method, seed, evaluation and n: the eval hook's Total at n+1 steps minus at n steps (the EMA's
    where there is one): method, seed, updates, n, value."""
    points = eval_points(curves)
    columns = ["method", "seed", "updates", "n", "value"]
    if points.empty:
        return pd.DataFrame(columns=columns)
    counts = sorted({int(s) for s in points["schedule"] if str(s).isdigit()})
    frames = []
    for n in counts:
        if n + 1 not in counts:
            continue
        low = preferred(points, str(n), QUALITY_METRIC)
        high = preferred(points, str(n + 1), QUALITY_METRIC)
        keys = ["method", "seed", "generator", "updates"]
        both = low.merge(high, on=keys, suffixes=("_n", "_next"))
        if both.empty:
            continue
        frames.append(both.assign(n=n, value=both["value_next"] - both["value_n"])[columns])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def asd_diagnostics(inputs: FigureInputs) -> Figure | None:
    """One row of panels per ASD variant that logged diagnostics; one line per n in each panel."""
    terms = diagnostic_terms(inputs.curves)
    if terms.empty:
        return None
    gaps = quality_gaps(inputs.curves)
    methods = list(dict.fromkeys(terms["method"]))
    fig, axes = panel_grid(len(methods) * len(PANELS), len(PANELS), 3.4, 2.7)
    for row, method in enumerate(methods):
        mine = terms[terms["method"] == method]
        for col, (quantity, title, ylabel) in enumerate(PANELS):
            ax = axes[row][col]
            if quantity == "quality_gap":
                _quality_panel(ax, gaps[gaps["method"] == method], inputs.table.confidence)
            else:
                _term_panel(ax, mine, quantity, inputs.table.confidence)
            ax.set_title(f"{method}: {title}", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=7)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    name = save(fig, inputs, "asd_diagnostics.png")
    return Figure(name, "ASD diagnostics: can D tell x_n from x_{n+1}, and how hard does it push?",
                  "Per ASD variant (rows) and n (lines), mean over seeds with the 95% t-interval band. D's accuracy "
                  "and logit gap on a fixed held-out set of (x_n, x_{n+1}) pairs of the current generator (grey: "
                  f"chance {CHANCE}, dotted: the gate {GATE}); the distance between the two branches' mean features "
                  "on the critic's tapped layers over the spread within a branch (dashed: the same with shuffled "
                  "labels, what indistinguishable branches give); the gradient ratio at the full α; and the eval "
                  "hook's Total at n+1 minus at n steps, against generator updates.")


def _term_panel(ax, frame: pd.DataFrame, quantity: str, confidence: float) -> None:
    for n, group in frame[frame["quantity"] == quantity].groupby("n", sort=True):
        stats = curve(group.rename(columns={"step": "updates"}), confidence=confidence)
        band(ax, stats, f"n={int(n)}")
        if quantity == "feat_ratio":
            null = frame[(frame["quantity"] == "feat_null") & (frame["n"] == n)]
            stats_null = curve(null.rename(columns={"step": "updates"}), confidence=confidence)
            color = ax.get_lines()[-1].get_color()
            ax.plot(stats_null["x"], stats_null["mean"], linestyle="--", color=color, linewidth=1)
    if quantity == "heldout_acc":
        ax.axhline(CHANCE, color="grey", linewidth=0.8)
        ax.axhline(GATE, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("critic step", fontsize=7)
    ax.ticklabel_format(axis="y", useOffset=False)  # a ratio held at its target reads as that number
    low, high = ax.get_ylim()
    if high - low < 1e-6 * max(1.0, abs(high)):  # a constant (a ratio held at its target): give it room
        ax.set_ylim(low - 0.5 * max(1.0, abs(low)), high + 0.5 * max(1.0, abs(high)))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def _quality_panel(ax, frame: pd.DataFrame, confidence: float) -> None:
    for n, group in frame.groupby("n", sort=True):
        band(ax, curve(group, confidence=confidence), f"n={int(n)}")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("generator updates", fontsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


# -- Figure 8: Total against α ----------------------------------------------------------------------
def run_alpha(samples_dir: str) -> float | None:
    """α of an ASD run, from its config.yaml (the run folder holds ``samples/`` and ``config.yaml``)."""
    path = Path(samples_dir).parent / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text())
        args = config["pipeline"]["init_args"]["method"]["init_args"]
        return float(args["alpha"]) if not args.get("target_ratio") else None
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def alpha_figure(inputs: FigureInputs) -> Figure | None:
    """Total at 1 and 2 steps against α, where the study's ASD runs take at least three values of α."""
    key = inputs.headline()
    runs = inputs.study.complete
    if key is None or runs.empty or f"m:{key}" not in runs or "kind" not in runs:
        return None
    asd = runs[runs["kind"].isin(ASD_KINDS)]  # ASD at alpha 0 names itself "dmd"; run_alpha drops plain DMD
    asd = asd.assign(alpha=[run_alpha(s) for s in asd["samples_dir"]]).dropna(subset=["alpha"])
    schedules = [s for s in ("1", "2") if (asd["steps"] == s).any()]
    if asd["alpha"].nunique() < 3 or not schedules:
        return None
    scale = next((c.scale for c in inputs.table.columns if c.key == key), 1.0)  # as the tables show it
    fig, axes = panel_grid(len(schedules), 2, 4.2, 3.2)
    for ax, schedule in zip(axes.flat, schedules):
        part = asd[asd["steps"] == schedule]
        stats = [_estimate(part[part["alpha"] == a][f"m:{key}"], inputs.table.confidence, scale) + (a,)
                 for a in sorted(part["alpha"].unique())]
        x = [s[3] for s in stats]
        ax.errorbar(x, [s[0] for s in stats], yerr=[s[1] for s in stats], fmt="o-", capsize=3)
        for mean, _, n, a in stats:
            ax.annotate(f"n={n}", (a, mean), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("α")
        ax.set_ylabel(key.capitalize())
        ax.set_title(f"{key.capitalize()} at {schedule} step{'s' if schedule != '1' else ''}", fontsize=9)
    fig.tight_layout()
    name = save(fig, inputs, "asd_alpha.png")
    return Figure(name, f"{key.capitalize()} against the ASD weight α (the paper's Figure 8)",
                  "Mean over seeds with the 95% t-interval; α = 0 is the step-unified DMD baseline. What each α "
                  "means as a gradient ratio on this backbone is in the ASD diagnostics figure.")


def _estimate(values: pd.Series, confidence: float, scale: float) -> tuple[float, float, int]:
    from reports.tables import estimate

    cell = estimate([float(v) for v in values if math.isfinite(v)], confidence)
    if cell is None:
        return math.nan, 0.0, 0
    half = 0.0 if math.isnan(cell.half_width) else cell.half_width
    return cell.mean * scale, half * scale, cell.n


__all__ = ["alpha_figure", "asd_diagnostics", "diagnostic_terms", "quality_gaps"]
