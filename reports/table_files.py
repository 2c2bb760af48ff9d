"""The result table written out: Markdown, LaTeX (the paper's columns and every column), HTML and CSV."""

from __future__ import annotations

from pathlib import Path

from reports.latex import to_latex, to_latex_full
from reports.tables import ResultTable, to_frame, to_html, to_markdown


def write_tables(table: ResultTable, out_dir: Path) -> dict[str, Path]:
    """``table.md``, ``table.tex`` (the paper's columns), ``table_full.tex`` (every column), ``table.html``
    and ``table.csv`` (numbers as shown) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "table.md", "latex": out_dir / "table.tex",
             "latex (every column)": out_dir / "table_full.tex", "html": out_dir / "table.html",
             "csv": out_dir / "table.csv"}
    paths["markdown"].write_text(to_markdown(table), encoding="utf-8")
    paths["latex"].write_text(to_latex(table), encoding="utf-8")
    paths["latex (every column)"].write_text(to_latex_full(table), encoding="utf-8")
    paths["html"].write_text(to_html(table), encoding="utf-8")
    to_frame(table).to_csv(paths["csv"], index=False)
    return paths
