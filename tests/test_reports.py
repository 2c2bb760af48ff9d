"""The reporting layer on synthetic run folders (tests/report_fixtures.py): tables, figures, findings,
bad input, the W&B table, the command, and index.html loaded in headless Chromium."""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from harness.errors import ConfigError
from harness.tracking import Tracker
from reports import build_report, build_reports
from reports.collect import collect_study, load_curves
from reports.latex import to_latex, to_latex_full
from reports.tables import build_table, t_quantile, to_markdown, welch_difference
from tests import report_fixtures as fx

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_chromium.sh"
# no x0_cosine.png: Fig. 4 is drawn from 4-step runs, which this fixture has none of (see the test below)
FIGURES = ("dimensions.png", "frontier.png", "qualitative.png", "training_curves.png",
           "learning_total_updates.png", "learning_total_seconds.png", "learning_semantic.png", "dmd_diagnostics.png")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The ablation fixture and its report, built once for the module."""
    runs = tmp_path_factory.mktemp("runs")
    fx.write_ablation(runs)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HARNESS_CACHE_DIR", raising=False)
        result = build_reports(runs)
    return runs, result


def _row(table, method: str, steps: str):
    return next(r for r in table.rows if (r.method, r.steps) == (method, steps))


# -- statistics -----------------------------------------------------------------------------------
@pytest.mark.parametrize("df, expected", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281),
                                          (30, 2.0423)])
def test_t_quantile_matches_the_published_table(df, expected):
    assert t_quantile(df) == pytest.approx(expected, abs=5e-5)


def test_welch_difference_of_two_equal_spread_samples():
    diff = welch_difference([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    # equal variances 1, n 3 each: se = sqrt(2/3), Welch df = 4
    assert diff.mean == pytest.approx(1.0)
    assert diff.half_width == pytest.approx(2.776445 * math.sqrt(2 / 3), rel=1e-5)
    assert welch_difference([1.0], []) is None


# -- tables ---------------------------------------------------------------------------------------
def test_table_rows_follow_the_study_order_with_seeds_counted(built):
    runs, _ = built
    table = build_table(collect_study(runs / fx.STUDY))
    assert [(r.method, r.steps, r.nfe_text, r.n) for r in table.rows] == [
        ("DMD", "1", "4", 3), ("DMD", "2", "6", 3), ("DMD", "1*", "7", 3),
        ("ASD", "1", "4", 3), ("ASD", "2", "6", 2), ("ASD", "1*", "7", 3), ("Real data", "—", "—", 1)]
    keys = [c.key for c in table.columns]
    assert keys[:3] == ["total", "quality", "semantic"]
    assert set(fx.QUALITY_DIMS + fx.SEMANTIC_DIMS) <= set(keys)
    assert keys.index("imaging_quality") < keys.index("object_class") < keys.index("fd")
    total = _row(table, "DMD", "1").cells["total"]
    assert total.mean == pytest.approx(70.0)
    assert total.half_width == pytest.approx(4.302653 * 0.5 / math.sqrt(3), rel=1e-5)


def test_markdown_and_latex_mark_best_partial_and_missing(built):
    runs, _ = built
    table = build_table(collect_study(runs / fx.STUDY))
    markdown = to_markdown(table).splitlines()
    assert markdown[0].startswith("| Method | Steps | NFE | n | Total | Quality | Semantic | Subject consistency")
    asd2 = next(line for line in markdown if line.startswith("| ASD | 2 | 6 | 2 |"))
    assert "**78.75 ± 3.18**" in asd2  # best Total: mean of seeds 0 and 1 (seed 2 failed)
    dmd_ffe = next(line for line in markdown if line.startswith("| DMD | 1* | 7 | 3 |"))
    color = dmd_ffe.split(" | ")[4 + [c.key for c in table.shown_columns()].index("color")]
    assert color.endswith("‡") and "†" not in color  # seed 1 lacks 'color'; † is the paper's "retrained"
    assert "‡ = fewer seeds than n" in markdown[-1]
    assert "Scores: sprites-bench (harness 0.1.0). sprites-bench:" in markdown[-1]
    assert "not VBench scores" in markdown[-1]
    real = next(line for line in markdown if line.startswith("| Real data |"))
    assert "97.00" in real and "**97.00" not in real  # reference rows are never bold
    assert real.rstrip(" |").endswith("—")  # no latency for real data


def test_latex_tables_are_floats_ready_to_input(built):
    runs, _ = built
    table = build_table(collect_study(runs / fx.STUDY))
    latex = to_latex(table)
    assert latex.startswith("% Needs \\usepackage{booktabs} in the preamble")
    assert r"\begin{table}[t]" in latex and r"\end{table}" in latex and r"\label{tab:ablation_asd}" in latex
    caption = next(line for line in latex.splitlines() if line.startswith(r"\caption{"))
    assert r"Scores: sprites-bench (harness 0.1.0)" in caption and "not VBench scores" in caption
    assert r"$^\ddagger$ = fewer seeds than n" in caption
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"\textbf{78.75{\scriptsize$\pm$3.18}}" in latex
    assert "Method & Steps & NFE & $n$ & Total & Quality & Semantic \\\\" in latex  # the paper's columns only
    body = latex.split("\\midrule\n")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(body) == 7 and all(line.count("&") == 6 for line in body)
    assert body[0].startswith("DMD & 1 & 4 & 3 & 70.00")  # NFE an integer, not 4.0
    full = to_latex_full(table)
    assert r"\label{tab:ablation_asd-full}" in full and r"Semantic (\%)" in full
    for column in table.shown_columns():
        assert column.label.split(" ")[0] in full, column.label
    assert full.count(r"\begin{table}") == full.count(r"\caption{") > 1  # parts that each fit a page


def test_a_column_equal_in_every_row_has_no_best_value():
    from reports.collect import MetricColumn
    from reports.tables import Estimate, ResultTable, TableRow

    same, varied = MetricColumn("reference_diversity", "Ref", "other"), MetricColumn("total", "Total", "score")
    rows = [TableRow(m, "1", 4.0, 1, False, cells={"reference_diversity": Estimate(19.86, math.nan, 1),
                                                   "total": Estimate(t, math.nan, 1)})
            for m, t in (("dmd", 50.0), ("asd", 52.0))]
    table = ResultTable("s", rows, [same, varied])
    assert table.best(same) == set() and table.best(varied) == {1}


def test_report_files_and_csv_numbers(built):
    runs, result = built
    out = runs / "report"
    assert result.index == out / "index.html"
    for name in ("table.md", "table.tex", "table_full.tex", "table.html", "table.csv", "findings.md", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].startswith("Method,Steps,NFE,n,Total,Total ±,Quality")
    assert csv[1].startswith("DMD,1,4,3,70.0,1.242")  # NFE an integer
    assert csv[-1].startswith("Real data,—,,1,97.0")  # no NFE: empty, not nan
    assert len(csv) == 8


def test_figures_have_the_expected_layout(built):
    runs, _ = built
    with Image.open(runs / "report" / "qualitative.png") as grid:
        # 6 rows with samples (real data has none), frames 16 px upscaled to 64, 2 px padding, 40 px of headers;
        # 2 prompts × 2 seeds blocks of 3 frames with a blank frame between blocks: 15 frames, and the labels
        assert grid.height == 40 + 2 + 6 * (64 + 2)
        assert grid.width > 2 + 15 * (64 + 2)
    study = collect_study(runs / fx.STUDY)
    curves = load_curves(study)
    losses = curves[curves["term"].str.startswith("loss_")]
    assert len(losses) == 3 * 20 * (2 + 4)  # seeds × steps × terms; shared by every schedule, read once
    assert set(losses[losses["method"] == "ASD"]["term"]) == set(fx.LOSS_TERMS["ASD"])


def test_cosine_matrices_per_frame_follow_the_schedule(built):
    from reports.figure_base import FigureInputs
    from reports.sample_figures import row_cosine

    runs, _ = built
    study = collect_study(runs / fx.STUDY)
    table = build_table(study)
    inputs = FigureInputs(study, table, load_curves(study), runs / "unused")
    ffe = row_cosine(inputs, _row(table, "ASD", "1*"))
    assert sorted(ffe) == [0, 1, 2, 3]
    assert ffe[0].shape == (4, 4) and ffe[2].shape == (1, 1)  # first chunk: 4-step list; later: 1 step
    assert ffe[0].diagonal() == pytest.approx([1.0] * 4)


def test_findings_are_computed_from_the_numbers(built):
    _, result = built
    sentences = result.studies[0].findings
    assert sentences[0] == "The tables rest on 18 complete runs of 19 (18 complete, 1 failed)."
    half = 4.302653 * 0.5 / math.sqrt(3)  # rows pair by seed: differences 6 + (0, −0.5, 0.5), t on 2 df
    assert (f"At 1 step, ASD scores 6.00 Total points above DMD (paired by seed: 95% CI of the mean per-seed "
            f"difference [{6 - half:.2f}, {6 + half:.2f}], which excludes 0; n = 3 paired seeds).") in sentences
    assert any(s.startswith("For ASD, first-frame enhancement (1* steps) scores 2.00 Total points above plain 1")
               and s.endswith("for 3 more NFE.") for s in sentences)
    assert any(s.startswith("The highest Total is ASD at 2 steps (NFE 6): 78.75 ± ") for s in sentences)


def test_index_bundles_everything_offline(built):
    runs, _ = built
    page = (runs / "report" / "index.html").read_text()
    for name in FIGURES:
        assert f'src="{name}"' in page
    assert not re.search(r"(https?:)?//[a-z]", page.replace("<!DOCTYPE html>", ""))
    assert str(runs) not in page and str(runs.resolve()) not in page
    assert "ablation_asd.yaml" in page and "git_commit" in page  # resolved config and provenance
    assert "TrainingDiverged: loss_adv is nan at step 12" in page


def _as_four_steps(study: Path, steps: str) -> None:
    """Relabel the runs sampled with ``steps`` as 4-step runs (their result's schedule says so)."""
    for run in study.iterdir():
        result = run / "result.json"
        if result.exists():
            data = json.loads(result.read_text())
            if data["metrics"].get("schedule") == steps:
                data["metrics"]["schedule"] = "4"
                result.write_text(json.dumps(data))


def test_fig4_is_drawn_from_each_models_four_step_run(tmp_path):
    from reports.figure_base import FigureInputs
    from reports.sample_figures import cosine_figure

    study = fx.write_ablation(tmp_path)
    _as_four_steps(study, "2")
    data = collect_study(study)
    table = build_table(data)
    inputs = FigureInputs(data, table, load_curves(data), tmp_path / "out")
    figure = cosine_figure(inputs)
    assert figure is not None and (tmp_path / "out" / "x0_cosine.png").exists()
    assert "Each model sampled with 4 steps, as in the paper's Fig. 4" in figure.caption
    assert "(all 4 frame indices, from 1)" in figure.caption and "Rows: DMD, ASD." in figure.caption
    assert "Not shown" not in figure.caption  # every traced model has a 4-step run
    with Image.open(tmp_path / "out" / "x0_cosine.png") as image:
        assert image.height > 2 * 150  # two rows of matrices, none dropped


def test_fig4_without_four_step_runs_says_why(built):
    _, result = built
    assert any("no run sampled with 4 steps has samples/x0_cosine.json" in p for p in result.studies[0].problems)


def test_frontier_labels_do_not_overlap():
    import matplotlib.pyplot as plt

    from reports.comparison_figures import place_labels

    fig, ax = plt.subplots(figsize=(4, 3))
    points = [(4.0, 70.0)] * 4 + [(4.0, 70.2), (6.0, 70.0), (6.0, 70.1)]  # several points on one spot
    ax.plot(*zip(*points), "o")
    labels = place_labels(ax, points, ["1", "1*", "2", "2*", "1", "2", "2*"], ["C0"] * 7)
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    plt.close(fig)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_dimension_figure_shows_differences_from_the_baseline_row(built):
    from reports.comparison_figures import baseline_pairs

    runs, _ = built
    table = build_table(collect_study(runs / fx.STUDY))
    assert [(a.label, b.label) for a, b in baseline_pairs(table)] == [
        ("ASD · 1", "DMD · 1"), ("ASD · 2", "DMD · 2"), ("ASD · 1*", "DMD · 1*")]
    page = (runs / "report" / "index.html").read_text()
    assert "Per-dimension differences from DMD" in page
    assert "each row minus DMD at the same steps" in page


def test_every_score_figure_and_table_names_the_evaluator(built):
    runs, _ = built
    assert (runs / "report" / "findings.md").read_text().startswith("Scores: sprites-bench (harness 0.1.0).")
    page = (runs / "report" / "index.html").read_text()
    assert '<p class="evaluator">Scores: sprites-bench (harness 0.1.0).' in page
    captions = re.findall(r"<h3>([^<]*)</h3><img src=\"([^\"]+)\"[^>]*><figcaption>([^<]*)</figcaption>", page)
    scored = [(title, caption) for title, src, caption in captions
              if src.startswith(("dimensions", "frontier", "learning_"))]
    assert len(scored) >= 5
    assert all("sprites-bench" in caption and "VBench 0" not in caption for _, caption in scored), scored
    assert "sprites-bench scores" in page  # the table's group header


def test_the_gallery_shows_rows_by_prompts_with_a_clip_per_seed(built):
    runs, _ = built
    page = (runs / "report" / "index.html").read_text()
    gallery = page.split('<table class="gallery">')[1].split("</table>")[0]
    assert [f"<th>{p}</th>" in gallery for p in fx.PROMPTS] == [True, True]
    assert "columns: all 2 prompts the runs kept samples of; in each cell the model of every seed (3)" in gallery
    assert gallery.count("<video ") == 6 * 2 * 3 - 2  # ASD · 2 seed 2 failed: its place says so, per prompt
    assert gallery.count("no sample</div><figcaption>seed 2</figcaption>") == 2
    clips = re.findall(r'<video src="(videos/[^"]+)"', gallery)
    assert all((runs / "report" / clip).stat().st_size > 0 for clip in clips)
    failed = fx.run_hash(*fx.FAILED)
    assert f'<a href="../{fx.STUDY}/{failed}/">{failed}</a>' in page  # run hashes link to their folders
    first = fx.run_hash("DMD", "1", 0)
    assert f'<a href="../{fx.STUDY}/{first}/" title="run {first}">seed 0</a>' in gallery  # so do the clips' seeds


def test_rows_without_a_sampling_cost_are_a_line_or_a_number_on_the_frontier(built, tmp_path):
    _, result = built
    page = result.studies[0].index.read_text()
    assert "outside the plotted range: Real data 97.00." in page  # students score 70–79, real data 97
    fx.write_ablation(tmp_path, samples=False, references=True)  # the teacher at 84 brings it in range
    wide = build_reports(tmp_path).studies[0].index.read_text()
    assert "Dotted lines: Real data (no sampling cost)." in wide


def test_the_evaluator_is_named_from_the_studys_world():
    from harness.engine.study import load_study
    from reports.evaluator import evaluator_of

    def of(path: str, preset: str | None = None) -> str:
        study = load_study(STUDIES / path, preset)
        return evaluator_of({"config": study.config}).text

    assert of("ablation_asd.yaml").startswith("sprites-bench (harness ")
    assert of("paper/main_table.yaml") == "VBench 0.1.5"
    assert of("paper/main_table.yaml", "tiny").startswith("wan-tiny-bench")  # a stand-in, never called VBench
    assert evaluator_of({}).text == "the world's evaluator"


# -- display names ----------------------------------------------------------------------------------
STUDIES = Path(__file__).resolve().parent.parent / "studies"


def test_the_paper_studies_name_their_rows_as_the_paper_does():
    from harness.engine.study import grid_display_names, load_study

    names = {}
    for path in ("ablation_asd.yaml", "main_table.yaml", "paper/ablation_asd.yaml", "paper/main_table.yaml"):
        names[path] = {level: label for (_, level), label in grid_display_names(load_study(STUDIES / path)
                                                                                  .config["grid"]).items()}
    assert {names["ablation_asd.yaml"][k] for k in ("dmd", "asd", "self_forcing_1step", "self_forcing_2step",
                                                    "teacher", "causal_init")} == {
        "DMD", "+ASD", "Self Forcing†", "Teacher", "Causal init"}
    assert names["paper/ablation_asd.yaml"] == {"dmd": "DMD", "asd": "+ASD", "self_forcing_1step": "Self Forcing†",
                                                "self_forcing_2step": "Self Forcing†"}
    assert names["main_table.yaml"]["self_forcing"] == "Self Forcing"  # the 4-step one is not retrained
    assert names["paper/main_table.yaml"]["self_forcing_1step"] == "Self Forcing†"


def test_a_label_never_enters_a_runs_config_or_hash(tmp_path):
    from harness.engine.study import load_study

    source = (STUDIES / "ablation_asd.yaml").read_text()
    unlabelled = tmp_path / "unlabelled.yaml"
    unlabelled.write_text(source.replace("label: DMD, ", "").replace("label: +ASD, ", ""))
    labelled, plain = load_study(STUDIES / "ablation_asd.yaml"), load_study(unlabelled)
    assert [r.hash for r in labelled.runs] == [r.hash for r in plain.runs]
    assert not any("label" in json.dumps(r.config) for r in labelled.runs)
    dmd = next(r for r in labelled.runs if r.labels["variant"] == "dmd")
    assert dmd.job_type == "dmd"  # the row's variant, not the class (ASD) it runs


def test_an_empty_label_is_a_clear_error(tmp_path):
    from harness.engine.study import load_study

    bad = tmp_path / "bad.yaml"
    bad.write_text((STUDIES / "ablation_asd.yaml").read_text().replace("label: DMD,", "label: '',"))
    with pytest.raises(ConfigError, match=r"grid\[2\]\.variant\.dmd.*'label' or method 'display_name' must be a "
                                          r"non-empty string, got ''"):
        load_study(bad)


def test_a_method_display_name_labels_a_level(tmp_path):
    from harness.engine.study import grid_display_names, split_display

    label, rest = split_display({"method": {"class_path": "methods.asd.ASD", "display_name": "DMD",
                                            "init_args": {"alpha": 0.0}}})
    assert label == "DMD" and rest == {"method": {"class_path": "methods.asd.ASD", "init_args": {"alpha": 0.0}}}
    assert split_display({"label": "Ours", "method": {"display_name": "x"}})[0] == "Ours"  # the level's label wins
    assert grid_display_names([{"variant": {"a": {"label": "A"}, "b": {}}, "steps": {"1": None}}]) == {
        ("variant", "a"): "A"}


def _relabel(study: Path, dmd: str, asd: str) -> None:
    manifest = json.loads((study / "study.json").read_text())
    manifest["config"]["grid"][0]["variant"]["dmd"]["label"] = dmd
    manifest["config"]["grid"][0]["variant"]["asd"]["label"] = asd
    (study / "study.json").write_text(json.dumps(manifest))


def test_variants_sharing_a_label_keep_their_rows_and_curves_apart(tmp_path):
    study = fx.write_ablation(tmp_path, samples=False)
    for method, keep in (("DMD", "1"), ("ASD", "2")):  # as Self Forcing† retrained at 1 and at 2 steps
        for schedule in fx.SCHEDULES:
            for seed in fx.SEEDS:
                if schedule != keep:
                    shutil.rmtree(study / fx.run_hash(method, schedule, seed))
    _relabel(study, "SF†", "SF†")
    data = collect_study(study)
    assert [(r.method, r.steps) for r in build_table(data).rows] == [("SF†", "1"), ("SF†", "2"), ("Real data", "—")]
    assert list(dict.fromkeys(load_curves(data)["method"])) == ["SF† · 1", "SF† · 2"]


def test_variants_sharing_a_label_at_one_step_count_are_told_apart(tmp_path):
    study = fx.write_ablation(tmp_path, samples=False)
    _relabel(study, "Same", "Same")
    table = build_table(collect_study(study))
    assert [r.label for r in table.rows[:4]] == ["Same (dmd) · 1", "Same (dmd) · 2", "Same (dmd) · 1*",
                                                 "Same (asd) · 1"]


def test_the_dmd_row_is_not_called_asd_in_results():
    from methods.asd import ASD

    assert ASD(alpha=0.0).display_name == "dmd" and ASD(alpha=0.0).name == "asd"  # the stage cache keeps name
    assert ASD(alpha=10.0).display_name == "asd"


# -- bad input ------------------------------------------------------------------------------------
def test_problems_are_reported_and_the_report_still_builds(built):
    _, result = built
    problems = result.studies[0].problems
    assert any("ASD 2 seed 2): failed: TrainingDiverged" in p for p in problems)
    assert any("DMD 1* seed 1): result.json has no 'color'" in p for p in problems)
    assert not any("Real data" in p for p in problems)  # a reference row has no latency, rightly


def test_no_complete_runs(tmp_path):
    study = fx.write_ablation(tmp_path, samples=False)
    for run in study.iterdir():
        if (run / "status.json").exists():
            (run / "status.json").write_text(json.dumps({"state": "failed", "reason": "killed"}))
    result = build_reports(tmp_path)
    report = result.studies[0]
    assert report.problems[0] == "ablation_asd: no complete runs yet (19 run folders); the tables are empty"
    assert report.findings == ["The tables rest on 0 complete runs of 19 (19 failed)."]
    assert (tmp_path / "report" / "index.html").exists()
    markdown = (tmp_path / "report" / "table.md").read_text()
    assert [line for line in markdown.splitlines() if line.startswith("|")] == ["| Method | Steps | NFE | n |",
                                                                                 "|:--|:-:|--:|--:|"]
    assert "No complete runs: nothing to tabulate yet." in markdown


def test_runs_of_another_study_are_left_out(tmp_path):
    study = fx.write_ablation(tmp_path, samples=False)
    stray = next(p for p in sorted(study.iterdir()) if (p / "config.yaml").exists())
    config = yaml.safe_load((stray / "config.yaml").read_text())
    (stray / "config.yaml").write_text(yaml.safe_dump({**config, "study": "main_table"}))
    study_data = collect_study(study)
    assert any(f"{stray.name}" in p and "names study 'main_table', not 'ablation_asd'" in p
               for p in study_data.problems)
    assert len(study_data.runs) == 18 and stray.name not in set(study_data.runs["hash"])


def test_labels_beyond_variant_and_steps_keep_rows_apart(tmp_path):
    study = fx.write_ablation(tmp_path, samples=False)
    tuned = study / fx.run_hash("DMD", "1", 0)
    config = yaml.safe_load((tuned / "config.yaml").read_text())
    config["labels"]["lr"] = "high"
    (tuned / "config.yaml").write_text(yaml.safe_dump(config))
    table = build_table(collect_study(study))
    assert [(r.method, r.steps, r.n) for r in table.rows[:2]] == [("DMD/high", "1", 1), ("DMD", "1", 2)]


def test_several_studies_get_one_folder_each_and_a_landing_page(tmp_path):
    fx.write_ablation(tmp_path, samples=False)
    other = tmp_path / "main_table"
    shutil.copytree(tmp_path / fx.STUDY, other)
    manifest = json.loads((other / "study.json").read_text())
    (other / "study.json").write_text(json.dumps({**manifest, "study": "main_table"}))
    for run in other.iterdir():
        if (run / "config.yaml").exists():
            config = yaml.safe_load((run / "config.yaml").read_text())
            (run / "config.yaml").write_text(yaml.safe_dump({**config, "study": "main_table"}))
    index = build_report(tmp_path, figures=False)
    assert index == tmp_path / "report" / "index.html"
    landing = index.read_text()
    assert 'href="ablation_asd/index.html"' in landing and 'href="main_table/index.html"' in landing
    assert (tmp_path / "report" / "main_table" / "table.md").exists()
    assert build_report(tmp_path, "main_table", figures=False) == tmp_path / "report" / "main_table" / "index.html"


def test_unknown_study_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="no study folder here"):
        build_report(tmp_path)
    fx.write_ablation(tmp_path, samples=False)
    with pytest.raises(ConfigError, match=r"no study 'nope' \(studies here: ablation_asd\)"):
        build_report(tmp_path, "nope")


