"""The paper's tables from a study's runs: one row per (method, steps, NFE), mean ± 95% CI over seeds.

Intervals are Student-t intervals over seeds (:mod:`reports.statistics`, re-exported here).

The best value of each column is bold in every format; reference rows (teacher, real data: rows with
no distilled generator) are shown but never bold, as in the paper.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.collect import MISSING_LABEL, PARTIAL_MARK, MetricColumn, StudyData
from reports.evaluator import EvaluatorInfo
from reports.statistics import (  # noqa: F401 - re-exported: the findings and tests import them from here
    CONFIDENCE,
    MIN_PAIRS,
    PAIRED,
    WELCH,
    Comparison,
    Estimate,
    compare_rows,
    estimate,
    minimum_detectable_difference,
    paired_difference,
    t_one_sided,
    t_quantile,
    t_two_sided_mass,
    welch_difference,
)

EMPTY_NOTE = "No complete runs: nothing to tabulate yet."


# -- the table -------------------------------------------------------------------------------------
@dataclass
class TableRow:
    """One (method, steps, NFE) row: per metric, the seeds' values (also by seed, for pairing) and
    their estimate. ``kind`` is the result's ``method`` field ("asd", "causal_init", "teacher", …)."""

    method: str
    steps: str
    nfe: float
    n: int
    reference: bool
    values: dict[str, list[float]] = field(default_factory=dict)
    cells: dict[str, Estimate | None] = field(default_factory=dict)
    by_seed: dict[str, dict[object, float]] = field(default_factory=dict)
    kind: str | None = None

    @property
    def label(self) -> str:
        return self.method if self.steps == MISSING_LABEL else f"{self.method} · {self.steps}"

    @property
    def nfe_text(self) -> str:
        return MISSING_LABEL if math.isnan(self.nfe) else f"{self.nfe:g}"

    def partial(self, key: str) -> bool:
        cell = self.cells.get(key)
        return cell is not None and cell.n < self.n


@dataclass
class ResultTable:
    study: str
    rows: list[TableRow]
    columns: list[MetricColumn]
    confidence: float = CONFIDENCE
    evaluator: EvaluatorInfo | None = None

    def shared_columns(self) -> list[MetricColumn]:
        """Columns whose every row shows one value (reference diversity: a property of the real reference
        set): stated once in the legend, not repeated in every row."""
        shared = []
        for column in self.columns:
            shown = {self.mean_text(r, column) for r in self.rows if r.cells.get(column.key)}
            present = sum(1 for r in self.rows if r.cells.get(column.key))
            if present >= 2 and len(shown) == 1:
                shared.append(column)
        return shared

    def mean_text(self, row: TableRow, column: MetricColumn) -> str:
        """The cell's mean as shown (scaled, the column's decimals), without its interval."""
        cell = row.cells.get(column.key)
        return MISSING_LABEL if cell is None else f"{cell.mean * column.scale:.{self.decimals(column)}f}"

    def shown_columns(self) -> list[MetricColumn]:
        """The columns a table prints: every column but the shared ones."""
        shared = {c.key for c in self.shared_columns()}
        return [c for c in self.columns if c.key not in shared]

    def main_columns(self) -> list[MetricColumn]:
        """The paper's columns: Total, Quality and Semantic (else the first three printed columns)."""
        scores = [c for c in self.shown_columns() if c.group == "score"]
        return scores or self.shown_columns()[:3]

    def decimals(self, column: MetricColumn) -> int:
        means = [abs(r.cells[column.key].mean) * column.scale for r in self.rows if r.cells.get(column.key)]
        return 2 if means and max(means) >= 1.0 else 3

    def best(self, column: MetricColumn) -> set[int]:
        """Indices of the non-reference rows whose shown mean is the best of the column."""
        digits = self.decimals(column)
        shown = {i: round(r.cells[column.key].mean * column.scale, digits)
                 for i, r in enumerate(self.rows) if not r.reference and r.cells.get(column.key)}
        if len(set(shown.values())) < 2 and len(shown) > 1:
            return set()  # every row shows the same value (a property of the reference): nothing is best
        if not shown:
            return set()
        target = max(shown.values()) if column.higher_is_better else min(shown.values())
        return {i for i, v in shown.items() if v == target}

    def cell_text(self, row: TableRow, column: MetricColumn, pm: str = "±") -> str:
        cell = row.cells.get(column.key)
        if cell is None:
            return MISSING_LABEL
        digits = self.decimals(column)
        text = f"{cell.mean * column.scale:.{digits}f}"
        if not math.isnan(cell.half_width):
            text += f" {pm} {cell.half_width * column.scale:.{digits}f}"
        return text + (PARTIAL_MARK if row.partial(column.key) else "")


