"""Drawing on frames: each track's box, id and class name, and the scene around them
(lines and zones with their counts, track trails). The annotated MP4 and the live view
draw through the same functions."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from streamer.analytics import anchors_of, placed
from streamer.types import Detections, Event

__all__ = ["Overlay", "Scene", "annotate", "color_for", "draw"]

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


def annotate(image: np.ndarray, tracks: Detections, names: dict[int, str], copy: bool = True) -> np.ndarray:
    """``image`` (RGB; a copy unless ``copy`` is False) with each track's box, id and
    class name drawn."""
    out = np.ascontiguousarray(image).copy() if copy else image
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


# Lines and zones are drawn in fixed colours that no track id uses (RGB).
LINE_COLOR = (255, 0, 255)
ZONE_COLOR = (0, 255, 255)


@dataclass(frozen=True)
class Scene:
    """What the overlay draws besides the boxes, as of one frame: lines with their
    crossings by direction, zones with how many tracks are inside, and track trails.
    Coordinates are pixels of the frame the scene was made for."""

    size: tuple[int, int]  # (height, width)
    lines: tuple[tuple[str, np.ndarray, dict[str, int]], ...] = ()
    zones: tuple[tuple[str, np.ndarray, int], ...] = ()
    trails: tuple[tuple[int, np.ndarray], ...] = ()

    def counts(self) -> dict[str, dict[str, int]]:
        """Per line ``{"in": n, "out": n}``, per zone ``{"inside": n}``."""
        out = {name: dict(counts) for name, _, counts in self.lines}
        out.update({name: {"inside": inside} for name, _, inside in self.zones})
        return out


class Overlay:
    """The state behind a source's drawing: its lines and zones (placed in the pixels of
    its frames), what they counted, read from the events the source raised, and each
    track's recent path. Fed every processed frame in order (``update``); ``scene()`` is
    what to draw now. The annotated MP4 and the live view both draw through this.

    Args:
        analytics: ``streamer.config.AnalyticsConfig`` (None: no lines or zones).
        trail: Points kept per track path (0: no trails).
    """

    def __init__(self, analytics: Any = None, trail: int = 30) -> None:
        self.trail = trail
        self._analytics = analytics
        self._size: tuple[int, int] | None = None
        self._lines: list[tuple[str, np.ndarray, dict[str, int]]] = []
        self._zones: list[tuple[str, np.ndarray, set[int]]] = []
        self._trails: dict[int, deque] = {}

    def set_analytics(self, analytics: Any) -> None:
        """Lines and zones replaced (their counts start again), placed on the next frame."""
        self._analytics, self._size = analytics, None

    def _place(self, size: tuple[int, int]) -> None:
        config = self._analytics

        def scale(c: Any) -> np.ndarray:  # as the analytics place them; cv2 draws int32, far out is off anyway
            return np.clip(placed(c, size), -(1 << 20), 1 << 20).round().astype(np.int32)

        self._lines = [(c.name, scale(c), {"in": 0, "out": 0}) for c in (config.lines if config else ())]
        self._zones = [(c.name, scale(c), set()) for c in (config.zones if config else ())]
        self._size = size

    def update(self, size: tuple[int, int], tracks: Detections | None, events: Sequence[Event] = ()) -> None:
        """One processed frame of ``size`` (height, width): its tracks and events
        (``tracks`` None: events between frames)."""
        if self._size != size and tracks is not None:
            self._place(size)
        self._count(events)
        if tracks is None or not self.trail:
            return
        anchor = self._analytics.anchor if self._analytics is not None else "bottom_center"
        points = anchors_of(tracks.xyxy, anchor).round().astype(np.int32)
        seen = set()
        for tid, point in zip(tracks.tracker_id.tolist(), points, strict=True):
            if tid >= 0:
                seen.add(tid)
                self._trails.setdefault(tid, deque(maxlen=self.trail)).append(point)
        for tid in [t for t in self._trails if t not in seen]:
            del self._trails[tid]  # a track not drawn this frame: its trail goes with its box

    def _count(self, events: Sequence[Event]) -> None:
        lines = {name: counts for name, _, counts in self._lines}
        zones = {name: inside for name, _, inside in self._zones}
        for e in events:
            if e.type == "line_crossed" and e.data.get("line") in lines:
                counts = lines[e.data["line"]]
                counts[e.data["direction"]] = counts.get(e.data["direction"], 0) + 1
            elif e.type == "zone_entered" and e.data.get("zone") in zones:
                zones[e.data["zone"]].add(e.track_id)
            elif e.type == "zone_exited" and e.data.get("zone") in zones:
                zones[e.data["zone"]].discard(e.track_id)
            elif e.type in ("source_down", "source_removed"):  # every visit ended with the gap
                for inside in zones.values():
                    inside.clear()

    def scene(self) -> Scene:
        """A snapshot, safe to draw on another thread while updates go on."""
        if self._size is None:
            return Scene((0, 0))
        return Scene(
            self._size,
            tuple((name, pts, dict(counts)) for name, pts, counts in self._lines),
            tuple((name, pts, len(inside)) for name, pts, inside in self._zones),
            tuple((tid, np.array(points)) for tid, points in self._trails.items() if len(points) > 1),
        )


def draw(image: np.ndarray, tracks: Detections, names: dict[int, str], scene: Scene | None = None) -> np.ndarray:
    """A copy of ``image`` (RGB) with the scene (zones, lines and their counts, trails)
    and each track's box, id and class name drawn."""
    if scene is None or scene.size != image.shape[:2]:
        return annotate(image, tracks, names)
    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    thickness = max(2, round(min(h, w) / 240))
    scale = max(0.45, min(h, w) / 900)
    for name, polygon, inside in scene.zones:
        cv2.polylines(out, [polygon.reshape(-1, 1, 2)], True, ZONE_COLOR, thickness, cv2.LINE_AA)
        _label(out, f"{name}: {inside} inside", tuple(polygon[0]), ZONE_COLOR, scale)
    for name, (a, b), counts in ((n, p, c) for n, p, c in scene.lines):
        cv2.line(out, tuple(a), tuple(b), LINE_COLOR, thickness, cv2.LINE_AA)
        text = f"{name}: in {counts.get('in', 0)} / out {counts.get('out', 0)}"
        _label(out, text, ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2), LINE_COLOR, scale)
    for tid, points in scene.trails:
        cv2.polylines(out, [points.reshape(-1, 1, 2)], False, color_for(tid), max(1, thickness // 2), cv2.LINE_AA)
    return annotate(out, tracks, names, copy=False)


def _label(out: np.ndarray, text: str, at: tuple[int, int], color: tuple[int, int, int], scale: float) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(min(max(at[0], 0), max(out.shape[1] - tw - 4, 0)))
    y = int(min(max(at[1] - th - base - 4, 0), max(out.shape[0] - th - base - 4, 0)))
    cv2.rectangle(out, (x, y), (x + tw + 4, y + th + base + 4), (0, 0, 0), -1)
    cv2.putText(out, text, (x + 2, y + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