# -- tracker and command --------------------------------------------------------------------------
class TableRecorder(Tracker):
    def __init__(self):
        self.calls = []

    def start(self, run):
        self.calls.append(("start", run.id, run.group, run.job_type))

    def log_table(self, key, dataframe):
        self.calls.append(("table", key, dataframe))

    def finish(self, status):
        self.calls.append(("finish", status))


def test_main_table_is_logged_to_the_tracker(tmp_path):
    fx.write_ablation(tmp_path, samples=False)
    recorder = TableRecorder()
    build_report(tmp_path, tracker=recorder, figures=False)
    assert recorder.calls[0] == ("start", "report-ablation_asd", "ablation_asd", "report")
    _, key, frame = recorder.calls[1]
    assert key == "main_table" and recorder.calls[2] == ("finish", "complete")
    assert list(frame["Method"]) == ["DMD", "DMD", "DMD", "ASD", "ASD", "ASD", "Real data"]
    assert frame.loc[0, "Total"] == pytest.approx(70.0) and "Total ±" in frame.columns


def test_study_with_wandb_tracking_gets_the_table_in_its_offline_run(tmp_path):
    study = fx.write_ablation(tmp_path, samples=False)
    manifest = json.loads((study / "study.json").read_text())
    manifest["config"]["tracker"] = {"class_path": "harness.tracking.WandbTracker", "init_args": {"mode": "offline"}}
    (study / "study.json").write_text(json.dumps(manifest))
    report = build_reports(tmp_path, figures=False).studies[0]
    assert not any("tracker" in p for p in report.problems)
    (table_file,) = (study / "wandb").glob("offline-run-*-report-ablation_asd/files/media/table/main_table_*.json")
    logged = json.loads(table_file.read_text())
    assert logged["columns"][:5] == ["Method", "Steps", "NFE", "n", "Total"]
    assert [row[:2] for row in logged["data"]] == [["DMD", "1"], ["DMD", "2"], ["DMD", "1*"], ["ASD", "1"],
                                                   ["ASD", "2"], ["ASD", "1*"], ["Real data", "—"]]
    assert logged["data"][0][4] == pytest.approx(70.0)


