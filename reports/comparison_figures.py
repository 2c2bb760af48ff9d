"""Figures that compare table rows: the quality–speed frontier and the per-dimension differences
against the baseline row, each with 95% intervals and the evaluator named on the score axis.

Frontier labels are placed so that no two overlap (:func:`place_labels`): each label tries a few
offsets around its point and takes the first whose box is free.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from reports.figure_base import Figure, FigureInputs, panel_grid, save
from reports.tables import ResultTable, TableRow, compare_rows

# label offsets tried in turn, in points from the point: right, above, below, left, then further out
OFFSETS = [(5, 3), (5, -10), (-5, 9), (-5, -14), (5, 12), (5, -19), (-5, 18), (-5, -23), (12, 3), (12, -10),
           (5, 21), (5, -28), (-5, 27), (-5, -32), (12, 16), (12, -23)]
FONT_SIZE = 7


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(ax: plt.Axes, points: list[tuple[float, float]], texts: list[str], colors: list[str]) -> list:
    """Annotate each point with its text at the first offset whose box overlaps no placed label and no
    marker; returns the annotations (after the axes limits are final: call this last)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_pixels = ax.transData.transform
    scale = fig.dpi / 72.0
    markers = [tuple(to_pixels(p)) for p in points]
    taken = [(x - 3, y - 3, x + 3, y + 3) for x, y in markers]
    placed = []
    for (px, py), text, color in zip(markers, texts, colors):
        probe = ax.annotate(text, (0, 0), fontsize=FONT_SIZE)
        box = probe.get_window_extent(renderer)
        probe.remove()
        w, h = box.width, box.height
        choice = OFFSETS[0]
        for dx, dy in OFFSETS:
            x0 = px + dx * scale - (w if dx < 0 else 0)
            y0 = py + dy * scale
            candidate = (x0, y0, x0 + w, y0 + h)
            if not any(_overlaps(candidate, other) for other in taken):
                choice = (dx, dy)
                taken.append(candidate)
                break
        else:
            x0, y0 = px + choice[0] * scale, py + choice[1] * scale
            taken.append((x0, y0, x0 + w, y0 + h))
        placed.append(ax.annotate(text, ax.transData.inverted().transform((px, py)), xytext=choice,
                                  textcoords="offset points", fontsize=FONT_SIZE, color=color,
                                  ha="right" if choice[0] < 0 else "left", va="bottom"))
    return placed


# -- quality–speed frontier -----------------------------------------------------------------------
def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and score (higher), by increasing cost."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _score_label(table: ResultTable, key: str) -> str:
    name = table.evaluator.name if table.evaluator else "evaluator"
    return f"{key.capitalize()} ({name})"


def frontier(inputs: FigureInputs) -> Figure | None:
    """Headline score against NFE and against latency: a colour per method, its step counts as labels."""
    table, key = inputs.table, inputs.headline()
    latency = "latency_s" if any(c.key == "latency_s" for c in table.columns) else None
    rows = [r for r in table.rows if key and r.cells.get(key) and not math.isnan(r.nfe) and r.nfe > 0]
    # rows with a score and no sampling cost (real data): a horizontal reference line, not a point
    free = [r for r in table.rows if key and r.cells.get(key) and (math.isnan(r.nfe) or r.nfe <= 0)]
    if not rows:
        inputs.problems.append(f"{inputs.study.name}: no row has both NFE and {key or 'a score'}; no frontier plot")
        return None
    methods = list(dict.fromkeys(r.method for r in rows))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    marks = {m: "osD^v<>ph*"[i // 10 % 10] for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    clipped, labels = [], []
    for ax, xlabel, cost in ((axes[0], "NFE (log scale)", lambda r: (r.nfe, math.nan)),
                             (axes[1], "measured latency, s (log scale)", lambda r: _cell_pair(r, latency))):
        points, texts, tints = [], [], []
        for method in methods:
            mine = sorted(((cost(r), r) for r in rows if r.method == method and cost(r)[0] is not None),
                          key=lambda pair: pair[0][0])
            if len(mine) > 1:
                ax.plot([x for (x, _), _ in mine], [r.cells[key].mean for _, r in mine], color=colors[method],
                        alpha=0.3, linewidth=1)
            for (x, half), row in mine:
                cell = row.cells[key]
                xerr = None
                if not math.isnan(half):
                    low = x - half
                    if low <= 0:
                        clipped.append(row.label)
                        low = x / 10.0
                    xerr = [[x - low], [half]]
                yerr = None if math.isnan(cell.half_width) else cell.half_width
                ax.errorbar(x, cell.mean, yerr=yerr, xerr=xerr, fmt=marks[method], color=colors[method],
                            capsize=2, markersize=5)
                points.append((x, cell.mean))
                texts.append(row.steps)
                tints.append(colors[method])
        if points:
            front = _pareto(points)
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", alpha=0.6,
                    linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_score_label(table, key))
        labels.append((ax, points, texts, tints))
    handles = [Line2D([], [], color=colors[m], marker=marks[m], linestyle="", label=m) for m in methods]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title="method")
    outside = _reference_lines(axes, free, key)
    fig.tight_layout()
    for ax, points, texts, tints in labels:  # after the layout, which moves and resizes the axes
        place_labels(ax, points, texts, tints)
    name = save(fig, inputs, "frontier.png")
    note = "".join([
        f" Dotted lines: {', '.join(r.method for r in free if r not in outside)} (no sampling cost)."
        if len(free) > len(outside) else "",
        f" Without a sampling cost and outside the plotted range: "
        f"{'; '.join(f'{r.method} {r.cells[key].mean:.2f}' for r in outside)}." if outside else "",
        f" Latency intervals reaching below 0 s ({', '.join(dict.fromkeys(clipped))}) are drawn to a tenth of "
        "the mean (a log axis has no 0)." if clipped else ""])
    return Figure(name, "Quality against speed",
                  f"{_score_label(table, key)}, mean ± 95% CI over seeds, against NFE and against measured sampling "
                  "latency (mean ± 95% CI over seeds); a colour per method, each point labelled with its steps "
                  f"(n* = first-frame enhancement); the dashed grey line is the Pareto frontier.{note}")


