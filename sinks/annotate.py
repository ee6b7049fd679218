"""Drawing tracks on frames: a box, the track id and the class name per track."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.types import Detections

__all__ = ["annotate", "color_for"]

# A 20-colour palette (RGB); ids cycle through it so neighbouring ids differ.
_PALETTE = np.array(
    [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
        (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
        (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
    ],
    dtype=np.uint8,
)


def color_for(track_id: int) -> tuple[int, int, int]:
    """The colour of a track id (RGB)."""
    return tuple(int(c) for c in _PALETTE[int(track_id) % len(_PALETTE)])


def annotate(image: np.ndarray, tracks: Detections, names: dict[int, str]) -> np.ndarray:
    """A copy of ``image`` (RGB) with each track's box, id and class name drawn."""
    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(h, w) / 360))
    scale = max(0.4, min(h, w) / 900)
    for (x1, y1, x2, y2), tid, cls in zip(
        tracks.xyxy.round().astype(int), tracks.tracker_id, tracks.class_id, strict=True
    ):
        color = color_for(tid)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        label = f"{tid} {names.get(int(cls), str(cls))}" if tid >= 0 else names.get(int(cls), str(cls))
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), color, -1)
        text_color = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
        cv2.putText(out, label, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, text_color, thickness,
                    cv2.LINE_AA)
    return out
