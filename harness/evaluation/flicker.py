"""VBench's ``temporal_flickering``, which needs no network weights, computed exactly as vbench 0.1.5 does.

Definition (vbench/temporal_flickering.py): decode every frame with ``cv2.VideoCapture`` (BGR uint8),
take for each pair of consecutive frames the float32 mean of ``|F_t − F_{t+1}|`` over all pixels and
channels, average those per-pair means (float32), and return ``(255 − mean) / 255``. VBench's
dimension score is then the plain mean of this value over videos.

We reproduce the same float32 reductions (``np.mean`` of a float32 array, pair by pair) so the value
equals vbench's to float rounding, not merely approximately. Decoding uses OpenCV when it is
installed; otherwise imageio-ffmpeg, which decodes our H.264/yuv420p mp4s to the same pixels
(checked in tests/test_flicker.py). Channel order does not change the score.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.io.video import VideoError, read_video


def _decode_with_opencv(path: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    return frames


def _decode_with_imageio(path: Path) -> list[np.ndarray]:
    try:
        rgb = read_video(path)
    except VideoError as exc:
        if "no frames" in str(exc):
            return []
        raise
    return [frame[..., ::-1] for frame in rgb]


def _opencv_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def decode_frames(video_path: str | os.PathLike, *, decoder: str | None = None) -> np.ndarray:
    """Decode like vbench: BGR uint8 ``[T, H, W, 3]``. ``decoder``: ``"opencv"``, ``"imageio"`` or auto."""
    path = Path(video_path)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    if decoder is None:
        decoder = "opencv" if _opencv_available() else "imageio"
    decoders = {"opencv": _decode_with_opencv, "imageio": _decode_with_imageio}
    if decoder not in decoders:
        raise VideoError(f"unknown decoder '{decoder}'; choose from {sorted(decoders)}")
    frames = decoders[decoder](path)
    if not frames:
        raise VideoError(f"{path}: no frames could be decoded (empty or unreadable video)")
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise VideoError(f"{path}: frames of different sizes {sorted(shapes)}")
    return np.stack(frames)


def _frame_sequence(frames: Any, source: str) -> list[np.ndarray]:
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    if isinstance(frames, np.ndarray):
        if frames.ndim not in (3, 4):
            raise VideoError(f"{source}: frames must be [T, H, W] or [T, H, W, C], got {list(frames.shape)}")
        sequence = list(frames)
    else:
        sequence = [np.asarray(f.detach().cpu().numpy() if hasattr(f, "detach") else f) for f in frames]
    if not sequence:
        raise VideoError(f"{source}: no frames")
    shapes = {frame.shape for frame in sequence}
    if len(shapes) > 1:
        raise VideoError(f"{source}: frames of different sizes {sorted(shapes)}")
    return sequence


def temporal_flickering_frames(frames: Any, *, source: str = "frames") -> float:
    """Temporal flickering of in-memory frames (array/tensor ``[T, H, W(, C)]`` or a list of frames).

    Frames are on the 0-255 scale (uint8 as decoded; other dtypes are cast to float32 like vbench).
    A single frame has no consecutive pair; like vbench (mean of an empty array) the result is NaN,
    so we refuse it instead.
    """
    sequence = _frame_sequence(frames, source)
    if len(sequence) < 2:
        raise VideoError(f"{source}: temporal flickering needs at least 2 frames, got {len(sequence)}")
    pair_means = [
        np.mean(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)))
        for a, b in itertools.pairwise(sequence)
    ]
    mean_difference = np.mean(np.array(pair_means)).item()
    return (255.0 - mean_difference) / 255.0


def temporal_flickering(video_path: str | os.PathLike, *, decoder: str | None = None) -> float:
    """VBench's temporal flickering of one video file (1.0 = static)."""
    frames = decode_frames(video_path, decoder=decoder)
    return temporal_flickering_frames(frames, source=str(video_path))


def temporal_flickering_score(
    video_paths: Iterable[str | os.PathLike], *, decoder: str | None = None
) -> float:
    """The dimension score over a set of videos: the mean of the per-video values, as vbench reports."""
    values = [temporal_flickering(path, decoder=decoder) for path in video_paths]
    if not values:
        raise VideoError("temporal flickering: no videos given")
    return float(np.mean(values))
