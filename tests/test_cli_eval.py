"""`harness eval` through the CLI: the weight-free backend on real mp4 files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main
from harness.evaluation.flicker import temporal_flickering
from harness.io.video import SampleMeta, write_video


def test_eval_weight_free_prints_flickering_of_the_samples(tmp_path, capsys):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        frames = rng.integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8)
        paths.append(write_video(tmp_path / f"s{i}.mp4", frames,
                                 meta=SampleMeta(prompt=f"a red circle moving left {i}", seed=i, method="asd",
                                                 schedule="1*", nfe=17)))
    code = main(["eval", str(tmp_path), "--backend", "weight-free"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("temporal_flickering"))
    expected = np.mean([temporal_flickering(p) for p in paths])
    assert "raw %" in out.splitlines()[0] and "normalised %" in out.splitlines()[0]
    assert abs(float(row.split()[2]) - 100 * expected) < 1e-3  # raw, in percent as reports print it
    assert "no VBench total" in out
    assert "results:" not in out and not (tmp_path / "results.json").exists()  # no --output-dir, no files


def test_eval_writes_results_in_vbench_layout_with_the_evaluator(tmp_path, capsys):
    from harness.evaluation.ingest import read_eval_results

    rng = np.random.default_rng(1)
    samples = tmp_path / "samples"
    paths = [write_video(samples / f"s{i}.mp4", rng.integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8),
                         meta=SampleMeta(prompt=f"a blue square {i}", seed=i, method="asd", schedule="1", nfe=2))
             for i in range(3)]
    out_dir = tmp_path / "out"
    assert main(["eval", str(samples), "--backend", "weight-free", "--output-dir", str(out_dir)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"results: {out_dir / 'results.json'}")
    per_video = {p.name: temporal_flickering(p) for p in paths}
    vbench_file = out_dir / "results" / "harness_eval_results.json"
    layout = json.loads(vbench_file.read_text())
    assert list(layout) == ["temporal_flickering"]
    aggregate, videos = layout["temporal_flickering"]
    assert {v["video_path"]: v["video_results"] for v in videos} == pytest.approx(per_video)
    assert aggregate == pytest.approx(np.mean(list(per_video.values())))
    assert read_eval_results(vbench_file) == {"temporal_flickering": pytest.approx(aggregate)}  # VBench's format
    summary = json.loads((out_dir / "results.json").read_text())
    assert summary["evaluator"]["name"] == "harness weight-free" and summary["evaluator"]["version"]
    assert summary["results"] == layout and summary["videos"] == 3 and summary["mode"] is None
    assert summary["scores"]["temporal_flickering"]["raw"] == pytest.approx(aggregate)


def test_standard_mode_rejecting_own_prompts_suggests_custom_input(tmp_path, capsys):
    write_video(tmp_path / "s0.mp4", np.zeros((4, 16, 16, 3), dtype=np.uint8),
                meta=SampleMeta(prompt="a red circle moving left", seed=0, method="asd", schedule="1", nfe=2))
    suite = tmp_path / "full_info.json"
    suite.write_text(json.dumps([{"prompt_en": "a dog running", "dimension": ["temporal_flickering"]}]))
    assert main(["eval", str(tmp_path), "--dimensions", "[temporal_flickering]", "--full-info", str(suite)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and err[0].endswith("use --mode custom_input)")


def test_eval_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none"), "--backend", "weight-free"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none'}: samples folder not found"