UNTRAINED_KINDS = {"causal_init"}  # rows with a generator that no distillation trained: reference rows


def _seed_key(seed: object) -> object | None:
    """A run's seed as a pairing key (3.0 and 3 pair); None when the run has none."""
    if seed is None or (isinstance(seed, float) and math.isnan(seed)):
        return None
    if isinstance(seed, (float, np.floating)) and float(seed).is_integer():
        return int(seed)
    return seed.item() if isinstance(seed, np.generic) else seed


def _by_seed(seeds: list[object], values: list[float]) -> dict[object, float]:
    """Seed → value; a seed seen twice in one row pairs with nothing (it is ambiguous)."""
    keys = [_seed_key(s) for s in seeds]
    return {k: v for k, v in zip(keys, values) if k is not None and keys.count(k) == 1}


def _kind(group: pd.DataFrame) -> str | None:
    kinds = group["kind"].dropna() if "kind" in group else []
    return str(kinds.iloc[0]) if len(kinds) else None


def build_table(study: StudyData, confidence: float = CONFIDENCE) -> ResultTable:
    """Group the complete runs by (method, steps) in the study's run order and estimate every cell."""
    runs = study.complete
    rows = []
    for (method, steps), group in runs.groupby(["method", "steps"], sort=False):
        nfe = group["nfe"].dropna()
        kind = _kind(group)
        untrained = group["generator"].isna().all() if "generator" in group else True
        row = TableRow(str(method), str(steps), float(nfe.iloc[0]) if len(nfe) else math.nan, len(group),
                       reference=bool(untrained or kind in UNTRAINED_KINDS), kind=kind)
        for column in study.columns:
            series = group.get(f"m:{column.key}")
            present = [] if series is None else series.dropna()
            row.values[column.key] = [float(v) for v in present]
            seeds = [] if series is None else list(group.loc[present.index, "seed"])
            row.by_seed[column.key] = _by_seed(seeds, row.values[column.key])
            row.cells[column.key] = estimate(row.values[column.key], confidence)
        rows.append((group["order"].min(), row))
    rows.sort(key=lambda pair: pair[0])
    if all(row.reference for _, row in rows):  # a study with no distilled generator has no reference rows
        for _, row in rows:
            row.reference = False
    return ResultTable(study.name, [r for _, r in rows], list(study.columns), confidence, study.evaluator)


RETRAINED_MARK, FFE_MARK = "†", "*"


def evaluator_sentence(table: ResultTable) -> str:
    """'Scores: sprites-bench (harness 0.1.0). sprites-bench: … not VBench scores.'"""
    if table.evaluator is None:
        return ""
    return f"Scores: {table.evaluator.text}. {table.evaluator.note}"


def legend(table: ResultTable) -> str:
    """What every mark and number of the table means, the evaluator first; shared columns stated once."""
    pct = round(table.confidence * 100)
    parts = [evaluator_sentence(table)] if table.evaluator else []
    parts.append(f"Mean ± {pct}% CI half-width over seeds (Student t); n = seeds with a complete run; "
                 f"dimensions in %; {PARTIAL_MARK} = fewer seeds than n; {MISSING_LABEL} = missing; "
                 "bold = best non-reference row (lowest for FD and latency).")
    if any(RETRAINED_MARK in r.method for r in table.rows):
        parts.append(f"{RETRAINED_MARK} = retrained for that step count (the paper's notation).")
    if any(r.steps.endswith(FFE_MARK) for r in table.rows):
        parts.append(f"n{FFE_MARK} steps = first-frame enhancement (the first chunk with the 4-step list, "
                     "later chunks with n steps).")
    for column in table.shared_columns():
        row = next(r for r in table.rows if r.cells.get(column.key))
        unit = " %" if column.scale == 100.0 else ""
        parts.append(f"{column.label}: {table.mean_text(row, column)}{unit} in every row that reports it "
                     "(not repeated as a column).")
    return " ".join(parts)


