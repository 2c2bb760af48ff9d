"""Find the objects in (possibly generated) sprites videos.

Per pixel: the nearest known colour (object colours of the config, its background tones and, in a world
with trails, the tones trails paint); a pixel belongs to an object colour only if that colour is nearest
and closer than ``COLOR_RADIUS``, so a trail is never part of its object. Per
colour and frame: the object-sized box holding the most pixels of that colour (box sums over an
integral image) locates the object; its shape is the template with the best IoU over +-1 pixel
shifts. On clean renders every step is exact (each object has its own colour and spans its box);
noise, blur and flicker degrade the IoUs gracefully instead of breaking the search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.worlds.sprites.palette import background_tones, shape_templates, trail_tones
from harness.worlds.sprites.render import COLOR_NAMES, PALETTE
from harness.worlds.sprites.world_config import SpritesConfig

COLOR_RADIUS = 160.0  # RGB distance beyond which a pixel is no object colour
MIN_FILL = 0.3  # an object needs this fraction of its box in its colour to count as present ...
MIN_IOU = 0.45  # ... and some shape template matching with at least this IoU (scattered noise does not)
CHUNK = 64  # videos per pass, to bound memory


@dataclass(frozen=True)
class Detections:
    """Per video, per global colour index, per frame (C = len(COLOR_NAMES); colours outside the config
    are never present). Positions are top-left corners (x, y), comparable to SpriteStates.top_left."""

    present: np.ndarray  # bool [N, C, T]
    top_left: np.ndarray  # float64 [N, C, T, 2]
    shape_iou: np.ndarray  # float32 [N, C, T, K], 0 where absent
    shape: np.ndarray  # int64 [N, C, T], -1 where absent
    object_region: np.ndarray  # bool [N, T, H, W], detected boxes grown by one pixel

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        fields = Detections.__dataclass_fields__
        return Detections(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


class Detector:
    """Detection for one world config (templates and colour tables are built once)."""

    def __init__(self, cfg: SpritesConfig) -> None:
        self.cfg = cfg
        self.size = cfg.size
        masks = shape_templates(cfg.size)
        self.templates = masks.reshape(len(masks), -1).astype(np.float32)
        self.color_ids = np.asarray([COLOR_NAMES.index(c) for c in cfg.colors])
        backgrounds = background_tones(cfg.backgrounds)
        self.trail_start = len(self.color_ids) + len(backgrounds)  # known[trail_start:] are trail tones
        self.known = np.concatenate([PALETTE[self.color_ids], backgrounds,
                                     trail_tones(cfg.colors, cfg.backgrounds, cfg.trail)]).astype(np.float32)
        # a trail lies at most this far behind its object's box
        self.trail_reach = cfg.trail * cfg.speed_max

    def __call__(self, videos: np.ndarray) -> Detections:
        videos = np.asarray(videos)
        return Detections.concat([self._detect(videos[i : i + CHUNK]) for i in range(0, len(videos), CHUNK)])

    def nearest_distance(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index of the nearest known colour, its RGB distance) for float frames [..., 3]."""
        channels = [np.ascontiguousarray(frames[..., i], dtype=np.float32) for i in range(3)]
        best = np.full(channels[0].shape, np.inf, dtype=np.float32)
        nearest = np.zeros(channels[0].shape, dtype=np.int8)
        for j, colour in enumerate(self.known):  # a running minimum beats a [..., K] array on 2 cores
            d2 = sum((ch - v) ** 2 for ch, v in zip(channels, colour))
            closer = d2 < best
            np.minimum(best, d2, out=best)
            np.copyto(nearest, np.int8(j), where=closer)
        return nearest.astype(np.int64), np.sqrt(best)

    def _detect(self, videos: np.ndarray) -> Detections:
        n, t, h, w, _ = videos.shape
        s = self.size
        nearest, dist = self.nearest_distance(videos.astype(np.float32))
        is_object = (nearest < len(self.color_ids)) & (dist < COLOR_RADIUS)
        masks = np.stack(
            [is_object & (nearest == j) for j in range(len(self.color_ids))], axis=1
        )  # [n,c,t,h,w]
        corner, area = _best_box(masks, s)
        windows = _crop(masks, corner, s + 2).astype(np.float32)  # one-pixel margin on each side
        iou, shift = _template_iou(windows, self.templates, s)  # [n,c,t,k], [n,c,t,k,2]
        best = iou.argmax(-1)
        best_iou = np.take_along_axis(iou, best[..., None], -1)[..., 0]
        present = (area >= MIN_FILL * s * s) & (best_iou >= MIN_IOU)
        shape = np.where(present, best, -1)
        best_shift = np.take_along_axis(shift, best[..., None, None], -2)[..., 0, :]
        top_left = (corner - 1 + best_shift)[..., ::-1].astype(np.float64)  # (y, x) -> (x, y)
        full = lambda a, fill: _scatter_colors(a, self.color_ids, len(COLOR_NAMES), fill)
        return Detections(
            present=full(present, False),
            top_left=full(top_left, 0.0),
            shape_iou=full(np.where(present[..., None], iou, 0.0).astype(np.float32), 0.0),
            shape=full(shape, -1),
            object_region=_region(present, corner, s, (n, t, h, w)) | self._trail_region(
                present, corner, nearest >= self.trail_start, (n, t, h, w)),
        )

    def _trail_region(self, present: np.ndarray, corner: np.ndarray, trail_tone: np.ndarray,
                      shape: tuple[int, int, int, int]) -> np.ndarray:
        """Trail-toned pixels within reach of a detected object: they move with it, so the background
        dimensions must not count them (elsewhere such a pixel is left to them, as noise)."""
        if not self.trail_reach:
            return np.zeros(shape, dtype=bool)
        return _region(present, corner, self.size, shape, grow=self.trail_reach) & trail_tone


