"""Videos on disk: mp4 (H.264, yuv420p) and gif, their sidecar JSON, and frame grids for reports.

Frames are always ``uint8`` arrays ``[T, H, W, 3]`` in RGB order. Every sample the harness writes
gets a sidecar ``<stem>.json`` next to it (prompt, seed, method, schedule, NFE, free extra fields),
so a folder of samples can be re-scored or re-labelled without the run that produced it; an mp4
and a gif of the same sample share one sidecar. All files are written atomically (temporary file
in the same folder, then ``os.replace``) so a crashed run never leaves a half-written sample.

yuv420p needs even width and height: odd sizes are padded by one pixel (edge replicated) at the
bottom/right, so the decoded video can be one pixel larger than the frames written.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError, require

VIDEO_SUFFIXES = (".mp4", ".gif")


class VideoError(HarnessError):
    """A video file or frame array that cannot be used: unreadable, empty, wrong shape or type."""


@dataclass
class SampleMeta:
    """What produced a sample; stored as the sidecar JSON of each video."""

    prompt: str
    seed: int
    method: str
    schedule: str
    nfe: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "sidecar") -> SampleMeta:
        known = {"prompt", "seed", "method", "schedule", "nfe"}
        missing = sorted(known - set(data))
        if missing:
            raise VideoError(f"{source}: sidecar lacks field(s) {missing}")
        extra = dict(data.get("extra", {}))
        extra.update({k: v for k, v in data.items() if k not in known | {"extra"}})
        return cls(
            str(data["prompt"]),
            int(data["seed"]),
            str(data["method"]),
            str(data["schedule"]),
            int(data["nfe"]),
            extra,
        )


def as_frames(frames: Any, source: str = "frames") -> np.ndarray:
    """Check and return a ``uint8 [T, H, W, 3]`` array (torch tensors are accepted and moved to CPU)."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    array = np.asarray(frames)
    if array.dtype != np.uint8:
        raise VideoError(f"{source}: frames must be uint8, got {array.dtype}")
    if array.ndim != 4 or array.shape[-1] != 3:
        raise VideoError(f"{source}: frames must have shape [T, H, W, 3], got {list(array.shape)}")
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise VideoError(f"{source}: empty video, shape {list(array.shape)}")
    return np.ascontiguousarray(array)


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Replicate the last row/column where height/width is odd (yuv420p subsamples chroma by 2)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _atomic_target(path: Path) -> Path:
    """A fresh temporary path beside ``path`` with the same suffix (ffmpeg picks the format by suffix).

    Not ``mkstemp``: its 0600 mode would survive ``os.replace`` and hide samples from other users.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem[:40]}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _write_mp4(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    ffmpeg = require("imageio_ffmpeg", feature="writing mp4 videos")
    frames = pad_to_even(frames)
    height, width = frames.shape[1:3]
    writer = ffmpeg.write_frames(
        str(path),
        (width, height),
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        fps=fps,
        quality=None,
        codec="libx264",
        macro_block_size=1,
        output_params=["-crf", str(crf), "-movflags", "+faststart"],
    )
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    duration = max(1, round(1000.0 / fps))
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)


def write_video(
    path: str | os.PathLike, frames: Any, *, fps: float = 16.0, crf: int = 18, meta: SampleMeta | None = None
) -> Path:
    """Write ``frames`` (uint8 [T,H,W,3]) as mp4 or gif, chosen by suffix; add the sidecar if ``meta``."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"{path}: video suffix must be one of {VIDEO_SUFFIXES}")
    frames = as_frames(frames, str(path))
    tmp = _atomic_target(path)
    try:
        if path.suffix.lower() == ".mp4":
            _write_mp4(tmp, frames, fps, crf)
        else:
            _write_gif(tmp, frames, fps)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if meta is not None:
        write_sidecar(path, meta)
    return path


def _read_mp4(path: Path) -> list[np.ndarray]:
    ffmpeg = require("imageio_ffmpeg", feature="reading mp4 videos")
    reader = ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    info = next(reader)
    width, height = info["size"]
    return [np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy() for raw in reader]


