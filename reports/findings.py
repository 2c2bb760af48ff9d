"""Findings as sentences computed from the table's numbers — never written by hand.

Each finding rule reads a :class:`~reports.tables.ResultTable` and returns sentences; ``FINDING_RULES``
is their ordered registry. Differences between two rows come with Welch's 95% t-interval over
seeds and say plainly whether that interval excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .collect import MISSING_LABEL, StudyData
from .tables import Estimate, ResultTable, TableRow, welch_difference

FFE_SUFFIX = "*"


def _headline(table: ResultTable) -> str | None:
    keys = [c.key for c in table.columns]
    return next((k for k in ("total", "quality", "semantic") if k in keys), None)


def _distilled(table: ResultTable) -> list[TableRow]:
    return [r for r in table.rows if not r.reference]


def _steps_phrase(steps: str) -> str:
    """'1 step', '2* steps'; empty for rows without a step count (real data, a generic pipeline)."""
    if steps == MISSING_LABEL:
        return ""
    return f"{steps} step" if steps == "1" else f"{steps} steps"


def _seeds(a: TableRow, b: TableRow, key: str) -> str:
    return f"n = {len(a.values[key])} vs {len(b.values[key])} seeds"


def describe_difference(diff: Estimate, unit: str, other: str, seeds: str) -> str:
    """'6.00 Total points above DMD (95% CI of the difference [a, b], which excludes 0; n = 3 vs 3 seeds)'."""
    head = f"{abs(diff.mean):.2f} {unit} {'above' if diff.mean >= 0 else 'below'} {other}"
    if math.isnan(diff.half_width):
        return f"{head} (no interval: one seed on a side; {seeds})"
    verdict = "excludes 0" if diff.low > 0 or diff.high < 0 else "includes 0, so the seeds do not separate them"
    return f"{head} (95% CI of the difference [{diff.low:.2f}, {diff.high:.2f}], which {verdict}; {seeds})"


def best_row(table: ResultTable) -> list[str]:
    key = _headline(table)
    rows = [r for r in _distilled(table) if key and r.cells.get(key)]
    if not rows:
        return []
    best = max(rows, key=lambda r: r.cells[key].mean)
    cell = best.cells[key]
    interval = "" if math.isnan(cell.half_width) else f" ± {cell.half_width:.2f}"
    where = f" at {_steps_phrase(best.steps)}" if _steps_phrase(best.steps) else ""
    cost = "" if math.isnan(best.nfe) else f" (NFE {best.nfe_text})"
    sentence = (f"The highest {key.capitalize()} is {best.method}{where}{cost}: "
                f"{cell.mean:.2f}{interval} over {cell.n} seed{'s' if cell.n != 1 else ''}.")
    return [sentence]


def methods_at_equal_steps(table: ResultTable) -> list[str]:
    """At each step count with several methods: the best one against each other one."""
    key = _headline(table)
    if key is None:
        return []
    sentences = []
    by_steps: dict[str, list[TableRow]] = {}
    for row in _distilled(table):
        if row.cells.get(key):
            by_steps.setdefault(row.steps, []).append(row)
    for steps, rows in by_steps.items():
        if len(rows) < 2:
            continue
        best = max(rows, key=lambda r: r.cells[key].mean)
        for other in (r for r in rows if r is not best):
            diff = welch_difference(best.values[key], other.values[key], table.confidence)
            text = describe_difference(diff, key.capitalize() + " points", other.method, _seeds(best, other, key))
            where = f"At {_steps_phrase(steps)}, " if _steps_phrase(steps) else ""
            sentences.append(f"{where}{best.method} scores {text}.")
    return sentences


def ffe_effect(table: ResultTable) -> list[str]:
    """For each method sampled with both n and n* steps: what first-frame enhancement changes."""
    key = _headline(table)
    if key is None:
        return []
    sentences = []
    rows = {(r.method, r.steps): r for r in _distilled(table) if r.cells.get(key)}
    for (method, steps), enhanced in rows.items():
        plain = rows.get((method, steps.rstrip(FFE_SUFFIX))) if steps.endswith(FFE_SUFFIX) else None
        if plain is None:
            continue
        diff = welch_difference(enhanced.values[key], plain.values[key], table.confidence)
        extra = enhanced.nfe - plain.nfe
        cost = "" if math.isnan(extra) else f", for {extra:g} more NFE"
        text = describe_difference(diff, key.capitalize() + " points", f"plain {plain.steps}",
                                   _seeds(enhanced, plain, key))
        sentences.append(f"For {method}, first-frame enhancement ({steps} steps) scores {text}{cost}.")
    return sentences


def speed_frontier(table: ResultTable) -> list[str]:
    """Which rows no other row beats on both NFE and the headline score."""
    key = _headline(table)
    rows = [r for r in _distilled(table) if key and r.cells.get(key) and not math.isnan(r.nfe)]
    if len(rows) < 2:
        return []
    front, best = [], -math.inf
    for row in sorted(rows, key=lambda r: (r.nfe, -r.cells[key].mean)):
        if row.cells[key].mean > best:
            front.append(row)
            best = row.cells[key].mean
    listed = "; ".join(f"{r.method} {r.steps} (NFE {r.nfe_text}, {r.cells[key].mean:.2f})" for r in front)
    return [f"On the {key.capitalize()}–NFE frontier (no other row is both cheaper and better): {listed}."]


FINDING_RULES: tuple[Callable[[ResultTable], list[str]], ...] = (
    best_row, methods_at_equal_steps, ffe_effect, speed_frontier)


def run_counts(study: StudyData) -> str:
    """How many runs the numbers rest on, by state."""
    counts = study.runs["state"].value_counts().to_dict() if len(study.runs) else {}
    states = ", ".join(f"{int(n)} {state}" for state, n in counts.items()) or "no run folders"
    return (f"The tables rest on {int(counts.get('complete', 0))} complete runs of "
            f"{int(sum(counts.values()))} ({states}).")


def findings(study: StudyData, table: ResultTable) -> list[str]:
    """Every finding the numbers support, in the registry's order, after the run count."""
    return [run_counts(study)] + [sentence for rule in FINDING_RULES for sentence in rule(table)]