def _best_box(masks: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left (y, x) int [..., 2] and pixel count of the s x s box with the most mask pixels."""
    lead, (h, w) = masks.shape[:-2], masks.shape[-2:]
    ii = np.zeros((*lead, h + 1, w + 1), dtype=np.int32)
    ii[..., 1:, 1:] = masks.cumsum(-2, dtype=np.int32).cumsum(-1, dtype=np.int32)
    box = ii[..., s:, s:] - ii[..., :-s, s:] - ii[..., s:, :-s] + ii[..., :-s, :-s]
    flat = box.reshape(*lead, -1)
    arg = flat.argmax(-1)
    cols = w - s + 1
    return np.stack([arg // cols, arg % cols], -1), np.take_along_axis(flat, arg[..., None], -1)[..., 0]


def _crop(masks: np.ndarray, corner: np.ndarray, size: int) -> np.ndarray:
    """Windows [..., size, size] starting one pixel above/left of ``corner`` (zero padding outside)."""
    padded = np.pad(masks, [(0, 0)] * (masks.ndim - 2) + [(1, 1), (1, 1)])
    lead = masks.shape[:-2]
    index = tuple(
        np.arange(d).reshape([-1 if i == j else 1 for j in range(len(lead))] + [1, 1])
        for i, d in enumerate(lead)
    )
    offsets = np.arange(size)
    rows = (corner[..., 0, None] + offsets)[..., :, None]
    cols = (corner[..., 1, None] + offsets)[..., None, :]
    return padded[(*index, rows, cols)]


def _template_iou(windows: np.ndarray, templates: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU per template over the 9 one-pixel shifts inside the window, and that shift (dy, dx)."""
    lead = windows.shape[:-2]
    shifts = [(dy, dx) for dy in range(3) for dx in range(3)]
    subs = np.stack([windows[..., dy : dy + s, dx : dx + s] for dy, dx in shifts], -3)  # [..., 9, s, s]
    subs = subs.reshape(*lead, len(shifts), s * s)
    inter = subs @ templates.T  # [..., 9, k]
    union = subs.sum(-1, keepdims=True) + templates.sum(-1) - inter
    iou = inter / np.maximum(union, 1.0)
    arg = iou.argmax(-2)  # [..., k]
    return np.take_along_axis(iou, arg[..., None, :], -2)[..., 0, :], np.asarray(shifts)[arg]


def _scatter_colors(values: np.ndarray, color_ids: np.ndarray, total: int, fill) -> np.ndarray:
    """Place per-config-colour arrays [n, c, ...] at their global colour index [n, total, ...]."""
    out = np.full((values.shape[0], total, *values.shape[2:]), fill, dtype=values.dtype)
    out[:, color_ids] = values
    return out


def _region(
    present: np.ndarray, corner: np.ndarray, box: int, shape: tuple[int, int, int, int], grow: int = 1
) -> np.ndarray:
    """Union per frame of the present objects' ``box``-wide boxes at ``corner``, grown by ``grow`` pixels
    on every side: bool [n, t, h, w]."""
    n, t, h, w = shape
    size = box + 2 * grow
    region = np.zeros((n, t, h + 2 * grow, w + 2 * grow), dtype=bool)  # padded by grow: corner is the start
    offsets = np.arange(size)
    for c in range(present.shape[1]):
        rows = (corner[:, c, :, 0, None] + offsets)[:, :, :, None]
        cols = (corner[:, c, :, 1, None] + offsets)[:, :, None, :]
        mask = np.broadcast_to(present[:, c, :, None, None], (n, t, size, size))
        idx_n = np.arange(n).reshape(n, 1, 1, 1)
        idx_t = np.arange(t).reshape(1, t, 1, 1)
        region[idx_n, idx_t, rows, cols] |= mask
    return region[:, :, grow:-grow, grow:-grow]
