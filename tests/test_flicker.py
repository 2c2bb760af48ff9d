"""Weight-free temporal flickering: the definition, decoder agreement, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.evaluation.flicker import (
    decode_frames,
    temporal_flickering,
    temporal_flickering_frames,
    temporal_flickering_score,
)
from harness.io.video import VideoError, write_video


def noisy_video(seed: int, frames: int = 6, height: int = 24, width: int = 40, noise: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (1, height, width, 3))
    jitter = rng.integers(-noise, noise + 1, (frames, height, width, 3))
    return np.clip(base + jitter, 0, 255).astype(np.uint8)


def test_definition_on_known_differences() -> None:
    frames = np.stack([np.full((4, 5, 3), 10 * t, np.uint8) for t in range(5)])  # every pair differs by 10
    assert temporal_flickering_frames(frames) == pytest.approx((255 - 10) / 255, abs=1e-12)
    alternating = np.stack([np.full((4, 5, 3), 255 * (t % 2), np.uint8) for t in range(4)])
    assert temporal_flickering_frames(alternating) == 0.0


def test_partial_change_and_tensor_input() -> None:
    frames = np.zeros((3, 2, 2, 3), np.uint8)
    frames[1, 0, 0, 0] = 120  # one of 12 values changes, then changes back
    expected = (255 - 10.0) / 255  # pair means 120/12 = 10 and 10
    assert temporal_flickering_frames(torch.from_numpy(frames)) == pytest.approx(expected, abs=1e-12)
    assert temporal_flickering_frames(list(frames)) == pytest.approx(expected, abs=1e-12)


def test_static_video_file_scores_exactly_one(tmp_path) -> None:
    path = write_video(tmp_path / "static.mp4", np.repeat(noisy_video(0, frames=1), 8, axis=0))
    assert temporal_flickering(path) == 1.0


def test_opencv_and_imageio_decoders_agree_exactly(tmp_path) -> None:
    pytest.importorskip("cv2")
    for seed, (height, width) in enumerate([(24, 40), (33, 47), (64, 64)]):
        path = write_video(tmp_path / f"v{seed}.mp4", noisy_video(seed, frames=9, height=height, width=width))
        via_cv2 = decode_frames(path, decoder="opencv")
        via_imageio = decode_frames(path, decoder="imageio")
        assert via_cv2.dtype == np.uint8 and np.array_equal(via_cv2, via_imageio)
        assert temporal_flickering(path, decoder="opencv") == temporal_flickering(path, decoder="imageio")


def test_file_value_matches_frames_value_and_is_below_one(tmp_path) -> None:
    path = write_video(tmp_path / "noisy.mp4", noisy_video(3))
    value = temporal_flickering(path)
    assert value == temporal_flickering_frames(decode_frames(path))
    assert 0.8 < value < 1.0


def test_score_is_mean_over_videos(tmp_path) -> None:
    paths = [write_video(tmp_path / f"{i}.mp4", noisy_video(i, noise=10 * (i + 1))) for i in range(3)]
    expected = np.mean([temporal_flickering(p) for p in paths])
    assert temporal_flickering_score(paths) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("decoder", ["opencv", "imageio"])
def test_unreadable_and_empty_files_name_the_file(tmp_path, decoder) -> None:
    if decoder == "opencv":
        pytest.importorskip("cv2")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(VideoError, match="garbage.mp4"):
        temporal_flickering(garbage, decoder=decoder)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty.mp4"):
        temporal_flickering(empty, decoder=decoder)
    with pytest.raises(VideoError, match="missing.mp4: video file not found"):
        temporal_flickering(tmp_path / "missing.mp4", decoder=decoder)


def test_frames_of_different_sizes_and_single_frame_are_refused() -> None:
    with pytest.raises(VideoError, match="clip: frames of different sizes"):
        temporal_flickering_frames(
            [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)], source="clip"
        )
    with pytest.raises(VideoError, match="at least 2 frames, got 1"):
        temporal_flickering_frames(np.zeros((1, 4, 4, 3), np.uint8))
