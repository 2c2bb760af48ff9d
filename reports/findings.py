"""Findings as sentences computed from the table's numbers — never written by hand.

Each finding rule reads a :class:`~reports.tables.ResultTable` and returns sentences; ``FINDING_RULES``
is their ordered registry. A difference between two rows that share seeds (within a seed every row
samples the same noise) is the mean of the per-seed differences with its t-interval on n − 1 degrees
of freedom; rows that do not share seeds get Welch's unpaired interval. Each sentence says which form
it used and whether the interval excludes zero, and the study's minimum detectable difference is
estimated from the paired comparisons the findings make (:func:`minimum_detectable`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from reports.collect import MISSING_LABEL, StudyData
from reports.learning import convergence_sentences
from reports.tables import (
    PAIRED,
    Comparison,
    ResultTable,
    TableRow,
    compare_rows,
    minimum_detectable_difference,
)

FFE_SUFFIX = "*"
CAUSAL_INIT, TEACHER = "causal_init", "teacher"
REFERENCE_KINDS = {CAUSAL_INIT, TEACHER, "real_data", "diffusion_forcing", "reference"}
POWER = 0.8
Pair = tuple[TableRow, TableRow]  # (a, b): a finding about a − b


def _headline(table: ResultTable) -> str | None:
    keys = [c.key for c in table.columns]
    return next((k for k in ("total", "quality", "semantic") if k in keys), None)


def _distilled(table: ResultTable) -> list[TableRow]:
    return [r for r in table.rows if not r.reference]


def _of_kind(table: ResultTable, kind: str) -> list[TableRow]:
    return [r for r in table.rows if r.kind == kind]


def _steps_phrase(steps: str) -> str:
    """'1 step', '2* steps'; empty for rows without a step count (real data, a generic pipeline)."""
    if steps == MISSING_LABEL:
        return ""
    return f"{steps} step" if steps == "1" else f"{steps} steps"


def _seeds_text(c: Comparison) -> str:
    if c.form == PAIRED:
        return f"n = {c.n_a} paired seeds"
    return f"n = {c.n_a} vs {c.n_b} seeds, fewer than 2 shared"


def describe_comparison(c: Comparison, unit: str, other: str, confidence: float = 0.95) -> str:
    """'6.00 Total points above DMD (paired by seed: 95% CI of the mean per-seed difference [a, b], which
    excludes 0; n = 3 paired seeds)', or the same '(unpaired, Welch: 95% CI of the difference …)'."""
    diff = c.estimate
    head = f"{abs(diff.mean):.2f} {unit} {'above' if diff.mean >= 0 else 'below'} {other}"
    how, what = ("paired by seed", "the mean per-seed difference") if c.form == PAIRED else \
        ("unpaired, Welch", "the difference")
    if not c.has_interval:
        return f"{head} ({how}; no interval: one seed on a side; {_seeds_text(c)})"
    verdict = "excludes 0" if c.excludes_zero else "includes 0, so the seeds do not separate them"
    return (f"{head} ({how}: {round(confidence * 100)}% CI of {what} [{diff.low:.2f}, {diff.high:.2f}], "
            f"which {verdict}; {_seeds_text(c)})")


def _compare(table: ResultTable, a: TableRow, b: TableRow, key: str, other: str) -> str | None:
    c = compare_rows(a, b, key, table.confidence)
    return None if c is None else describe_comparison(c, key.capitalize() + " points", other, table.confidence)


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


def _scored(table: ResultTable, key: str) -> list[TableRow]:
    """Distilled students with a ``key`` value (never the causal init or the teacher, even in a study
    that has no distilled row and so shows them as ordinary rows)."""
    return [r for r in _distilled(table) if r.cells.get(key) and r.kind not in REFERENCE_KINDS]


# -- the pairs each finding compares (also pooled for the minimum detectable difference) ----------
def equal_step_pairs(table: ResultTable, key: str) -> list[Pair]:
    """At each step count with several students: (the best one, each other one)."""
    by_steps: dict[str, list[TableRow]] = {}
    for row in _scored(table, key):
        by_steps.setdefault(row.steps, []).append(row)
    pairs = []
    for rows in by_steps.values():
        best = max(rows, key=lambda r: r.cells[key].mean)
        pairs += [(best, other) for other in rows if other is not best]
    return pairs


