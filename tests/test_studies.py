"""The paper's studies at `smoke` size, end to end through the CLI: runs, store, report, rerun."""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT, harness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("studies") / "runs"


def complete_results(study_dir):
    return {p.parent.name: p.stat().st_mtime_ns for p in study_dir.glob("*/result.json")}


def test_ablation_smoke_runs_every_method_and_reports(runs):
    proc = harness("run", str(ROOT / "studies" / "ablation_asd.yaml"), "--preset", "smoke", "--runs-dir", str(runs),
                   "--plain", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "study ablation_asd: 24 runs — 24 computed, 0 already complete, 0 failed" in proc.stdout
    report = runs / "report"
    for name in ("index.html", "table.md", "table.tex", "table.html", "findings.md", "qualitative.png",
                 "x0_cosine.png", "training_curves.png", "dimensions.png", "frontier.png"):
        assert (report / name).is_file(), name
    rows = [line for line in (report / "table.md").read_text().splitlines() if line.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header[:7] == ["Method", "Steps", "NFE", "n", "Total", "Quality", "Semantic"]
    assert {"Object class", "Color", "Motion direction", "Temporal flickering"} <= set(header)
    body = [[c.strip() for c in r.strip("|").split("|")][:3] for r in rows[1:]]  # rows[0] is the header
    students = [["1", "4"], ["2", "6"], ["3", "8"], ["4", "10"], ["1*", "7"], ["2*", "8"]]
    # rows carry the study's labels, the paper's names (the variant keys are dmd, asd, self_forcing_1step, ...)
    assert body == ([["Teacher", "1", "2"], ["Teacher", "2", "4"], ["Teacher", "4", "8"], ["Teacher", "50", "100"]]
                    + [[variant, *row] for variant in ("Causal init", "DMD", "+ASD") for row in students]
                    + [["Self Forcing†", "1", "4"], ["Self Forcing†", "2", "6"]])
    assert "\\toprule" in (report / "table.tex").read_text()
    # one distillation per (method config, seed), shared by the four schedules of each variant
    assert len(list((runs / ".stages").glob("distill-asd/*/generator.safetensors"))) == 2
    assert len(list((runs / ".stages").glob("distill-self_forcing/*/generator.safetensors"))) == 2
    sample = next((runs / "ablation_asd").glob("*/samples/sample_000.json"))
    assert {"prompt", "seed", "method", "schedule", "nfe"} <= set(json.loads(sample.read_text()))


def test_ablation_rerun_recomputes_nothing(runs):
    study_dir = runs / "ablation_asd"
    before = complete_results(study_dir)
    stages_before = sorted(p.name for p in (runs / ".stages").rglob("stage.json"))
    proc = harness("run", str(ROOT / "studies" / "ablation_asd.yaml"), "--preset", "smoke", "--runs-dir", str(runs),
                   "--plain", "--no-report", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "0 computed, 24 already complete" in proc.stdout
    assert complete_results(study_dir) == before
    assert sorted(p.name for p in (runs / ".stages").rglob("stage.json")) == stages_before


def test_main_table_smoke_has_the_papers_rows(runs):
    proc = harness("run", str(ROOT / "studies" / "main_table.yaml"), "--preset", "smoke", "--runs-dir", str(runs),
                   "--plain", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (runs / "report" / "main_table" / "table.md").read_text().splitlines()
    rows = [[c.strip() for c in r.strip("|").split("|")][:3] for r in table if r.startswith("| ")][1:]
    assert rows == [["Teacher", "1", "2"], ["Teacher", "2", "4"], ["Teacher", "4", "8"], ["Teacher", "50", "100"],
                    ["Causal init", "4", "10"], ["Causal init", "2", "6"], ["Causal init", "1", "4"],
                    ["Causal init", "2*", "8"], ["Causal init", "1*", "7"],
                    ["Diffusion forcing", "30", "62"], ["CausVid (DMD)", "4", "10"],
                    ["Self Forcing", "4", "10"], ["Self Forcing†", "2", "6"], ["Self Forcing†", "1", "4"],
                    ["Ours (ASD)", "4", "10"], ["Ours (ASD)", "2*", "8"], ["Ours (ASD)", "1*", "7"],
                    ["Real data", "-", "0"]]
    # the teacher and causal init trained for the ablation are reused, not retrained
    assert len(list((runs / ".stages").glob("sprites-teacher/*/stage.json"))) == 1
    # every row, the real-data row included, has per-prompt diversity against a reference of the same
    # prompt mix, so the mode-collapse column is defined everywhere
    results = [json.loads(p.read_text())["metrics"] for p in (runs / "main_table").glob("*/result.json")]
    assert len(results) == 18
    for metrics in results:
        assert "reference_diversity" not in metrics.get("undefined", []), metrics.get("method")
        assert metrics["reference_diversity"] > 0 and metrics["diversity_ratio"] > 0
    real = next(m for m in results if m["method"] == "real_data")
    assert real["diversity"] > 0