def _read_gif(path: Path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")).copy() for frame in ImageSequence.Iterator(image)]


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Decode an mp4 or gif to uint8 RGB ``[T, H, W, 3]``; unreadable or empty files raise VideoError."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    reader = _read_gif if path.suffix.lower() == ".gif" else _read_mp4
    try:
        frames = reader(path)
    except (OSError, RuntimeError, ValueError, StopIteration) as exc:
        raise VideoError(
            f"{path}: cannot decode video ({type(exc).__name__}: {str(exc).strip()[:200]})"
        ) from exc
    if not frames:
        raise VideoError(f"{path}: video has no frames")
    return np.stack(frames)


def sidecar_path(video_path: str | os.PathLike) -> Path:
    """``dir/name.mp4`` → ``dir/name.json`` (shared by the mp4 and gif of one sample)."""
    return Path(video_path).with_suffix(".json")


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON through a temporary file in the same folder and ``os.replace`` it into place."""
    tmp = _atomic_target(path)
    try:
        with open(tmp, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, ensure_ascii=False, sort_keys=True)
            stream.write("\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_sidecar(video_path: str | os.PathLike, meta: SampleMeta) -> Path:
    return write_json_atomic(sidecar_path(video_path), meta.to_dict())


def read_sidecar(video_path: str | os.PathLike) -> SampleMeta:
    path = sidecar_path(video_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VideoError(f"{path}: sidecar JSON not found for {Path(video_path).name}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise VideoError(f"{path}: unreadable sidecar JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise VideoError(f"{path}: sidecar must be a JSON object")
    return SampleMeta.from_dict(data, str(path))


def _pick_columns(length: int, columns: int | None) -> np.ndarray:
    if columns is None or columns >= length:
        return np.arange(length)
    return np.linspace(0, length - 1, columns).round().astype(int)


def _label_strip(labels: Sequence[str], row_height: int, pad: int, background: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font_size = max(8, min(16, row_height // 3))
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        font = ImageFont.load_default()
    width = max(int(font.getlength(text)) for text in labels) + 2 * pad + 4
    height = len(labels) * (row_height + pad) + pad
    strip = Image.new("RGB", (width, height), (background,) * 3)
    draw = ImageDraw.Draw(strip)
    for i, text in enumerate(labels):
        top = pad + i * (row_height + pad)
        draw.text((pad + 2, top + row_height // 2), text, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(strip)


def frame_grid(
    rows: Sequence[Any],
    labels: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    pad: int = 2,
    background: int = 255,
) -> np.ndarray:
    """A rows × frames image (uint8 [H, W, 3]): one row per video, optional text labels on the left.

    ``columns`` picks that many evenly spaced frames from each row (all frames when None).
    """
    if not rows:
        raise VideoError("frame_grid: no rows given")
    videos = [as_frames(row, f"frame_grid row {i}") for i, row in enumerate(rows)]
    sizes = {v.shape[1:3] for v in videos}
    if len(sizes) > 1:
        raise VideoError(f"frame_grid: rows have different frame sizes {sorted(sizes)}")
    if labels is not None and len(labels) != len(videos):
        raise VideoError(f"frame_grid: {len(labels)} labels for {len(videos)} rows")
    height, width = videos[0].shape[1:3]
    n_cols = max(len(_pick_columns(v.shape[0], columns)) for v in videos)
    grid = np.full(
        (pad + len(videos) * (height + pad), pad + n_cols * (width + pad), 3), background, np.uint8
    )
    for r, video in enumerate(videos):
        for c, index in enumerate(_pick_columns(video.shape[0], columns)):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            grid[top : top + height, left : left + width] = video[index]
    if labels:
        grid = np.concatenate([_label_strip(list(labels), height, pad, background), grid], axis=1)
    return grid


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Save a uint8 [H, W, 3] image as PNG, atomically."""
    from PIL import Image

    path = Path(path)
    tmp = _atomic_target(path.with_suffix(".png"))
    try:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
