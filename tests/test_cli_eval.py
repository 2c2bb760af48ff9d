"""`harness eval` through the CLI: the weight-free backend on real mp4 files."""

from __future__ import annotations

import numpy as np

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
    assert abs(float(row.split()[2]) - expected) < 1e-5
    assert "no VBench total" in out


def test_eval_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none"), "--backend", "weight-free"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none'}: samples folder not found"