def _reference_lines(axes, free: list[TableRow], key: str) -> list[TableRow]:
    """A dotted line per row without a sampling cost, where it lies within a quarter of the plotted range
    of the scores; the rows outside are returned, for the caption to give their values."""
    outside = []
    for row in free:
        value = row.cells[key].mean
        low, high = axes[0].get_ylim()
        margin = 0.25 * (high - low)
        if not low - margin <= value <= high + margin:
            outside.append(row)
            continue
        for ax in axes:
            ax.axhline(value, color="black", linestyle=":", linewidth=1)
            ax.annotate(row.method, (1.0, value), xycoords=("axes fraction", "data"), xytext=(-3, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=FONT_SIZE)
    return outside


def _cell_pair(row: TableRow, key: str | None) -> tuple[float | None, float]:
    cell = row.cells.get(key) if key else None
    if cell is None:
        return None, math.nan
    return cell.mean, cell.half_width


# -- per-dimension differences against the baseline row --------------------------------------------
def baseline_pairs(table: ResultTable) -> list[tuple[TableRow, TableRow]]:
    """(row, baseline at the same steps) for every distilled row but the baseline's: the baseline is
    the first distilled method of the table (DMD in the ablation), as the paper's tables read."""
    distilled = [r for r in table.rows if not r.reference]
    if not distilled:
        return []
    base = distilled[0].method
    at = {r.steps: r for r in distilled if r.method == base}
    return [(r, at[r.steps]) for r in distilled if r.method != base and r.steps in at]


def dimension_differences(inputs: FigureInputs) -> Figure | None:
    """Per step count, each row's difference from the baseline on the scores and every dimension, with
    its 95% interval (paired by seed where the rows share seeds, else Welch)."""
    table = inputs.table
    columns = [c for c in table.columns if c.group in ("score", "quality", "semantic")]
    pairs = baseline_pairs(table)
    if not columns or not pairs:
        return None
    steps = list(dict.fromkeys(b.steps for _, b in pairs))
    fig, axes = panel_grid(len(steps), 3, 4.2, 0.28 * len(columns) + 1.4, sharey=True)
    y = np.arange(len(columns))[::-1]
    no_interval = set()
    for ax, step in zip(axes.flat, steps):
        mine = [(r, b) for r, b in pairs if b.steps == step]
        for i, (row, base) in enumerate(mine):
            offset = (i - (len(mine) - 1) / 2) * 0.8 / max(1, len(mine))
            means, halves = [], []
            for column in columns:
                c = compare_rows(row, base, column.key, table.confidence)
                scale = column.scale
                means.append(c.estimate.mean * scale if c else np.nan)
                halves.append(c.estimate.half_width * scale if c and c.has_interval else 0.0)
                if c is not None and not c.has_interval:
                    no_interval.add(row.label)
            ax.errorbar(means, y + offset, xerr=halves, fmt="o", markersize=4, capsize=2,
                        label=f"{row.method} − {base.method}")
        ax.axvline(0.0, color="grey", linewidth=0.8)
        ax.set_title(f"{step} step{'s' if step != '1' else ''}", fontsize=9)
        ax.set_xlabel("difference (points)", fontsize=8)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    for ax in list(axes.flat)[len(steps):]:
        ax.set_visible(False)
    axes[0][0].set_yticks(y, [c.label for c in columns], fontsize=8)
    fig.tight_layout()
    name = save(fig, inputs, "dimensions.png")
    evaluator = table.evaluator.text if table.evaluator else "the world's evaluator"
    bare = f" No interval (one seed on a side): {', '.join(sorted(no_interval))}." if no_interval else ""
    base = pairs[0][1].method
    compared = {id(r) for r, _ in pairs}
    alone = [r.label for r in table.rows if not r.reference and r.method != base and id(r) not in compared]
    unpaired = f" Not shown (no {base} row at their steps): {', '.join(alone)}." if alone else ""
    return Figure(name, f"Per-dimension differences from {base}",
                  f"{evaluator}: each row minus {base} at the same steps, on the scores (points) and "
                  f"on every dimension (percentage points), with the 95% CI of the difference (paired by seed "
                  f"where the rows share seeds, else Welch).{bare}{unpaired}")
