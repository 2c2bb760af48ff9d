"""The study report and the sweep report of one sweep, built together and linked both ways.

A sweep's folder is a study folder too (its ``study.json`` lists every trial's runs), so the study report
(:mod:`reports`) shows each trial as a row with its videos and curves; the sweep report
(:mod:`.report`) shows what Optuna learnt. Each page links to the other.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from harness.io.atomic import atomic_write_text
from harness.sweep.report import sweep_report

LINK_CLASS = "sweep-link"


def is_sweep_folder(folder: Path) -> bool:
    return (Path(folder) / "sweep.json").exists()


def sweep_folders(runs_dir: Path, study: str | None = None) -> list[Path]:
    """The sweep folders of a runs folder (or the runs folder itself, when it is one)."""
    runs_dir = Path(runs_dir)
    if is_sweep_folder(runs_dir):
        found = [runs_dir]
    else:
        found = sorted(p for p in runs_dir.iterdir() if p.is_dir() and is_sweep_folder(p)) if runs_dir.is_dir() else []
    return [f for f in found if study is None or f.name == study]


def build_sweep_report(folder: Path, study_index: Path | None = None) -> Path | None:
    """The sweep report of ``folder`` (linked to and from ``study_index`` when given); its index.html, or
    None when no trial completed."""
    files = sweep_report(folder.parent, folder.name, study_report=study_index)
    index = files.get("index")
    if index is not None and study_index is not None and study_index.exists():
        add_link(study_index, index, f"Sweep report of {folder.name}")
    return index


def report_warnings(index: Path) -> list[str]:
    """The warnings a sweep report wrote beside its index.html (few trials behind the importances)."""
    import json

    try:
        return list(json.loads((Path(index).parent / "index.json").read_text(encoding="utf-8")).get("warnings") or [])
    except (OSError, ValueError, AttributeError):
        return []


def add_link(page: Path, target: Path, text: str) -> None:
    """Put (or refresh) one link paragraph under the page's first heading."""
    href = os.path.relpath(target, page.parent)
    link = f'<p class="{LINK_CLASS}"><a href="{html.escape(href)}">{html.escape(text)}</a></p>'
    body = page.read_text(encoding="utf-8")
    pattern = re.compile(rf'<p class="{LINK_CLASS}">.*?</p>', re.DOTALL)
    if pattern.search(body):
        body = pattern.sub(lambda _m: link, body, count=1)
    elif "</h1>" in body:
        body = body.replace("</h1>", "</h1>\n" + link, 1)
    else:
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + link, body, count=1)
    atomic_write_text(page, body)