def ffe_pairs(table: ResultTable, key: str) -> list[Pair]:
    """(n* steps, plain n steps) of each student sampled both ways."""
    rows = {(r.method, r.steps): r for r in _scored(table, key)}
    return [(enhanced, rows[(method, steps.rstrip(FFE_SUFFIX))]) for (method, steps), enhanced in rows.items()
            if steps.endswith(FFE_SUFFIX) and (method, steps.rstrip(FFE_SUFFIX)) in rows]


def init_pairs(table: ResultTable, key: str) -> list[Pair]:
    """(student, the causal init at the same schedule): did distillation help at all?"""
    inits = {r.steps: r for r in _of_kind(table, CAUSAL_INIT) if r.cells.get(key)}
    return [(row, inits[row.steps]) for row in _scored(table, key) if row.steps in inits]


def best_two_step(table: ResultTable, key: str) -> TableRow | None:
    rows = [r for r in _scored(table, key) if r.steps == "2"]
    return max(rows, key=lambda r: r.cells[key].mean) if rows else None


def teacher_pairs(table: ResultTable, key: str) -> list[Pair]:
    """(the best 2-step student, each teacher row): the 4-step teacher is what few-step students must beat."""
    best = best_two_step(table, key)
    teachers = [r for r in _of_kind(table, TEACHER) if r.cells.get(key)]
    return [(best, teacher) for teacher in teachers] if best else []


def ladder_pairs(table: ResultTable, key: str) -> list[Pair]:
    """(n + 1 steps, n steps) of each student: ASD's premise that one more step always helps."""
    rows = {(r.method, r.steps): r for r in _scored(table, key)}
    return [(row, rows[(method, str(int(steps) - 1))]) for (method, steps), row in rows.items()
            if steps.isdigit() and (method, str(int(steps) - 1)) in rows]


PAIR_RULES: tuple[Callable[[ResultTable, str], list[Pair]], ...] = (
    equal_step_pairs, init_pairs, teacher_pairs, ladder_pairs, ffe_pairs)


# -- the findings -----------------------------------------------------------------------------------
def methods_at_equal_steps(table: ResultTable) -> list[str]:
    """At each step count with several methods: the best one against each other one."""
    key = _headline(table)
    if key is None:
        return []
    sentences = []
    for best, other in equal_step_pairs(table, key):
        text = _compare(table, best, other, key, other.method)
        where = f"At {_steps_phrase(best.steps)}, " if _steps_phrase(best.steps) else ""
        if text:
            sentences.append(f"{where}{best.method} scores {text}.")
    return sentences


def versus_causal_init(table: ResultTable) -> list[str]:
    """Every student against the undistilled student sampled with the same schedule."""
    key = _headline(table)
    if key is None:
        return []
    sentences = []
    for row, init in init_pairs(table, key):
        plain = init.method.lower().replace(" ", "_") == CAUSAL_INIT  # its level key, or the label 'Causal init'
        name = "the causal init" + ("" if plain else f" ({init.method})")
        text = _compare(table, row, init, key, name)
        if text:
            sentences.append(f"At {_steps_phrase(row.steps)}, {row.method} scores {text}.")
    return sentences


def versus_teacher(table: ResultTable) -> list[str]:
    """The best 2-step student against every row of the teacher's own sampler."""
    key = _headline(table)
    if key is None:
        return []
    sentences = []
    for best, teacher in teacher_pairs(table, key):
        cost = f", NFE {teacher.nfe_text}" if not math.isnan(teacher.nfe) else ""
        other = f"the teacher's own sampler at {_steps_phrase(teacher.steps)} ({teacher.method}{cost})"
        text = _compare(table, best, teacher, key, other)
        if text:
            sentences.append(f"The best 2-step student, {best.method} (NFE {best.nfe_text}), scores {text}.")
    return sentences


def steps_ladder(table: ResultTable) -> list[str]:
    """For each student: n + 1 steps against n steps."""
    key = _headline(table)
    if key is None:
        return []
    sentences = []
    for more, fewer in ladder_pairs(table, key):
        text = _compare(table, more, fewer, key, _steps_phrase(fewer.steps))
        extra = more.nfe - fewer.nfe
        cost = "" if math.isnan(extra) else f", for {extra:g} more NFE"
        if text:
            sentences.append(f"For {more.method}, {_steps_phrase(more.steps)} score {text}{cost}.")
    return sentences


