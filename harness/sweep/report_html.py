"""The sweep report's ``index.html``: one self-contained page over the files :mod:`.report` wrote.

Plain HTML with relative links (no script, no network), so it opens from disk and from a copied folder.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from harness.io.atomic import atomic_write_text

FIGURE_TITLES = {"history": "Optimisation history", "importances": "Parameter importances (PED-ANOVA)",
                 "parallel": "Parallel coordinates", "pareto": "Pareto front"}


@dataclass
class SweepPage:
    study: str
    objectives: list[str]
    directions: list[str]
    counts: dict[str, int]  # trial state → number of trials
    best: list[dict[str, str]]  # rows of the best-trials table, readable column names
    names: dict[str, str]  # full parameter name → the short one the figures use
    figures: list[str]  # PNG file names, in page order
    warnings: list[str] = field(default_factory=list)
    study_report: str | None = None  # relative link to the study's own report
    no_best: str = "No complete trial yet."  # what the best-trials section says when it is empty


def _table(rows: list[dict[str, str]], empty: str = "No complete trial yet.") -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_title(stem: str, objectives: list[str]) -> str:
    base, _, objective = stem.partition("-")
    title = FIGURE_TITLES.get(base, base)
    return f"{title}: {objective}" if objective else (f"{title}: {objectives[0]}" if base != "pareto" and objectives else title)


def write_index(page: SweepPage, out: Path) -> Path:
    """Write ``out/index.html`` and return it."""
    e = html.escape
    goal = ", ".join(f"{e(o)} ({e(d)})" for o, d in zip(page.objectives, page.directions))
    counts = ", ".join(f"{n} {e(state)}" for state, n in page.counts.items() if n)
    parts = [f"<h1>Sweep {e(page.study)}</h1>",
             f"<p>Objective: {goal}. Trials: {counts or 'none'}.</p>"]
    if page.study_report:
        parts.append(f'<p><a href="{e(page.study_report)}">The study report</a> (every trial as a row, '
                     "with its videos and learning curves).</p>")
    parts += [f'<p class="warning">Warning: {e(w)}</p>' for w in page.warnings]
    parts += ["<h2>Best trials</h2>", _table(page.best, page.no_best)]
    for stem in page.figures:
        parts += [f"<h2>{e(_figure_title(stem, page.objectives))}</h2>",
                  f'<img src="{e(stem)}.png" alt="{e(stem)}">']
    renamed = {full: short for full, short in page.names.items() if full != short}
    if renamed:
        legend = "".join(f"<tr><td>{e(s)}</td><td><code>{e(f)}</code></td></tr>" for f, s in renamed.items())
        parts += ["<h2>Parameters</h2>",
                  f"<table><thead><tr><th>shown as</th><th>config key</th></tr></thead><tbody>{legend}</tbody></table>"]
    parts.append('<p>Every trial: <a href="trials.csv">trials.csv</a>; best trials: '
                 '<a href="best_trials.md">best_trials.md</a>.</p>')
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "img{max-width:100%}.warning{color:#a40;font-weight:bold}")
    text = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sweep {e(page.study)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = out / "index.html"
    atomic_write_text(path, text)
    return path
