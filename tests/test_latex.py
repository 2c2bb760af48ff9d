"""The report's LaTeX compiles with pdflatex in a minimal document, and the main table fits the page.

pdflatex comes from Debian's TeX Live (scripts/install_texlive.sh installs it when missing, as the
Chromium test does its browser); the test is skipped only when it cannot be installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reports import build_report
from tests import report_fixtures as fx

INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_texlive.sh"
DOCUMENT = r"""\documentclass{article}
\usepackage{booktabs}
\begin{document}
\input{table.tex}
\clearpage
\input{table_full.tex}
\end{document}
"""


def _pdflatex_or_skip() -> str:
    found = shutil.which("pdflatex")
    if found:
        return found
    done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900, check=False)
    found = shutil.which("pdflatex")
    if done.returncode != 0 or not found:
        pytest.skip(f"pdflatex could not be installed: {(done.stderr or done.stdout).strip()[-300:]}")
    return found


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """The ablation with reference rows, rows named with the paper's marks (†), and its tables."""
    runs = tmp_path_factory.mktemp("runs")
    study = fx.write_ablation(runs, samples=False, references=True)
    manifest = json.loads((study / "study.json").read_text())
    grid = manifest["config"]["grid"]
    grid[0]["variant"]["dmd"]["label"] = "Self Forcing†"  # a dagger in a row name, as the paper studies have
    grid[1]["variant"]["causal_init"] = {"label": "Causal init"}
    grid[1]["variant"]["teacher"] = {"label": "Teacher"}
    (study / "study.json").write_text(json.dumps(manifest))
    build_report(runs, figures=False)
    return runs / "report"


def _compile(folder: Path) -> str:
    pdflatex = _pdflatex_or_skip()
    (folder / "doc.tex").write_text(DOCUMENT)
    for _ in range(2):  # the second pass resolves the main table's reference to the full one
        done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=folder,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout[-2000:]
    return (folder / "doc.log").read_text(errors="replace")


def test_tables_compile_without_overfull_boxes(report_dir, tmp_path):
    for name in ("table.tex", "table_full.tex"):
        shutil.copy(report_dir / name, tmp_path / name)
    log = _compile(tmp_path)
    assert "Overfull \\hbox" not in log, [line for line in log.splitlines() if "Overfull" in line]
    assert "Float too large" not in log
    assert "undefined" not in log.lower().replace("undefined on input line", "")
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def test_the_main_table_is_the_papers_columns_with_caption_and_label(report_dir):
    latex = (report_dir / "table.tex").read_text()
    assert latex.splitlines()[0] == ("% Needs \\usepackage{booktabs} in the preamble (\\toprule, \\midrule, "
                                     "\\cmidrule, \\bottomrule); nothing else.")
    assert latex.count(r"\begin{table}") == 1 and r"\label{tab:ablation_asd}" in latex
    assert "Method & Steps & NFE & $n$ & Total & Quality & Semantic" in latex
    rows = {line.split(" & ")[0] for line in latex.splitlines() if line.count(" & ") == 6}
    assert {"Self Forcing$^\\dagger$", "ASD", "Causal init", "Teacher", "Real data"} <= rows
    caption = next(line for line in latex.splitlines() if line.startswith(r"\caption{"))
    assert r"$^\dagger$ = retrained for that step count (the paper's notation)." in caption
    assert r"$^\ddagger$ = fewer seeds than n" in caption
    assert "Scores: sprites-bench (harness " in caption and "not VBench scores" in caption
    # teacher rows: NFE counts both CFG branches, printed as integers
    assert "Teacher & 50 & 100 & 3 & " in latex


def test_the_full_table_states_a_shared_column_once(report_dir):
    full = (report_dir / "table_full.tex").read_text()
    # every row's diversity of the real reference set is the same number: a caption sentence, not a column
    assert "Reference diversity: 0.554 in every row that reports it (not repeated as a column)." in full
    assert not any("Reference" in line for line in full.splitlines() if line.startswith("Method & "))
    assert r"\label{tab:ablation_asd-full}" in full and r"Semantic (\%)" in full
    assert "Diversity" in full and "FD" in full
