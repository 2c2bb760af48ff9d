"""Samples on disk: mp4/gif round trips, ffmpeg/OpenCV readability, sidecars, frame grids."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import torch

from harness.io.video import (
    SampleMeta,
    VideoError,
    frame_grid,
    read_sidecar,
    read_video,
    save_png,
    sidecar_path,
    write_video,
)


def moving_square(frames: int = 8, height: int = 32, width: int = 48) -> np.ndarray:
    video = np.full((frames, height, width, 3), 40, np.uint8)
    for t in range(frames):
        video[t, 8:20, 2 + 3 * t : 14 + 3 * t] = (230, 60, 20)
    return video


def ffmpeg_stream_info(path) -> str:
    """`ffmpeg -i` decodes the whole file and prints the stream line (imageio-ffmpeg ships no ffprobe)."""
    import imageio_ffmpeg

    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "info", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-500:]
    return result.stderr


def test_mp4_round_trip_and_ffmpeg_reads_h264_yuv420p(tmp_path) -> None:
    video = moving_square()
    path = write_video(tmp_path / "clip.mp4", video, fps=8)
    decoded = read_video(path)
    assert decoded.shape == video.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - video).mean() < 3.0  # lossy, but close at crf 18
    info = ffmpeg_stream_info(path)
    assert re.search(r"Video: h264 .*yuv420p.*48x32", info), info
    assert re.search(r"frame=\s*8\b", info), info


def test_opencv_reads_mp4_with_same_pixels(tmp_path) -> None:
    cv2 = pytest.importorskip("cv2")
    video = moving_square()
    path = write_video(tmp_path / "clip.mp4", video, fps=8)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert fps == 8.0
    assert np.array_equal(np.stack(frames), read_video(path))


def test_odd_sizes_are_padded_to_even(tmp_path) -> None:
    video = moving_square(frames=4, height=31, width=45)
    decoded = read_video(write_video(tmp_path / "odd.mp4", video))
    assert decoded.shape == (4, 32, 46, 3)
    assert np.abs(decoded[:, :31, :45].astype(int) - video).mean() < 3.0


def test_gif_round_trip_from_tensor(tmp_path) -> None:
    video = torch.from_numpy(moving_square(frames=5))
    decoded = read_video(write_video(tmp_path / "clip.gif", video, fps=10))
    assert decoded.shape == (5, 32, 48, 3)
    assert np.abs(decoded.astype(int) - video.numpy()).mean() < 4.0  # palette quantisation


def test_sidecar_written_atomically_next_to_video(tmp_path) -> None:
    meta = SampleMeta("a red circle moving left", 7, "asd", "ffe:1*", 3, {"chunk": 3})
    path = write_video(tmp_path / "s" / "v.mp4", moving_square(frames=3), meta=meta)
    assert sidecar_path(path) == tmp_path / "s" / "v.json"
    on_disk = json.loads(sidecar_path(path).read_text())
    assert on_disk == {
        "prompt": "a red circle moving left",
        "seed": 7,
        "method": "asd",
        "schedule": "ffe:1*",
        "nfe": 3,
        "extra": {"chunk": 3},
    }
    assert read_sidecar(path) == meta
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["v.json", "v.mp4"]  # no temp files left


def test_sidecar_missing_fields_named(tmp_path) -> None:
    (tmp_path / "v.json").write_text(json.dumps({"prompt": "x", "seed": 1}))
    with pytest.raises(
        VideoError, match=r"v\.json: sidecar lacks field\(s\) \['method', 'nfe', 'schedule'\]"
    ):
        read_sidecar(tmp_path / "v.mp4")


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((3, 8, 8, 3), np.float32), "must be uint8"),
        (np.zeros((3, 8, 8), np.uint8), r"shape \[T, H, W, 3\]"),
        (np.zeros((0, 8, 8, 3), np.uint8), "empty video"),
    ],
)
def test_bad_frames_are_refused(tmp_path, frames, message) -> None:
    with pytest.raises(VideoError, match=message):
        write_video(tmp_path / "bad.mp4", frames)


def test_unreadable_and_missing_videos_name_the_file(tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="broken.mp4: cannot decode"):
        read_video(broken)
    with pytest.raises(VideoError, match="absent.mp4: video file not found"):
        read_video(tmp_path / "absent.mp4")


def test_frame_grid_layout_and_png(tmp_path) -> None:
    a, b = moving_square(frames=8), moving_square(frames=6)[..., ::-1]
    grid = frame_grid([a, b], columns=4, pad=2)
    assert grid.shape == (2 + 2 * (32 + 2), 2 + 4 * (48 + 2), 3)
    assert np.array_equal(grid[2:34, 2:50], a[0])
    assert np.array_equal(grid[2:34, 2 + 3 * 50 : 50 + 3 * 50], a[7])  # last column = last frame
    assert np.array_equal(grid[36:68, 2 + 3 * 50 : 50 + 3 * 50], b[5])
    labelled = frame_grid([a, b], labels=["DMD 4", "ASD 1*"], columns=4)
    assert labelled.shape[0] == grid.shape[0] and labelled.shape[1] > grid.shape[1]
    strip = labelled[:, : labelled.shape[1] - grid.shape[1]]
    assert (strip < 128).any()  # text was drawn
    out = save_png(labelled, tmp_path / "grid.png")
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(out)), labelled)


def test_frame_grid_refuses_mixed_sizes_and_label_count() -> None:
    with pytest.raises(VideoError, match="different frame sizes"):
        frame_grid([moving_square(), moving_square(height=16)])
    with pytest.raises(VideoError, match="1 labels for 2 rows"):
        frame_grid([moving_square(), moving_square()], labels=["x"])