def ffe_effect(table: ResultTable) -> list[str]:
    """For each method sampled with both n and n* steps: what first-frame enhancement changes."""
    key = _headline(table)
    if key is None:
        return []
    sentences = []
    for enhanced, plain in ffe_pairs(table, key):
        extra = enhanced.nfe - plain.nfe
        cost = "" if math.isnan(extra) else f", for {extra:g} more NFE"
        text = _compare(table, enhanced, plain, key, f"plain {plain.steps}")
        if text:
            sentences.append(f"For {enhanced.method}, first-frame enhancement ({enhanced.steps} steps) "
                             f"scores {text}{cost}.")
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


# -- the study's minimum detectable difference ------------------------------------------------------
def paired_comparisons(table: ResultTable, key: str) -> list[tuple[Pair, Comparison]]:
    """Every distinct pair the findings compare that pairs by seed, with its comparison."""
    seen, out = set(), []
    for rule in PAIR_RULES:
        for a, b in rule(table, key):
            ident = frozenset((id(a), id(b)))
            if ident in seen:
                continue
            seen.add(ident)
            c = compare_rows(a, b, key, table.confidence)
            if c is not None and c.form == PAIRED:
                out.append(((a, b), c))
    return out


def pooled_sd(differences: list[tuple[float, ...]]) -> tuple[float, int]:
    """sqrt(Σ (n_i − 1) s_i² / Σ (n_i − 1)) over groups of per-seed differences, and Σ (n_i − 1)."""
    groups = [d for d in differences if len(d) >= 2]
    dof = sum(len(d) - 1 for d in groups)
    if dof == 0:
        return math.nan, 0
    sum_sq = sum(float(pd.Series(d).var(ddof=1)) * (len(d) - 1) for d in groups)
    return math.sqrt(sum_sq / dof), dof


def _count(n: int, noun: str) -> str:
    return f"the {noun}" if n == 1 else f"the {n} {noun}s"


def _pair_name(a: TableRow, b: TableRow) -> str:
    return f"{a.label} − {b.label}"


def minimum_detectable(table: ResultTable) -> list[str]:
    """The paired design's minimum detectable difference of the headline, at 80% power."""
    key = _headline(table)
    if key is None or not _distilled(table):
        return []
    compared = paired_comparisons(table, key)
    if not compared:
        none = (f"No two compared rows share at least 2 seeds, so the study states no minimum detectable "
                f"difference of {key.capitalize()} for the paired design.")
        return [none]
    sd, _ = pooled_sd([c.differences for _, c in compared])
    n = max(c.n_a for _, c in compared)
    mde = minimum_detectable_difference(sd, n, table.confidence, POWER)
    alpha = 1.0 - table.confidence
    names = "; ".join(_pair_name(a, b) for (a, b), _ in compared)
    sentence = (f"Minimum detectable difference (an estimate): with n = {n} seeds paired by seed, a true "
                f"{key.capitalize()} difference of {mde:.2f} points between two rows would be detected with "
                f"{POWER:.0%} power at the {alpha:.0%} level (two-sided): (t_{{{1 - alpha / 2:g},{n - 1}}} + "
                f"t_{{{POWER:g},{n - 1}}}) · sd_d / √{n}, where sd_d = {sd:.2f} is the pooled standard deviation "
                f"of the per-seed differences of {_count(len(compared), 'paired comparison')} above ({names}).")
    return [sentence]


FINDING_RULES: tuple[Callable[[ResultTable], list[str]], ...] = (
    best_row, methods_at_equal_steps, versus_causal_init, versus_teacher, steps_ladder, ffe_effect,
    speed_frontier, minimum_detectable)


def run_counts(study: StudyData) -> str:
    """How many runs the numbers rest on, by state."""
    counts = study.runs["state"].value_counts().to_dict() if len(study.runs) else {}
    states = ", ".join(f"{int(n)} {state}" for state, n in counts.items()) or "no run folders"
    return (f"The tables rest on {int(counts.get('complete', 0))} complete runs of "
            f"{int(sum(counts.values()))} ({states}).")


def findings(study: StudyData, table: ResultTable, curves: pd.DataFrame | None = None) -> list[str]:
    """Every finding the numbers support, in the registry's order, after the run count; then, given the
    training curves, each distilled variant's convergence verdict."""
    sentences = [run_counts(study)] + [sentence for rule in FINDING_RULES for sentence in rule(table)]
    return sentences + (convergence_sentences(curves) if curves is not None else [])
