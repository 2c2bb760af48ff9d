"""``index.html``: one self-contained page per study (tables, figures, findings, config, provenance).

The page has no script and no network address: images are PNG files and videos mp4 files beside it
(``videos/``), referenced by relative path, and the styles are inline, so it opens offline from any
folder it is copied to. Run hashes link to the run folders, relative to the page.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from reports.figure_base import Figure
from reports.learning import CONVERGENCE_METRIC, CONVERGENCE_SCHEDULE, LAST_FRACTION, Verdict

STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { padding: 0.25em 0.5em; border-bottom: 1px solid #e3e3e3; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
caption { caption-side: bottom; text-align: left; font-size: 0.9em; color: #555; padding-top: 0.4em; }
tr.reference td { font-style: italic; color: #555; }
.scroll { overflow-x: auto; }
.problems li { color: #8a3b00; } figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #444; } pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
table.gallery th { text-align: left; vertical-align: top; white-space: normal; max-width: 24em; }
table.gallery td { text-align: left; vertical-align: top; }
figure.clip { display: inline-block; margin: 0 0.3em 0.3em 0; text-align: center; }
figure.clip video { image-rendering: pixelated; background: #000; display: block; height: auto;
  min-width: 128px; max-width: 320px; }  /* tiny sprites clips scaled up, Wan's 832 px ones down */
figure.clip.missing div { width: 128px; height: 128px; background: #eee; color: #777; display: flex;
  align-items: center; justify-content: center; font-size: 0.8em; }
.evaluator { background: #eef3fa; padding: 0.4em 0.6em; border-left: 3px solid #4a78b5; }
"""


RUNS_NOTE = ("A complete run whose recorded plugin or stage versions are not the current code's is "
             "outdated: left out of the tables (harness run recomputes it). A run computed at another git "
             "commit than most of the study is kept in the tables and flagged.")


@dataclass
class StudyPage:
    """What one study's page shows; built by :func:`reports.build_report`."""

    study: str
    manifest: dict[str, Any]
    table_html: str
    table_files: dict[str, str]  # format -> file name beside index.html
    figures: list[Figure]
    findings: list[str]
    problems: list[str]
    runs: pd.DataFrame
    scrub: list[str] = field(default_factory=list)  # absolute prefixes never shown on the page
    convergence: list[Verdict] = field(default_factory=list)  # one per distilled variant with eval rows
    gallery_html: str = ""  # reports.gallery.gallery_html, or empty when no run kept a sample
    runs_href: str = ""  # the study folder relative to the page ("../"), for links to run folders
    evaluator: str = ""  # which evaluator scored the study, in one sentence


def _e(text: Any) -> str:
    return html.escape(str(text))


def _document(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>",
        "</head><body>", *body, "</body></html>", ""])


def _list(items: list[str], css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<ul{attr}>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _pre(text: str, scrub: list[str]) -> str:
    for prefix in scrub:
        text = text.replace(prefix, "<runs>")
    return f"<pre>{_e(text)}</pre>"


def _runs_table(runs: pd.DataFrame, href: str = "") -> str:
    """Every run folder of the study; with ``href`` (the study folder relative to the page) each hash links
    to its run folder."""
    columns = [c for c in ("hash", "method", "steps", "seed", "state", "seconds", "reason", "flag") if c in runs]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for _, run in runs.iterrows():
        cells = ["" if pd.isna(run[c]) else (f"{run[c]:.1f}" if c == "seconds" else run[c]) for c in columns]
        tds = [f"<td>{_e(v)}</td>" for v in cells]
        if href and "hash" in columns and cells[0]:
            tds[0] = f'<td><a href="{_e(href)}{_e(cells[0])}/">{_e(cells[0])}</a></td>'
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


CONVERGENCE_NOTE = (f"Converged: the mean curve ({CONVERGENCE_METRIC.capitalize()} at {CONVERGENCE_SCHEDULE} step, "
                    "EMA generator where there is one) moved less over the last "
                    f"{LAST_FRACTION:.0%} of training (the evaluation nearest 75% of the updates to the last) "
                    "than the standard deviation of the final values over seeds; unknown with fewer than 2 "
                    "seeds or 3 evaluations.")


def _number(value: float, spec: str) -> str:
    return "" if math.isnan(value) else format(value, spec)


def _convergence_table(verdicts: list[Verdict]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in ("Variant", "Verdict", "Seeds", "Evaluations", "Updates",
                                                  "Final mean", "Change", "Seed sd", "Model"))
    body = []
    for v in verdicts:
        updates = "" if math.isnan(v.start) else f"{v.start:g} → {v.end:g}"
        cells = (v.method, v.state, v.seeds, v.points, updates, _number(v.final, ".2f"),
                 _number(v.change, "+.2f"), _number(v.spread, ".2f"), v.model)
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return (f'<div class="scroll"><table><caption>{_e(CONVERGENCE_NOTE)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _figure(figure: Figure) -> str:
    return (f'<figure><h3>{_e(figure.title)}</h3><img src="{_e(figure.file)}" alt="{_e(figure.title)}">'
            f"<figcaption>{_e(figure.caption)}</figcaption></figure>")


def render_study(page: StudyPage) -> str:
    """The study's page as an HTML string."""
    manifest = page.manifest
    subtitle = " · ".join(f"{k}: {manifest[k]}" for k in ("source", "preset", "updated") if manifest.get(k))
    links = " · ".join(f'<a href="{_e(name)}">{_e(fmt)}</a>' for fmt, name in page.table_files.items())
    body = [f"<h1>Study {_e(page.study)}</h1>", f"<p>{_e(subtitle)}</p>"]
    if page.evaluator:
        body.append(f'<p class="evaluator">{_e(page.evaluator)}</p>')
    if page.problems:
        body += ["<h2>Problems with the input</h2>", _list(page.problems, "problems")]
    body += ["<h2>Findings</h2>", _list(page.findings, "findings"),
             "<h2>Results</h2>", f'<div class="scroll">{page.table_html}</div>', f"<p>Also as {links}.</p>"]
    if page.convergence:
        body += ["<h2>Convergence</h2>", _convergence_table(page.convergence)]
    if page.gallery_html:
        body += ["<h2>Samples</h2>", page.gallery_html]
    if page.figures:
        body += ["<h2>Figures</h2>", *(_figure(f) for f in page.figures)]
    body += ["<h2>Runs</h2>", f"<p>{_e(RUNS_NOTE)}</p>", _runs_table(page.runs, page.runs_href),
             "<h2>Resolved study config</h2>",
             _pre(yaml.safe_dump(manifest.get("config") or {}, sort_keys=False, allow_unicode=True), page.scrub),
             "<h2>Provenance</h2>",
             _pre(json.dumps(manifest.get("provenance") or {}, indent=2, ensure_ascii=False), page.scrub)]
    return _document(f"Study {page.study}", body)


def write_study_page(page: StudyPage, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(render_study(page), encoding="utf-8")
    return path


def write_landing_page(out_dir: Path, studies: dict[str, str]) -> Path:
    """``index.html`` linking each study's page (``studies``: name -> one-line summary)."""
    items = "".join(f'<li><a href="{_e(name)}/index.html">{_e(name)}</a>: {_e(summary)}</li>'
                    for name, summary in sorted(studies.items()))
    path = out_dir / "index.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(_document("Studies", ["<h1>Studies</h1>", f"<ul>{items}</ul>"]), encoding="utf-8")
    return path