def _integer_or_none(values: list[float]) -> pd.Series:
    """Integers print as integers (NFE 8, not 8.0) when every value is whole, a missing one as empty
    (None: what the CSV writer and W&B's table both take)."""
    finite = [v for v in values if not math.isnan(v)]
    if any(not float(v).is_integer() for v in finite):
        return pd.Series(values, dtype="float64")
    return pd.Series([None if math.isnan(v) else int(v) for v in values], dtype="object")


def to_frame(table: ResultTable) -> pd.DataFrame:
    """Numbers as shown (scaled): Method, Steps, NFE, n, then per metric its mean and CI half-width.
    Every column, shared ones included: the CSV and the tracker's table are data, not a page."""
    records = []
    for row in table.rows:
        record = {"Method": row.method, "Steps": row.steps, "NFE": row.nfe, "n": row.n}
        for column in table.columns:
            cell = row.cells.get(column.key)
            record[column.label] = cell.mean * column.scale if cell else math.nan
            record[f"{column.label} ±"] = cell.half_width * column.scale if cell else math.nan
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if len(frame):
        frame["NFE"] = _integer_or_none([float(v) for v in frame["NFE"]])
    return frame


# -- renderers -------------------------------------------------------------------------------------
def to_markdown(table: ResultTable) -> str:
    columns = table.shown_columns()
    head = ["Method", "Steps", "NFE", "n"] + [c.label for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":--", ":-:", "--:", "--:"] +
                                                            ["--:"] * len(columns)) + "|"]
    best = {c.key: table.best(c) for c in columns}
    for i, row in enumerate(table.rows):
        cells = [row.method, row.steps, row.nfe_text, str(row.n)]
        for column in columns:
            text = table.cell_text(row, column)
            cells.append(f"**{text}**" if i in best[column.key] else text)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if not table.rows:
        lines += ["", EMPTY_NOTE]
    return "\n".join(lines + ["", legend(table), ""])


def group_spans(columns: list[MetricColumn]) -> list[tuple[str, int]]:
    """Runs of adjacent columns of one group: (group, width), for a spanning header row."""
    spans: list[tuple[str, int]] = []
    for column in columns:
        if spans and spans[-1][0] == column.group:
            spans[-1] = (column.group, spans[-1][1] + 1)
        else:
            spans.append((column.group, 1))
    return spans


GROUP_TITLES = {"score": "scores", "quality": "quality dimensions (%)", "semantic": "semantic dimensions (%)",
                "other": "Distribution", "speed": "Speed"}


def group_title(table: ResultTable, group: str) -> str:
    """A group header that names the evaluator ('sprites-bench scores'): the columns carry VBench's
    names, and only the header says whose numbers they are."""
    title = GROUP_TITLES[group]
    if group in ("score", "quality", "semantic"):
        name = table.evaluator.name if table.evaluator else "Evaluator"
        return f"{name} {title}"
    return title


def to_html(table: ResultTable) -> str:
    """An HTML ``<table>`` with a group header row; reference rows in italics."""
    columns = table.shown_columns()
    head1 = '<th colspan="4"></th>' + "".join(
        f'<th colspan="{w}">{html.escape(group_title(table, g))}</th>' for g, w in group_spans(columns))
    head2 = "".join(f"<th>{html.escape(h)}</th>" for h in ["Method", "Steps", "NFE", "n"] +
                    [c.label for c in columns])
    best = {c.key: table.best(c) for c in columns}
    body = []
    for i, row in enumerate(table.rows):
        cells = [f"<td>{html.escape(v)}</td>" for v in (row.method, row.steps, row.nfe_text, str(row.n))]
        for column in columns:
            text = html.escape(table.cell_text(row, column))
            cells.append(f"<td><strong>{text}</strong></td>" if i in best[column.key] else f"<td>{text}</td>")
        css = ' class="reference"' if row.reference else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return (f'<table class="results"><caption>{html.escape(legend(table))}</caption>'
            f"<thead><tr>{head1}</tr><tr>{head2}</tr></thead><tbody>{''.join(body)}</tbody></table>")
