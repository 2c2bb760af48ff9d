"""The ASD diagnostics figure's data: D's logged numbers per n, and the quality gap from the eval hook."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from reports.asd_figures import asd_diagnostics, diagnostic_terms, quality_gaps
from reports.figure_base import FigureInputs


def _curves() -> pd.DataFrame:
    rows = []
    for seed in (0, 1):
        for line, step in enumerate((0, 50)):
            logged = {"critic/heldout_acc_n1": 0.5 + 0.1 * line, "critic/heldout_acc_n2": 0.5,
                      "critic/feat_ratio_n1": 1.0, "critic/feat_null_n1": 0.3, "generator/grad_ratio_n1": 2.0,
                      "critic/heldout_acc_min": 0.5, "critic/flow": 1.0,
                      "eval/updates": 10.0 * line, "eval/ema/1/total": 60.0 + seed, "eval/ema/2/total": 70.0 + seed,
                      "eval/ema/3/total": 69.0}
            rows += [("asd", seed, f"g{seed}", step, line, term, value) for term, value in logged.items()]
    return pd.DataFrame.from_records(rows, columns=["method", "seed", "generator", "step", "line", "term", "value"])


def test_diagnostic_terms_read_quantity_and_n():
    terms = diagnostic_terms(_curves())
    assert set(terms["quantity"]) == {"heldout_acc", "feat_ratio", "feat_null", "grad_ratio"}
    acc = terms[(terms["quantity"] == "heldout_acc") & (terms["n"] == 1)]
    assert sorted(acc["value"]) == pytest.approx([0.5, 0.5, 0.6, 0.6])


def test_quality_gap_is_total_at_n_plus_1_minus_at_n():
    gaps = quality_gaps(_curves())
    assert sorted(set(gaps["n"])) == [1, 2]
    assert set(gaps.loc[gaps["n"] == 1, "value"]) == {10.0}
    assert set(gaps.loc[gaps["n"] == 2, "value"]) == {-1.0, -2.0}


def test_the_figure_is_drawn(tmp_path):
    inputs = FigureInputs(study=SimpleNamespace(name="s"), table=SimpleNamespace(confidence=0.95),
                          curves=_curves(), out_dir=tmp_path)
    figure = asd_diagnostics(inputs)
    assert figure is not None and (tmp_path / figure.file).stat().st_size > 0
    empty = FigureInputs(study=SimpleNamespace(name="s"), table=SimpleNamespace(confidence=0.95),
                         curves=_curves().iloc[0:0], out_dir=tmp_path)
    assert asd_diagnostics(empty) is None
