"""Track lifecycle events: ``track_started`` and ``track_ended``.

State is per track and dies with it; event ids are derived from the source, type,
track and frame, so the same input always produces the same ids.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from streamer.types import Detections, Event, Frame

__all__ = ["TrackEvents", "event_id"]


def event_id(source_id: str, kind: str, track_id: int | None, frame: int) -> str:
    """Deterministic id of an event: 20 hex digits of a SHA-1."""
    key = f"{source_id}\x1f{kind}\x1f{track_id}\x1f{frame}".encode()
    return hashlib.sha1(key).hexdigest()[:20]


@dataclass
class _Track:
    first_frame: int
    first_pts: float
    first_centre: tuple[float, float]
    last_frame: int
    last_pts: float
    last_wall: float | None
    last_centre: tuple[float, float]
    last_box: tuple[float, float, float, float]
    class_id: int
    confidence: float
    max_confidence: float
    length: float
    seen_at: int  # kept-frame counter when last seen
    frames: int


class TrackEvents:
    """Turns per-frame tracks into start/end events.

    A track ends when the tracker no longer holds it (``alive`` ids passed to
    :meth:`update`), or, where no such ids are given, when it has not been reported for
    more than ``end_after`` processed frames; open tracks end with the stream
    (:meth:`finish`). The ``track_ended`` event carries
    the track's last frame, box and pts, its duration and a path summary.

    Args:
        source_id: Source named in events.
        names: Class id to name.
        end_after: Processed frames a track may be missing before it has ended.
        live: Whether wall-clock times go into events (live sources).
    """

    def __init__(self, source_id: str, names: dict[int, str], end_after: int = 30, live: bool = False) -> None:
        self.source_id = source_id
        self.names = names
        self.end_after = end_after
        self.live = live
        self._tracks: dict[int, _Track] = {}
        self._tick = 0
        self.started = 0
        self.ended = 0

    def __len__(self) -> int:
        return len(self._tracks)

    def update(self, frame: Frame, tracks: Detections, alive: np.ndarray | None = None) -> list[Event]:
        """Events raised by ``frame``'s tracks (call on every processed frame, in order).

        Args:
            alive: Ids the tracker still holds after this frame (``Tracker.alive_ids``).
        """
        self._tick += 1
        events: list[Event] = []
        wall = frame.captured_at if self.live else None
        pts = float(frame.pts)
        centres = (tracks.xyxy[:, :2] + tracks.xyxy[:, 2:]) / 2.0
        for i, tid in enumerate(tracks.tracker_id.tolist()):
            if tid < 0:
                continue
            box = tuple(round(float(v), 2) for v in tracks.xyxy[i])
            centre = (float(centres[i, 0]), float(centres[i, 1]))
            conf = float(tracks.confidence[i])
            cls = int(tracks.class_id[i])
            track = self._tracks.get(tid)
            if track is None:
                self._tracks[tid] = _Track(
                    frame.index, pts, centre, frame.index, pts, wall, centre, box, cls, conf, conf,
                    0.0, self._tick, 1,
                )
                self.started += 1
                events.append(self._event("track_started", tid, frame.index, pts, wall, cls, conf, box, {}))
            else:
                track.length += math.dist(track.last_centre, centre)
                track.last_frame, track.last_pts, track.last_wall = frame.index, pts, wall
                track.last_centre, track.last_box = centre, box
                track.class_id, track.confidence = cls, conf
                track.max_confidence = max(track.max_confidence, conf)
                track.seen_at = self._tick
                track.frames += 1
        if alive is not None:
            held = set(alive.tolist())
            gone = [tid for tid in self._tracks if tid not in held]
        else:
            gone = [tid for tid, t in self._tracks.items() if self._tick - t.seen_at > self.end_after]
        events.extend(self._end(tid) for tid in gone)
        return events

    def finish(self) -> list[Event]:
        """``track_ended`` for every track still open (end of stream)."""
        return [self._end(tid) for tid in list(self._tracks)]

    def _end(self, tid: int) -> Event:
        t = self._tracks.pop(tid)
        self.ended += 1
        data = {
            "duration": round(t.last_pts - t.first_pts, 6),
            "first_frame": t.first_frame,
            "frames": t.frames,
            "max_confidence": round(t.max_confidence, 4),
            "path": {
                "start": [round(c, 2) for c in t.first_centre],
                "end": [round(c, 2) for c in t.last_centre],
                "length": round(t.length, 2),
            },
        }
        return self._event(
            "track_ended", tid, t.last_frame, t.last_pts, t.last_wall, t.class_id, t.confidence, t.last_box, data
        )

    def _event(self, kind, tid, frame, pts, wall, cls, conf, box, data) -> Event:
        return Event(
            id=event_id(self.source_id, kind, tid, frame),
            type=kind,
            source_id=self.source_id,
            frame=frame,
            pts=round(pts, 6),
            wall_time=wall,
            track_id=tid,
            class_id=cls,
            class_name=self.names.get(cls, str(cls)),
            confidence=round(conf, 4),
            box=box,
            data=data,
        )
