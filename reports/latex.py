"""The paper's tables as LaTeX ready to ``\\input``: a ``table`` environment with caption and label.

``table.tex`` is the main table (Method, Steps, NFE, n and Total / Quality / Semantic, the columns of
the paper's Tables 1 and 2), sized to fit the text width of an article page; ``table_full.tex`` holds
every printed column, in parts of a few columns, one ``table`` each, so that every part fits a page.
Both need only ``booktabs`` (stated in their first line); the captions name the evaluator, and columns
every row shares are stated once in them (:meth:`ResultTable.shared_columns`).
"""

from __future__ import annotations

import re

from reports.collect import MetricColumn
from reports.tables import ResultTable, group_spans, group_title, legend

PACKAGES = "booktabs"
PACKAGES_NOTE = (f"% Needs \\usepackage{{{PACKAGES}}} in the preamble (\\toprule, \\midrule, \\cmidrule, "
                 "\\bottomrule); nothing else.")
FULL_BLOCK = 4  # metric columns per part of the full table: four fit an article's text width at \footnotesize
SHORT_GROUPS = {"quality": "Quality (%)", "semantic": "Semantic (%)", "other": "Distribution", "speed": "Speed"}

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "†": r"$^\dagger$", "‡": r"$^\ddagger$", "—": "---", "–": "--", "±": r"$\pm$",
                  "·": r"$\cdot$", "×": r"$\times$", "→": r"$\rightarrow$", "≥": r"$\geq$", "≤": r"$\leq$",
                  "α": r"$\alpha$", "σ": r"$\sigma$", "√": r"$\surd$", "−": "--"}


def latex_escape(text: str) -> str:
    """LaTeX for plain text; characters pdflatex cannot typeset by default become their commands."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _cell(text: str) -> str:
    """'70.00 ± 1.24‡' as '70.00{\\scriptsize$\\pm$1.24}$^\\ddagger$': the interval small, so a cell stays narrow."""
    if " ± " not in text:
        return latex_escape(text)
    mean, rest = text.split(" ± ", 1)
    return latex_escape(mean) + r"{\scriptsize$\pm$" + latex_escape(rest) + "}"


def _header(label: str) -> str:
    """A column label on two lines when it is long ('Background' over 'consistency')."""
    words = label.split(" ")
    if len(label) <= 10 or len(words) < 2:
        return latex_escape(label)
    half = max(1, len(words) // 2)
    return r"\shortstack{" + latex_escape(" ".join(words[:half])) + r"\\" + latex_escape(" ".join(words[half:])) + "}"


def _group(table: ResultTable, group: str) -> str:
    """Short group headers (the caption names the evaluator in full); the scores' header names it too."""
    return group_title(table, group) if group == "score" else SHORT_GROUPS[group]


def _label(table: ResultTable, suffix: str = "") -> str:
    key = re.sub(r"[^A-Za-z0-9:_-]", "-", table.study)
    return f"tab:{key}{suffix}"


def _tabular(table: ResultTable, columns: list[MetricColumn], with_cost: bool) -> list[str]:
    """One booktabs tabular: Method, Steps (NFE and n with ``with_cost``), then ``columns``."""
    lead = ["Method", "Steps"] + (["NFE", "$n$"] if with_cost else [])
    out = [r"\begin{tabular}{ll" + "r" * (len(lead) - 2) + "r" * len(columns) + "}", r"\toprule"]
    start, groups, rules = len(lead) + 1, [rf"\multicolumn{{{len(lead)}}}{{c}}{{}}"], []
    for group, width in group_spans(columns):
        groups.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(_group(table, group))}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    out += [" & ".join(groups) + r" \\", " ".join(rules)]
    out.append(" & ".join(lead + [_header(c.label) for c in columns]) + r" \\")
    out.append(r"\midrule")
    best = {c.key: table.best(c) for c in columns}
    for i, row in enumerate(table.rows):
        cells = [latex_escape(row.method), latex_escape(row.steps)]
        if with_cost:
            cells += [latex_escape(row.nfe_text), str(row.n)]
        for column in columns:
            text = _cell(table.cell_text(row, column))
            cells.append(rf"\textbf{{{text}}}" if i in best[column.key] else text)
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return out


def _environment(table: ResultTable, title: str, label: str, size: str, tabular: list[str],
                 full_legend: bool = True) -> list[str]:
    """One ``table`` float; ``title`` is LaTeX already (it may hold a \\ref), the legend is escaped here."""
    caption = f"{title}. {latex_escape(legend(table))}" if full_legend else f"{title}."
    return [r"\begin{table}[t]", r"\centering", size, r"\setlength{\tabcolsep}{3pt}", *tabular,
            rf"\caption{{{caption}}}", rf"\label{{{label}}}", r"\end{table}"]


def _file(table: ResultTable, floats: list[list[str]]) -> str:
    head = [PACKAGES_NOTE, rf"% Study {latex_escape(table.study)}; \input{{}} this file where the table goes."]
    return "\n".join(head + [line for lines in floats for line in lines] + [""])


def to_latex(table: ResultTable) -> str:
    """The main table: Total, Quality and Semantic of every row (the paper's columns), fitting a page."""
    title = (f"{latex_escape(table.study)}: Total, Quality and Semantic (every column: "
             f"Table~\\ref{{{_label(table, '-full')}}})")
    return _file(table, [_environment(table, title, _label(table), r"\small",
                                      _tabular(table, table.main_columns(), True))])


def to_latex_full(table: ResultTable) -> str:
    """Every printed column: the main columns, then parts of :data:`FULL_BLOCK` columns, one float each;
    the first part carries the legend and the label ``tab:<study>-full``, the others ``-full-2``, …"""
    columns = table.shown_columns()
    main = [c for c in table.main_columns() if c in columns]
    rest = [c for c in columns if c not in main]
    parts = [_tabular(table, main, True)] + [_tabular(table, rest[i:i + FULL_BLOCK], False)
                                             for i in range(0, len(rest), FULL_BLOCK)]
    study, first = latex_escape(table.study), _label(table, "-full")
    floats = []
    for i, part in enumerate(parts, 1):
        of = f", part {i} of {len(parts)}" if len(parts) > 1 else ""
        title = f"{study}: every column{of}" + ("" if i == 1 else f" (legend: Table~\\ref{{{first}}})")
        label = first if i == 1 else _label(table, f"-full-{i}")
        floats.append(_environment(table, title, label, r"\footnotesize", part, full_legend=i == 1))
    return _file(table, floats)
