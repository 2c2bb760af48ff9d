"""Paired statistics, the minimum detectable difference, learning curves and convergence verdicts of the
report (issue 18's reporting side), on synthetic rows and on tests/report_fixtures.py's run folders."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports import build_reports
from reports.collect import collect_study, load_curves
from reports.findings import (
    describe_comparison,
    findings,
    minimum_detectable,
    pooled_sd,
    steps_ladder,
)
from reports.learning import (
    CONVERGED,
    NOT_CONVERGED,
    UNKNOWN,
    convergence,
    convergence_sentences,
    eval_points,
    plotted_terms,
)
from reports.tables import (
    PAIRED,
    WELCH,
    ResultTable,
    TableRow,
    build_table,
    compare_rows,
    estimate,
    minimum_detectable_difference,
    paired_difference,
    t_one_sided,
    t_quantile,
    welch_difference,
)
from tests import report_fixtures as fx

T975_2 = 4.302653  # t_{0.975, 2}
T80_2 = 1.060660  # t_{0.80, 2} = (2p − 1)/√(2p(1 − p)) at p = 0.8 (df 2 has a closed form)


def _row(method: str, steps: str, by_seed: dict[int, float], kind: str | None = None, nfe: float = 4.0) -> TableRow:
    values = list(by_seed.values())
    return TableRow(method, steps, nfe, len(values), False, values={"total": values},
                    cells={"total": estimate(values)}, by_seed={"total": dict(by_seed)}, kind=kind)


def _table(rows: list[TableRow]) -> ResultTable:
    from reports.collect import MetricColumn

    return ResultTable("s", rows, [MetricColumn("total", "Total", "score")])


@pytest.fixture(scope="module")
def paired_study(tmp_path_factory):
    """The ablation with the causal init and the teacher at the same seeds, and its report."""
    runs = tmp_path_factory.mktemp("paired")
    fx.write_ablation(runs, samples=False, references=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HARNESS_CACHE_DIR", raising=False)
        result = build_reports(runs)
    return runs, result.studies[0]


# -- the statistics ---------------------------------------------------------------------------------
def test_paired_difference_is_the_t_interval_of_the_per_seed_differences():
    diff = paired_difference([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])  # differences 1, 2, 3
    assert diff.mean == pytest.approx(2.0)
    assert diff.half_width == pytest.approx(T975_2 * 1.0 / math.sqrt(3), rel=1e-6)
    assert diff.half_width == pytest.approx(2.484, abs=5e-4)
    assert diff.n == 3
    assert math.isnan(paired_difference([1.0], [0.0]).half_width)  # one pair: no interval
    with pytest.raises(ValueError, match="aligned"):
        paired_difference([1.0, 2.0], [1.0])


def test_rows_sharing_seeds_are_compared_by_seed():
    a = _row("asd", "1", {0: 11.0, 1: 12.0, 2: 13.0})
    b = _row("dmd", "1", {2: 10.0, 0: 10.0, 1: 10.0})  # another order: pairs by seed, not by position
    c = compare_rows(a, b, "total")
    assert c.form == PAIRED and c.n_a == c.n_b == 3
    assert sorted(c.differences) == [1.0, 2.0, 3.0]
    assert (c.estimate.low, c.estimate.high) == pytest.approx((2 - 2.48414, 2 + 2.48414), abs=1e-4)
    text = describe_comparison(c, "Total points", "dmd")
    assert text == ("2.00 Total points above dmd (paired by seed: 95% CI of the mean per-seed difference "
                    "[-0.48, 4.48], which includes 0, so the seeds do not separate them; n = 3 paired seeds)")


def test_pairing_uses_the_shared_seeds_only():
    a = _row("asd", "2", {0: 10.0, 1: 12.0})  # seed 2 failed
    b = _row("dmd", "2", {0: 9.0, 1: 9.5, 2: 30.0})
    c = compare_rows(a, b, "total")
    assert c.form == PAIRED and c.n_a == 2 and c.differences == (1.0, 2.5)


def test_rows_without_shared_seeds_fall_back_to_welch_and_say_so():
    a = _row("asd", "1", {0: 1.0, 1: 2.0, 2: 3.0})
    b = _row("teacher", "4", {3: 0.0, 4: 1.0, 5: 2.0})
    c = compare_rows(a, b, "total")
    welch = welch_difference([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert c.form == WELCH and (c.n_a, c.n_b) == (3, 3) and c.differences == ()
    assert (c.estimate.mean, c.estimate.half_width) == pytest.approx((welch.mean, welch.half_width))
    text = describe_comparison(c, "Total points", "teacher")
    assert text.startswith("1.00 Total points above teacher (unpaired, Welch: 95% CI of the difference [")
    assert text.endswith("which includes 0, so the seeds do not separate them; n = 3 vs 3 seeds, fewer than 2 shared)")
    one_shared = compare_rows(a, _row("x", "1", {0: 0.0, 7: 1.0}), "total")
    assert one_shared.form == WELCH  # one shared seed is no paired interval


def test_one_sided_quantile_and_minimum_detectable_difference():
    assert t_one_sided(2, 0.8) == pytest.approx(T80_2, abs=5e-5)
    assert t_one_sided(10, 0.8) == pytest.approx(0.8791, abs=5e-5)  # published table
    assert t_one_sided(4, 0.975) == pytest.approx(t_quantile(4), rel=1e-9)
    with pytest.raises(ValueError):
        t_one_sided(3, 0.4)
    assert minimum_detectable_difference(1.0, 3) == pytest.approx((T975_2 + T80_2) / math.sqrt(3), rel=1e-5)
    assert minimum_detectable_difference(2.0, 5) == pytest.approx((2.776445 + 0.940965) * 2.0 / math.sqrt(5),
                                                                  rel=1e-5)
    assert pooled_sd([(1.0, 2.0, 3.0), (5.0, 5.0, 5.0)]) == (pytest.approx(math.sqrt(0.5)), 4)
    assert math.isnan(pooled_sd([(1.0,)])[0])


def test_minimum_detectable_difference_sentence_names_what_it_pooled():
    rows = [_row("dmd", "1", {0: 10.0, 1: 10.0, 2: 10.0}), _row("asd", "1", {0: 11.0, 1: 12.0, 2: 13.0})]
    (sentence,) = minimum_detectable(_table(rows))
    mde = (T975_2 + T80_2) / math.sqrt(3)  # sd of the differences [1, 2, 3] is 1
    assert sentence == (f"Minimum detectable difference (an estimate): with n = 3 seeds paired by seed, a true "
                        f"Total difference of {mde:.2f} points between two rows would be detected with 80% power "
                        "at the 5% level (two-sided): (t_{0.975,2} + t_{0.8,2}) · sd_d / √3, where sd_d = 1.00 "
                        "is the pooled standard deviation of the per-seed differences of the paired comparison "
                        "above (asd · 1 − dmd · 1).")
    unpaired = [_row("dmd", "1", {0: 10.0, 1: 10.0}), _row("asd", "1", {5: 11.0, 6: 12.0})]
    assert minimum_detectable(_table(unpaired))[0].startswith("No two compared rows share at least 2 seeds")


def test_ladder_compares_n_plus_one_with_n_for_each_variant():
    rows = [_row("asd", s, {0: 10.0 + i, 1: 11.0 + 2 * i}, nfe=2.0 * (i + 1))
            for i, s in enumerate(("1", "2", "3", "4", "1*"))]
    sentences = steps_ladder(_table(rows))
    assert [s.split(" score ")[0] for s in sentences] == ["For asd, 2 steps", "For asd, 3 steps", "For asd, 4 steps"]
    assert sentences[0].startswith("For asd, 2 steps score 1.50 Total points above 1 step (paired by seed:")
    assert sentences[0].endswith("n = 2 paired seeds), for 2 more NFE.")


# -- the new findings on run folders ---------------------------------------------------------------
def test_tables_keep_values_by_seed(paired_study):
    runs, _ = paired_study
    table = build_table(collect_study(runs / fx.STUDY))
    asd2 = next(r for r in table.rows if (r.method, r.steps) == ("ASD", "2"))
    assert asd2.by_seed["total"] == {0: pytest.approx(78.5), 1: pytest.approx(79.0)}  # seed 2 failed
    init = next(r for r in table.rows if r.kind == "causal_init")
    assert init.reference and init.method == "causal_init"


def test_students_against_the_causal_init_the_teacher_and_one_step_less(paired_study):
    _, report = paired_study
    sentences = report.findings
    half = T975_2 * 0.5 / math.sqrt(3)
    assert (f"At 1 step, ASD scores 36.00 Total points above the causal init (paired by seed: 95% CI of the mean "
            f"per-seed difference [{36 - half:.2f}, {36 + half:.2f}], which excludes 0; n = 3 paired seeds)."
            in sentences)
    assert sum(s.startswith("At ") and "the causal init" in s for s in sentences) == 6  # 2 students × 3 schedules
    # best 2-step student ASD (seeds 0, 1: 78.5, 79.0) − teacher at 4 steps (70.5, 70.0): differences 8, 9
    half4 = 12.706205 * math.sqrt(0.5) / math.sqrt(2)
    assert ("The best 2-step student, ASD (NFE 6), scores 8.50 Total points above the teacher's own sampler at "
            f"4 steps (teacher, NFE 8) (paired by seed: 95% CI of the mean per-seed difference [{8.5 - half4:.2f}, "
            f"{8.5 + half4:.2f}], which excludes 0; n = 2 paired seeds).") in sentences
    assert sum(s.startswith("The best 2-step student") for s in sentences) == 4  # teacher at 1, 2, 4, 50 steps
    assert any(s.startswith("For DMD, 2 steps score 6.00 Total points above 1 step (paired by seed") for s in sentences)
    assert any(s.startswith("Minimum detectable difference (an estimate): with n = 3 seeds paired by seed")
               and "ASD · 2 − teacher · 4" in s for s in sentences)
    assert not any("the causal init" in s and s.startswith("At 1 step, causal_init") for s in sentences)


# -- learning curves and convergence ---------------------------------------------------------------
def test_learning_curve_figures_are_written(paired_study):
    runs, report = paired_study
    out = runs / "report"
    for name in ("learning_total_updates.png", "learning_total_seconds.png", "learning_semantic.png",
                 "dmd_diagnostics.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text()
    assert 'src="learning_total_updates.png"' in page and "<h2>Convergence</h2>" in page
    assert not any("evaluated its generator while training" in p for p in report.problems)


def test_convergence_verdicts_on_the_fixture_curves(paired_study):
    runs, report = paired_study
    verdicts = {v.method: v for v in convergence(load_curves(collect_study(runs / fx.STUDY)))}
    asd, dmd = verdicts["ASD"], verdicts["DMD"]
    assert asd.state == CONVERGED and dmd.state == NOT_CONVERGED
    assert (dmd.start, dmd.end, dmd.seeds, dmd.points, dmd.model) == (15, 20, 3, 5, "EMA")
    assert dmd.change == pytest.approx(5.0) and dmd.spread == pytest.approx(0.5)
    expected = fx.eval_total("ASD", 20, 0) - fx.eval_total("ASD", 15, 0)
    assert asd.change == pytest.approx(expected) and abs(asd.change) < asd.spread
    assert ("Convergence of DMD: not converged: over the last quarter of training (updates 15 → 20) the mean EMA "
            "Total at 1 step changed by +5.00 (to 70.50), not less than the spread between seeds at the end "
            "(sd 0.50 over 3 seeds); it was still rising.") in report.findings
    assert any(s.startswith("Convergence of ASD: converged:") for s in report.findings)


def _curves(values: dict[int, list[float]], updates: list[int], model: str = "raw") -> pd.DataFrame:
    """A long curves frame of one variant: per seed, one eval row per update with the given totals."""
    records = []
    for seed, totals in values.items():
        for step, (u, total) in enumerate(zip(updates, totals)):
            for term, value in (("eval/updates", u), ("eval/train_seconds", 2.0 * u),
                                (f"eval/{model}/1/total", total), ("generator/n", 2.0)):
                records.append(("v", seed, f"distill-v/{seed}", step, step, term, float(value)))
    return pd.DataFrame.from_records(records, columns=["method", "seed", "generator", "step", "line", "term", "value"])


@pytest.mark.parametrize("values, updates, state", [
    ({0: [10.0, 20.0, 30.0, 30.1], 1: [12.0, 22.0, 32.0, 33.9]}, [0, 10, 30, 40], CONVERGED),  # +1.0, sd 2.62
    ({0: [10.0, 20.0, 30.0, 40.0], 1: [11.0, 21.0, 31.0, 41.0]}, [0, 10, 30, 40], NOT_CONVERGED),  # +10, sd 0.71
    ({0: [10.0, 20.0, 30.0, 40.0]}, [0, 10, 30, 40], UNKNOWN),  # one seed
    ({0: [10.0, 20.0], 1: [11.0, 21.0]}, [0, 40], UNKNOWN),  # two evaluations
])
def test_convergence_verdict_on_synthetic_curves(values, updates, state):
    (verdict,) = convergence(_curves(values, updates))
    assert verdict.state == state
    if state != UNKNOWN:
        assert (verdict.start, verdict.end, verdict.model) == (30, 40, "raw")  # the point at 75% of 40 updates
    assert verdict.sentence().startswith(f"Convergence of v: {state}")


def test_counters_are_never_curves():
    curves = _curves({0: [1.0, 2.0, 3.0]}, [0, 5, 10])
    curves = pd.concat([curves, pd.DataFrame.from_records(
        [("v", 0, "distill-v/0", 1, 1, term, 1.0) for term in ("generator/loss", "generator/exit_step", "eval/raw/1/n",
                                                            "generator/fake_vs_teacher")],
        columns=curves.columns)])
    assert plotted_terms(curves) == ["generator/loss"]
    assert set(eval_points(curves)["metric"]) == {"total"}


def test_training_curves_figure_draws_no_counter(paired_study, monkeypatch, tmp_path):
    from reports import learning
    from reports.figure_base import FigureInputs
    from reports.figures import training_curves

    runs, _ = paired_study
    drawn = []
    original = learning.step_curve
    monkeypatch.setattr(learning, "step_curve", lambda curves, term, *a: drawn.append(term) or original(curves, term))
    study = collect_study(runs / fx.STUDY)
    curves = load_curves(study)
    assert "generator/n" in set(curves["term"]) and "eval/updates" in set(curves["term"])
    training_curves(FigureInputs(study, build_table(study), curves, tmp_path))
    assert drawn and set(drawn) == {"loss_dmd", "loss_critic", "loss_adv", "loss_disc"}


def test_without_eval_rows_there_is_a_note_and_no_learning_figure(tmp_path):
    study_dir = fx.write_ablation(tmp_path, samples=False)
    for log in list(study_dir.glob("*/distill_metrics.jsonl")) + list((tmp_path / ".stages").glob("*/*/metrics.jsonl")):
        rows = [line for line in log.read_text().splitlines() if '"eval/' not in line]
        log.write_text("\n".join(rows) + "\n")
    report = build_reports(tmp_path).studies[0]
    out = tmp_path / "report"
    assert not list(out.glob("learning_*.png")) and (out / "training_curves.png").exists()
    assert any("no distillation evaluated its generator while training" in p for p in report.problems)
    assert report.findings[-1].startswith("No distillation evaluated its generator while training")
    assert "<h2>Convergence</h2>" not in (out / "index.html").read_text()


def test_findings_without_curves_keep_working():
    rows = [_row("dmd", "1", {0: 10.0, 1: 10.0, 2: 10.0}), _row("asd", "1", {0: 11.0, 1: 12.0, 2: 13.0})]

    class Study:  # what run_counts reads
        runs = pd.DataFrame({"state": ["complete"] * 6})

    sentences = findings(Study(), _table(rows))
    assert sentences[0].startswith("The tables rest on 6 complete runs")
    assert convergence_sentences(pd.DataFrame(columns=["term"])) == []