def test_a_tracker_outside_the_allowlist_is_a_problem_not_a_crash(tmp_path):
    study = fx.write_ablation(tmp_path, samples=False)
    manifest = json.loads((study / "study.json").read_text())
    manifest["config"]["tracker"] = {"class_path": "os.system", "init_args": {}}
    (study / "study.json").write_text(json.dumps(manifest))
    report = build_reports(tmp_path, figures=False).studies[0]
    assert any("'os.system' is not allowed" in p and "not sent to the tracker" in p for p in report.problems)


def test_report_command_prints_the_index_and_warnings(built, capsys, monkeypatch):
    from harness.commands.report import report

    monkeypatch.setattr("reports.figures.FIGURE_BUILDERS", ())  # figures are checked above; keep this fast
    runs, _ = built
    assert report(runs / fx.STUDY) == 0  # a study folder works as RUNS_DIR too
    out, err = capsys.readouterr()
    assert "study ablation_asd: 18 of 19 runs complete; scores: sprites-bench (harness 0.1.0)" in out
    assert out.strip().endswith(str(runs / fx.STUDY / "report" / "index.html"))
    assert "warning: ablation_asd/" in err and "failed: TrainingDiverged" in err


# -- headless Chromium ----------------------------------------------------------------------------
class DevToolsPipe:
    """The Chrome DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, profile: Path):
        commands_r, self._commands_w = os.pipe()
        self._replies_r, replies_w = os.pipe()
        # Copies above the low numbers (close-on-exec), so that wiring fds 3 and 4 cannot clobber them.
        child_in = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 100)
        child_out = fcntl.fcntl(replies_w, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(commands_r)
        os.close(replies_w)

        def wire_pipes():  # runs in the child: the browser reads fd 3 and writes fd 4
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
             f"--user-data-dir={profile}", "--remote-debugging-pipe"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=wire_pipes)  # noqa: PLW1509 - no threads are started here
        os.close(child_in)
        os.close(child_out)
        self._buffer, self._next_id, self.events = b"", 0, []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._replies_r, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = next((e for e in self.events if e.get("method") == event), None)
            if found:
                return found
            self.events.append(self._read_message(deadline))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError, EOFError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._commands_w)
        os.close(self._replies_r)


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.skip(f"chromium could not be installed: {(done.stderr or done.stdout).strip()[-300:]}")


def console_errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            errors.append(params.get("exceptionDetails", {}).get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(params["entry"].get("text", ""))
    return errors


# Each <video>: wait until it has data (or fails), play it, and say how far it got. Muted videos may play
# without a user gesture, so this is what a reader's click does.
PLAY_VIDEOS = """(async () => {
  const out = [];
  for (const v of Array.from(document.querySelectorAll('video'))) {
    if (v.readyState < 2 && !v.error) {
      await new Promise(done => { v.addEventListener('loadeddata', done, {once: true});
                                  v.addEventListener('error', done, {once: true}); setTimeout(done, 5000); });
    }
    let played = 'no';
    try {
      await v.play();
      for (let i = 0; i < 50 && v.currentTime === 0; i++) await new Promise(done => setTimeout(done, 100));
      played = v.currentTime > 0 ? 'yes' : 'stuck';
    }
    catch (e) { played = String(e); }
    out.push([v.getAttribute('src'), v.readyState, v.videoWidth, v.duration, played, v.error ? v.error.code : null]);
  }
  return JSON.stringify(out);
})()"""


def open_in_chromium(page: Path, profile: Path) -> tuple[list, list, list[str]]:
    """(images, videos, console errors) of ``page`` in headless Chromium: every image's [src, complete,
    naturalWidth] and every video's [src, readyState, videoWidth, duration, played, error code]."""
    browser = DevToolsPipe(profile)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            browser.call(domain, session=session)
        browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        script = ("JSON.stringify(Array.from(document.images).map(i => "
                  "[i.getAttribute('src'), i.complete, i.naturalWidth]))")
        images = json.loads(browser.call("Runtime.evaluate", {"expression": script, "returnByValue": True},
                                         session=session)["result"]["value"])
        videos = json.loads(browser.call("Runtime.evaluate", {"expression": PLAY_VIDEOS, "returnByValue": True,
                                                              "awaitPromise": True}, session=session,
                                         timeout=120)["result"]["value"])
        time.sleep(0.2)  # let late console events arrive
        browser.call("Runtime.evaluate", {"expression": "1"}, session=session)
    finally:
        browser.close()
    return images, videos, console_errors(browser.events)


def test_index_loads_in_headless_chromium_with_every_image_and_video(built, tmp_path):
    _chromium_or_skip()
    runs, _ = built
    moved = tmp_path / "moved"  # the report folder alone, elsewhere: its images and videos still load
    shutil.copytree(runs / "report", moved)
    images, videos, errors = open_in_chromium(moved / "index.html", tmp_path / "profile")
    assert sorted(src for src, _, _ in images) == sorted(p.name for p in moved.glob("*.png"))
    assert set(FIGURES) <= {src for src, _, _ in images}
    assert all(complete and width > 0 for _, complete, width in images), images
    # 6 distilled rows × 2 prompts × 3 seeds, less the failed run (ASD 2 seed 2): one video per (row, prompt, seed)
    assert len(videos) == 6 * 2 * 3 - 2, videos
    assert all(src.startswith("videos/") for src, *_ in videos)
    assert all(ready >= 2 and width == fx.SIZE and duration > 0 and played == "yes" and error is None
               for _, ready, width, duration, played, error in videos), videos
    assert errors == []
