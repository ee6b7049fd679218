"""Snapshots: each track's best picture, as a JPEG crop and the full frame with its box.

The best frame of a track is the one with the highest :func:`score` among the frames
the detector ran on: ``confidence * sqrt(area) * (CUT if the box touches the frame edge
else 1)``. Why this score:

- confidence, because it is the detector's own say on how recognisable the object is;
- ``sqrt(area)`` rather than the area, so the score grows with the object's linear size
  (the pixels across a face or a plate), and a box twice as wide must be more than half
  as confident to win;
- a box within ``EDGE`` pixels of the frame's border is cut by it (the object is partly
  outside the picture, and its box shrinks only with the visible part): ``CUT = 0.25``
  means such a box wins only over whole boxes four times smaller in width at the same
  confidence, so a person walking in from the edge is taken once fully inside.

The snapshot is written when the track ends (its ``track_ended`` gets a ``snapshot``
field) and at each trigger event (``line_crossed`` ... : the best picture so far). JPEGs
are encoded on a writer thread behind a bounded queue and renamed into place once
complete (``.NAME.part`` first), so a file that exists is whole. A track's best frame is
held by reference (the pipeline never draws on its frames), one per live track.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sinks.annotate import annotate as draw_tracks
from streamer.protocols import Sink
from streamer.types import Detections, Event, Frame

log = logging.getLogger(__name__)

__all__ = ["CUT", "EDGE", "SnapshotSink", "score"]

EDGE = 1.0  # pixels from the border within which a box counts as cut by it
CUT = 0.25  # the score factor of a cut box


def score(box: Sequence[float], confidence: float, width: int, height: int) -> float:
    """The snapshot score of a box ``x1, y1, x2, y2`` in a ``width`` x ``height`` frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
    cut = x1 <= EDGE or y1 <= EDGE or x2 >= width - EDGE or y2 >= height - EDGE
    return float(confidence) * math.sqrt(area) * (CUT if cut else 1.0)


@dataclass
class _Best:
    score: float
    frame: int
    pts: float
    box: tuple[int, int, int, int]
    class_id: int
    image: np.ndarray
    paths: tuple[str, str] | None = None  # crop and full frame, once written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "source"


class SnapshotSink(Sink):
    """One source's snapshots.

    Args:
        source_id: The source.
        folder: Where the JPEGs go (created at open).
        names: Class names (the full frame's label).
        triggers: Events that get the best picture so far (objects with ``matches(event)``);
            ``track_ended`` always gets the track's best.
        quality: JPEG quality.
        queue_size: JPEGs waiting for the writer before ``annotate`` blocks.
    """

    def __init__(self, source_id: str, folder: str | Path, names: dict[int, str], triggers: Sequence[Any] = (),
                 quality: int = 90, queue_size: int = 64) -> None:
        self.source_id = source_id
        self.folder = Path(folder)
        self.names = names
        self.triggers = list(triggers)
        self.quality = quality
        self.written = 0
        self._best: dict[int, _Best] = {}
        self._queue: queue.Queue[tuple[_Best, int, Path, Path] | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"snapshots-{self.source_id}", daemon=True)
        self._thread.start()

    def annotate(self, frame: Frame | None, tracks: Detections | None, events: list[Event]) -> list[Event]:
        if frame is not None and tracks is not None and frame.detect and len(tracks):
            self._update(frame, tracks)
        if not events:
            return events
        out = []
        for event in events:
            snap = None
            if event.track_id is not None:
                if event.type == "track_ended":
                    snap = self._snapshot(event.track_id, self._best.pop(event.track_id, None))
                elif any(t.matches(event) for t in self.triggers):
                    snap = self._snapshot(event.track_id, self._best.get(event.track_id))
            out.append(event if snap is None else replace(event, data={**event.data, "snapshot": snap}))
        return out

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None:
        """Nothing: the scores were taken in :meth:`annotate`."""

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60.0)
        self._thread = None

    # ---- inside

    def _update(self, frame: Frame, tracks: Detections) -> None:
        height, width = frame.shape
        for box, conf, cls, tid in zip(tracks.xyxy.tolist(), tracks.confidence.tolist(), tracks.class_id.tolist(),
                                       tracks.tracker_id.tolist(), strict=True):
            if tid < 0:
                continue
            s = score(box, conf, width, height)
            best = self._best.get(tid)
            if best is None or s > best.score:
                x1, y1 = max(int(round(box[0])), 0), max(int(round(box[1])), 0)
                x2, y2 = min(int(round(box[2])), width), min(int(round(box[3])), height)
                self._best[tid] = _Best(s, frame.index, float(frame.pts), (x1, y1, x2, y2), int(cls), frame.image)

    def _snapshot(self, track_id: int, best: _Best | None) -> dict[str, Any] | None:
        if best is None or best.box[2] <= best.box[0] or best.box[3] <= best.box[1]:
            return None
        if best.paths is None:
            stem = f"{_slug(self.source_id)}-{track_id}-{best.frame:06d}"
            crop, full = self.folder / f"{stem}-crop.jpg", self.folder / f"{stem}-frame.jpg"
            best.paths = (str(crop), str(full))
            self._queue.put((best, track_id, crop, full))
        return {"crop": best.paths[0], "image": best.paths[1], "frame": best.frame, "pts": round(best.pts, 6),
                "box": list(best.box), "score": round(best.score, 4)}

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            best, track_id, crop, full = job
            try:
                x1, y1, x2, y2 = best.box
                self._save(crop, best.image[y1:y2, x1:x2])
                one = Detections(np.array([best.box], np.float32), class_id=[best.class_id], tracker_id=[track_id])
                self._save(full, draw_tracks(best.image, one, self.names))
                self.written += 1
            except Exception:  # a snapshot that cannot be written never stops the video
                log.exception("%s: snapshot %s could not be written", self.source_id, crop)

    def _save(self, path: Path, rgb: np.ndarray) -> None:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise OSError(f"{path}: JPEG encoding failed")
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
