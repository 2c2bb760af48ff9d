"""x̂0 cosine-similarity analysis: known angles, FFE traces, standard errors, files on disk."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.evaluation.cosine import CosineAnalysis, X0Trace, cosine_similarity_matrices


def rotated(angles: list[float], batch: int = 1, frames: int = 1) -> list[torch.Tensor]:
    """One x̂0 per step: the unit vector at ``angle`` in the (C=2, H=1, W=1) plane, for every video/frame."""
    return [
        torch.tensor([math.cos(a), math.sin(a)]).reshape(1, 1, 2, 1, 1).expand(batch, frames, 2, 1, 1).clone()
        for a in angles
    ]


def test_frame_matrix_equals_cosines_of_known_angles() -> None:
    angles = [0.0, 0.5, 1.0, 1.2]
    trace = X0Trace([rotated(angles, batch=3, frames=2)])
    analysis = cosine_similarity_matrices(trace)
    expected = np.cos(np.subtract.outer(angles, angles))
    frames = analysis.frames()
    assert [m.index for m in frames] == [0, 1]
    for m in frames + analysis.chunks():
        np.testing.assert_allclose(m.mean, expected, atol=1e-12)
        np.testing.assert_allclose(m.se, 0.0, atol=1e-12)  # identical videos
        assert m.n_videos == 3


def test_mean_and_standard_error_over_videos() -> None:
    # two videos whose step-2 prediction is orthogonal (cos 0) resp. equal (cos 1) to step 1
    step1 = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).reshape(2, 1, 2, 1, 1)
    step2 = torch.tensor([[0.0, 3.0], [2.0, 0.0]]).reshape(2, 1, 2, 1, 1)
    m = cosine_similarity_matrices(X0Trace([[step1, step2]])).frames()[0]
    assert m.mean[0, 1] == pytest.approx(0.5) and m.mean[1, 0] == pytest.approx(0.5)
    assert m.se[0, 1] == pytest.approx(np.std([0.0, 1.0], ddof=1) / math.sqrt(2))
    assert m.mean[0, 0] == pytest.approx(1.0)


def test_ffe_trace_with_different_step_counts_per_chunk() -> None:
    trace = X0Trace(meta={"schedule": "ffe:1*"})
    for x0 in rotated([0.0, 0.3, 0.6, 0.9], batch=2, frames=3):
        trace.record(0, x0)
    trace.record(1, rotated([0.2], batch=2, frames=3)[0])
    trace.record(2, rotated([0.4], batch=2, frames=3)[0])
    assert trace.steps_per_chunk == [4, 1, 1] and trace.first_frames() == [0, 3, 6]
    analysis = cosine_similarity_matrices(trace)
    assert [(m.index, m.chunk, m.steps) for m in analysis.frames()] == [
        (0, 0, 4),
        (1, 0, 4),
        (2, 0, 4),
        (3, 1, 1),
        (4, 1, 1),
        (5, 1, 1),
        (6, 2, 1),
        (7, 2, 1),
        (8, 2, 1),
    ]
    assert [m.steps for m in analysis.chunks()] == [4, 1, 1]
    assert analysis.chunks()[0].mean[0, 3] == pytest.approx(math.cos(0.9))


def test_chunk_matrix_flattens_all_frames_of_the_chunk() -> None:
    a = torch.tensor([1.0, 0.0, 1.0, 0.0]).reshape(1, 2, 2, 1, 1)  # frames (1,0), (1,0)
    b = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 2, 2, 1, 1)  # frames (1,0), (0,1)
    analysis = cosine_similarity_matrices(X0Trace([[a, b]]))
    assert [m.mean[0, 1] for m in analysis.frames()] == pytest.approx([1.0, 0.0])
    assert analysis.chunks()[0].mean[0, 1] == pytest.approx(0.5)  # (1·1 + 0) / (√2·√2)


def test_from_steps_splits_whole_video_predictions_into_chunks() -> None:
    steps = [torch.randn(2, 6, 3, 4, 4, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    trace = X0Trace.from_steps(steps, frames_per_chunk=3, method="dmd")
    assert trace.steps_per_chunk == [3, 3] and trace.num_videos == 2
    assert torch.equal(trace.chunks[1][2], steps[2][:, 3:6])
    with pytest.raises(ConfigError, match="6 frames do not split into chunks of 4"):
        X0Trace.from_steps(steps, frames_per_chunk=4)


def test_save_writes_json_and_tidy_csv_and_loads_back(tmp_path) -> None:
    trace = X0Trace([rotated([0.0, 0.5], batch=1, frames=1)], meta={"method": "asd"})
    analysis = cosine_similarity_matrices(trace)
    json_path, csv_path = analysis.save(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["meta"] == {"method": "asd"}
    assert data["matrices"][0]["se"] == [[None, None], [None, None]]  # one video: no standard error
    with open(csv_path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 2 * 4  # chunk + frame matrices, 2×2 each
    first = rows[0]
    assert (first["scope"], first["step_i"], first["step_j"], first["se"]) == ("chunk", "1", "1", "")
    off_diagonal = [r for r in rows if r["scope"] == "frame" and r["step_i"] == "1" and r["step_j"] == "2"]
    assert float(off_diagonal[0]["mean"]) == pytest.approx(math.cos(0.5))
    loaded = CosineAnalysis.load(json_path)
    np.testing.assert_allclose(loaded.frames()[0].mean, analysis.frames()[0].mean)
    assert np.isnan(loaded.frames()[0].se).all()


def test_trace_safetensors_round_trip(tmp_path) -> None:
    trace = X0Trace(meta={"schedule": "ffe:2*"})
    for x0 in rotated([0.0, 0.1, 0.2, 0.3], batch=2, frames=2):
        trace.record(0, x0)
    for x0 in rotated([0.0, 0.1], batch=2, frames=2):
        trace.record(1, x0)
    loaded = X0Trace.load(trace.save(tmp_path / "trace.safetensors"))
    assert loaded.steps_per_chunk == [4, 2] and loaded.meta == {"schedule": "ffe:2*"}
    assert torch.equal(loaded.chunks[0][3], trace.chunks[0][3])


def test_concat_joins_videos() -> None:
    one = X0Trace([rotated([0.0, 1.0], batch=1)])
    two = X0Trace([rotated([0.0, 0.0], batch=2)])
    joined = X0Trace.concat([one, two])
    assert joined.num_videos == 3
    assert cosine_similarity_matrices(joined).frames()[0].mean[0, 1] == pytest.approx((math.cos(1.0) + 2) / 3)


def test_inconsistent_traces_are_refused() -> None:
    with pytest.raises(ConfigError, match="chunk 0 step 2: shape"):
        cosine_similarity_matrices(X0Trace([[torch.zeros(1, 2, 2, 1, 1), torch.zeros(1, 3, 2, 1, 1)]]))
    with pytest.raises(ConfigError, match="chunk 1 step 1: batch/C/H/W"):
        cosine_similarity_matrices(X0Trace([[torch.zeros(2, 2, 2, 1, 1)], [torch.zeros(3, 2, 2, 1, 1)]]))
    with pytest.raises(ConfigError, match="chunk 2 recorded before chunk 0"):
        X0Trace().record(2, torch.zeros(1, 1, 1, 1, 1))
    with pytest.raises(ConfigError, match="steps per chunk"):
        X0Trace.concat([X0Trace([rotated([0.0])]), X0Trace([rotated([0.0, 1.0])])])
