"""Events of a source: track lifecycle, lines, zones, counts, source down and up.

Every event is built by one constructor of :class:`EventMaker`, one per event type,
which holds the rounding rules. State is per track and dies with it; event ids are
derived from the source, type, track and frame, so the same input always produces the
same ids.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamer.types import Detections, Event, Frame

__all__ = ["Analytics", "EventMaker", "Subject", "TrackEvents", "event_id"]


def event_id(source_id: str, kind: str, track_id: int | None, frame: int, instance: str | None = None) -> str:
    """Deterministic id of an event: 20 hex digits of a SHA-1. ``instance`` tells apart
    runs of a live source (whose frame numbers and track ids start again at each start)."""
    key = f"{source_id}\x1f{kind}\x1f{track_id}\x1f{frame}"
    key = (key if instance is None else f"{key}\x1f{instance}").encode()
    return hashlib.sha1(key).hexdigest()[:20]


def _box(xyxy) -> tuple[float, float, float, float]:
    return tuple(round(float(v), 2) for v in xyxy)  # type: ignore[return-value]


@dataclass(frozen=True)
class Subject:
    """The track an event is about, as events carry it (box rounded to 0.01 px)."""

    track_id: int
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]

    @classmethod
    def of(cls, tracks: Detections, row: int) -> Subject:
        return cls(int(tracks.tracker_id[row]), int(tracks.class_id[row]), float(tracks.confidence[row]),
                   _box(tracks.xyxy[row]))


class EventMaker:
    """Builds the events of one source: one constructor per event type, and the
    rounding rules (pts and times 1 us, confidences 1e-4, boxes and paths 0.01 px,
    downtime 1 ms) in one place."""

    def __init__(self, source_id: str, names: dict[int, str], instance: str | None = None) -> None:
        self.source_id = source_id
        self.names = names
        self.instance = instance

    def _make(self, kind: str, key: str | None, frame: int, pts: float, wall: float | None,
              subject: Subject | None, data: dict) -> Event:
        fields = {}
        if subject is not None:
            fields = dict(
                track_id=subject.track_id, class_id=subject.class_id,
                class_name=self.names.get(subject.class_id, str(subject.class_id)),
                confidence=round(subject.confidence, 4), box=subject.box,
            )
        tid = subject.track_id if subject is not None else None
        return Event(
            id=event_id(self.source_id, kind if key is None else f"{kind}:{key}", tid, frame, self.instance), type=kind,
            source_id=self.source_id, frame=frame, pts=round(pts, 6), wall_time=wall, data=data, **fields,
        )

    def track_started(self, subject: Subject, frame: int, pts: float, wall: float | None) -> Event:
        return self._make("track_started", None, frame, pts, wall, subject, {})

    def track_ended(self, subject: Subject, frame: int, pts: float, wall: float | None, *, first_pts: float,
                    first_frame: int, frames: int, max_confidence: float, start: tuple[float, float],
                    end: tuple[float, float], length: float) -> Event:
        data = {
            "duration": round(pts - first_pts, 6),
            "first_frame": first_frame,
            "frames": frames,
            "max_confidence": round(max_confidence, 4),
            "path": {"start": [round(c, 2) for c in start], "end": [round(c, 2) for c in end],
                     "length": round(length, 2)},
        }
        return self._make("track_ended", None, frame, pts, wall, subject, data)

    def line_crossed(self, line: str, direction: str, subject: Subject, frame: int, pts: float,
                     wall: float | None) -> Event:
        return self._make("line_crossed", line, frame, pts, wall, subject, {"line": line, "direction": direction})

    def zone_entered(self, zone: str, since: float, subject: Subject, frame: int, pts: float,
                     wall: float | None) -> Event:
        data = {"zone": zone, "entered_at": round(since, 6)}
        return self._make("zone_entered", zone, frame, pts, wall, subject, data)

    def zone_exited(self, zone: str, since: float, last_inside: float, subject: Subject, frame: int, pts: float,
                    wall: float | None, reason: str | None = None) -> Event:
        data: dict = {"zone": zone, "entered_at": round(since, 6), "dwell": round(last_inside - since, 6)}
        if reason is not None:
            data["reason"] = reason
        return self._make("zone_exited", zone, frame, pts, wall, subject, data)

    def count(self, target: str, name: str, start: float, end: float, counts: dict[str, int],
              occupancy: int | None, frame: int, pts: float, wall: float | None) -> Event:
        data: dict = {"target": target, "name": name, "interval": [round(start, 6), round(end, 6)],
                      "counts": dict(sorted(counts.items()))}
        if occupancy is not None:
            data["occupancy"] = occupancy
        return self._make("count", f"{name}:{start:.6f}", frame, pts, wall, None, data)

    def source_down(self, outage: int, frame: int, pts: float, wall: float, reason: str) -> Event:
        return self._make("source_down", str(outage), frame, pts, wall, None, {"reason": reason})

    def source_up(self, outage: int, frame: int, pts: float, wall: float, downtime: float, attempts: int) -> Event:
        return self._make("source_up", str(outage), frame, pts, wall, None,
                          {"downtime": round(downtime, 3), "attempts": attempts})

    def source_removed(self, frame: int, pts: float, wall: float, reason: str) -> Event:
        return self._make("source_removed", None, frame, pts, wall, None, {"reason": reason})


@dataclass
class _Track:
    first_frame: int
    first_pts: float
    first_centre: tuple[float, float]
    last_frame: int
    last_pts: float
    last_wall: float | None
    last_centre: tuple[float, float]
    last: Subject  # as last reported: class, score, box
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

    def __init__(self, source_id: str, names: dict[int, str], end_after: int = 30, live: bool = False,
                 instance: str | None = None) -> None:
        self.source_id = source_id
        self.names = names
        self.make = EventMaker(source_id, names, instance)
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
            subject = Subject.of(tracks, i)
            centre = (float(centres[i, 0]), float(centres[i, 1]))
            track = self._tracks.get(tid)
            if track is None:
                self._tracks[tid] = _Track(
                    frame.index, pts, centre, frame.index, pts, wall, centre, subject, subject.confidence,
                    0.0, self._tick, 1,
                )
                self.started += 1
                events.append(self.make.track_started(subject, frame.index, pts, wall))
            else:
                track.length += math.dist(track.last_centre, centre)
                track.last_frame, track.last_pts, track.last_wall = frame.index, pts, wall
                track.last_centre, track.last = centre, subject
                track.max_confidence = max(track.max_confidence, subject.confidence)
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

    def last_seen(self, tid: int) -> Subject | None:
        """An open track as last reported (None: not open)."""
        track = self._tracks.get(tid)
        return track.last if track is not None else None

    def _end(self, tid: int) -> Event:
        t = self._tracks.pop(tid)
        self.ended += 1
        return self.make.track_ended(
            t.last, t.last_frame, t.last_pts, t.last_wall, first_pts=t.first_pts, first_frame=t.first_frame,
            frames=t.frames, max_confidence=t.max_confidence, start=t.first_centre, end=t.last_centre,
            length=t.length,
        )


def placed(shape: Any, frame_size: tuple[int, int]) -> np.ndarray:
    """The points of a line or zone section in pixels of a ``(height, width)`` frame
    (normalized ones scaled by its width and height)."""
    h, w = frame_size
    pts = np.asarray(shape.points, np.float64)
    return pts * [w, h] if shape.normalized else pts


def anchors_of(xyxy: np.ndarray, anchor: str) -> np.ndarray:
    """``(N, 2)`` anchor points of boxes: bottom centre (feet) or centre."""
    x = (xyxy[:, 0] + xyxy[:, 2]) / 2.0
    y = xyxy[:, 3] if anchor == "bottom_center" else (xyxy[:, 1] + xyxy[:, 3]) / 2.0
    return np.stack([x, y], axis=1).astype(np.float64)


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """``(N,)`` whether each point ``(N, 2)`` lies inside ``polygon`` ``(K, 2)`` (even-odd
    rule; points on an edge may go either way)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return ((straddles & (x < x_cross)).sum(axis=1) % 2) == 1


class _Classes:
    """A class filter by name, resolved to ids once."""

    def __init__(self, wanted: list[str] | None, names: dict[int, str]) -> None:
        self.ids = None if wanted is None else {i for i, n in names.items() if n in wanted}

    def __contains__(self, class_id: int) -> bool:
        return self.ids is None or class_id in self.ids


class LineCounter:
    """Counts tracks crossing a directed line segment ``a -> b``.

    A track's side is that of its anchor's signed distance to the line, updated only
    when it is more than ``hysteresis`` pixels away: a track jittering on the line keeps
    its side and counts once. A crossing counts when the side flips while the anchor
    projects onto the segment. Left to right (as seen walking from ``a`` to ``b`` on the
    image, y pointing down) is ``in``.
    """

    def __init__(self, name: str, a, b, hysteresis: float, classes: _Classes) -> None:
        self.name = name
        self.a = np.asarray(a, np.float64)
        self.ab = np.asarray(b, np.float64) - self.a
        self.length = float(np.hypot(*self.ab))
        self.hysteresis = hysteresis
        self.classes = classes
        self.side: dict[int, int] = {}

    def update(self, anchors: np.ndarray, track_ids: list[int], class_ids: list[int]) -> list[tuple[int, str]]:
        """``(row, direction)`` of the tracks that crossed at this frame."""
        rel = anchors - self.a
        distance = (self.ab[0] * rel[:, 1] - self.ab[1] * rel[:, 0]) / self.length
        along = (rel @ self.ab) / self.length**2
        crossed = []
        for i, (tid, cls) in enumerate(zip(track_ids, class_ids, strict=True)):
            if cls not in self.classes:
                continue
            d = distance[i]
            side = 1 if d > self.hysteresis else -1 if d < -self.hysteresis else 0
            if side == 0:
                continue
            before = self.side.get(tid)
            self.side[tid] = side
            if before is not None and before != side and 0.0 <= along[i] <= 1.0:
                crossed.append((i, "in" if side > 0 else "out"))
        return crossed

    def drop(self, track_id: int) -> None:
        self.side.pop(track_id, None)


@dataclass
class _Visit:
    since: float
    since_frame: int
    last_inside: float
    announced: bool = False


class ZoneWatcher:
    """Tracks inside a polygon: ``zone_entered`` once a track has been inside
    ``min_dwell`` seconds, ``zone_exited`` (with the dwell) when it leaves or ends."""

    def __init__(self, name: str, polygon, min_dwell: float, classes: _Classes) -> None:
        self.name = name
        self.polygon = np.asarray(polygon, np.float64)
        self.min_dwell = min_dwell
        self.classes = classes
        self.visits: dict[int, _Visit] = {}

    def update(self, anchors: np.ndarray, track_ids: list[int], class_ids: list[int], frame: int, pts: float):
        """``(row, kind, visit)`` for this frame: kind is ``entered`` or ``exited``."""
        inside = inside_polygon(anchors, self.polygon) if len(anchors) else np.zeros(0, bool)
        out = []
        for i, (tid, cls) in enumerate(zip(track_ids, class_ids, strict=True)):
            if cls not in self.classes:
                continue
            visit = self.visits.get(tid)
            if inside[i]:
                if visit is None:
                    visit = self.visits[tid] = _Visit(pts, frame, pts)
                visit.last_inside = pts
                if not visit.announced and pts - visit.since >= self.min_dwell:
                    visit.announced = True
                    out.append((i, "entered", visit))
            elif visit is not None:
                del self.visits[tid]
                if visit.announced:
                    out.append((i, "exited", visit))
        return out

    def end(self, track_id: int) -> _Visit | None:
        """The announced visit of a track that ended (its state goes with it)."""
        visit = self.visits.pop(track_id, None)
        return visit if visit is not None and visit.announced else None


class Analytics:
    """Every event of one source: track lifecycle, lines, zones and interval counts.

    Per frame, in this order: ``track_started``, ``line_crossed``, ``zone_entered`` /
    ``zone_exited``, then for tracks that ended their open ``zone_exited`` and
    ``track_ended``, then ``count`` events for the intervals that closed. All per-track
    state is dropped when the track ends.

    Args:
        source_id: Source named in events.
        names: Class id to name (of the detector).
        config: ``streamer.config.AnalyticsConfig``.
        frame_size: ``(height, width)``, to scale normalized coordinates (None: the
            first frame's, for cameras not yet connected).
        end_after: Frames unreported before a track ends, where the tracker gives no ids.
        live: Whether wall-clock times go into events.
        instance: Part of every event id (see :func:`event_id`): a live source's start.
    """

    def __init__(self, source_id: str, names: dict[int, str], config, frame_size: tuple[int, int] | None,
                 end_after: int = 30, live: bool = False, instance: str | None = None) -> None:
        self.tracks = TrackEvents(source_id, names, end_after, live, instance)
        self.source_id = source_id
        self.names = names
        self.anchor = config.anchor
        self._config = config
        self.lines: list[LineCounter] = []
        self.zones: list[ZoneWatcher] = []
        self._placed = False
        if frame_size is not None:
            self._place(frame_size)
        self._downs = 0
        self.interval = config.count_interval
        self._interval_start: float | None = None
        self._counts: dict[tuple[str, str], dict[str, int]] = {}
        self._last = (0, 0.0, None)  # frame, pts, wall time of the last frame seen

    def _place(self, frame_size: tuple[int, int]) -> None:
        """Lines and zones in pixels of a ``(height, width)`` frame."""
        names = self.names
        self.lines = [
            LineCounter(c.name, *placed(c, frame_size), c.hysteresis, _Classes(c.classes, names))
            for c in self._config.lines
        ]
        self.zones = [
            ZoneWatcher(c.name, placed(c, frame_size), c.min_dwell, _Classes(c.classes, names))
            for c in self._config.zones
        ]
        self._placed = True

    def _count(self, target: str, name: str, label: str, class_id: int) -> None:
        counts = self._counts.setdefault((target, name), {})
        key = f"{label}:{self.names.get(class_id, str(class_id))}"
        counts[key] = counts.get(key, 0) + 1

    def update(self, frame: Frame, tracks: Detections, alive: np.ndarray | None = None) -> list[Event]:
        """Events raised by ``frame``'s tracks (every processed frame, in order)."""
        if not self._placed:
            self._place(frame.shape)
        pts = float(frame.pts)
        wall = frame.captured_at if self.tracks.live else None
        self._last = (frame.index, pts, wall)
        lifecycle = self.tracks.update(frame, tracks, alive)
        events = [e for e in lifecycle if e.type == "track_started"]
        ended = [e for e in lifecycle if e.type == "track_ended"]
        if self.lines or self.zones:
            events.extend(self._lines_and_zones(frame.index, pts, wall, tracks))
        events.extend(self._ended(ended))
        events.extend(self._close_intervals(pts, frame.index, wall))
        return events

    def _lines_and_zones(self, frame: int, pts: float, wall: float | None, tracks: Detections) -> list[Event]:
        make, events = self.tracks.make, []
        anchors = anchors_of(tracks.xyxy, self.anchor)
        tids, classes = tracks.tracker_id.tolist(), tracks.class_id.tolist()
        for line in self.lines:
            for row, direction in line.update(anchors, tids, classes):
                self._count("line", line.name, direction, classes[row])
                events.append(make.line_crossed(line.name, direction, Subject.of(tracks, row), frame, pts, wall))
        for zone in self.zones:
            for row, kind, visit in zone.update(anchors, tids, classes, frame, pts):
                self._count("zone", zone.name, kind, classes[row])
                subject = Subject.of(tracks, row)
                if kind == "entered":
                    events.append(make.zone_entered(zone.name, visit.since, subject, frame, pts, wall))
                else:
                    events.append(make.zone_exited(zone.name, visit.since, visit.last_inside, subject, frame, pts,
                                                   wall))
        return events

    def _ended(self, ended: list[Event]) -> list[Event]:
        out = []
        for e in ended:
            for line in self.lines:
                line.drop(e.track_id)
            for zone in self.zones:
                visit = zone.end(e.track_id)
                if visit is not None:
                    self._count("zone", zone.name, "exited", e.class_id)
                    subject = Subject(e.track_id, e.class_id, e.confidence, e.box)  # type: ignore[arg-type]
                    out.append(self.tracks.make.zone_exited(zone.name, visit.since, visit.last_inside, subject,
                                                            e.frame, e.pts, e.wall_time, reason="track_ended"))
            out.append(e)
        return out

    def _close_intervals(self, pts: float, frame: int, wall, final: bool = False) -> list[Event]:
        if self.interval is None or not (self.lines or self.zones):
            return []
        if self._interval_start is None:
            self._interval_start = pts
        out = []
        while pts >= self._interval_start + self.interval or final:
            end = pts if final else self._interval_start + self.interval
            for target, items in (("line", self.lines), ("zone", self.zones)):
                for item in items:
                    counts = self._counts.pop((target, item.name), {})
                    occupancy = sum(1 for v in item.visits.values() if v.announced) if target == "zone" else None
                    out.append(self.tracks.make.count(target, item.name, self._interval_start, end, counts,
                                                      occupancy, frame, pts, wall))
            self._interval_start = end
            if final:
                break
        return out

    def source_down(self, frame: int, pts: float, wall: float, reason: str) -> list[Event]:
        """The source stopped delivering: every open track (and zone visit) ends at its
        last frame, then ``source_down``."""
        events = self._ended(self.tracks.finish())
        self._downs += 1
        events.append(self.tracks.make.source_down(self._downs, frame, pts, wall, reason))
        return events

    def source_up(self, frame: int, pts: float, wall: float, downtime: float, attempts: int) -> list[Event]:
        """The source delivers again after ``downtime`` seconds."""
        return [self.tracks.make.source_up(self._downs, frame, pts, wall, downtime, attempts)]

    def finish(self) -> list[Event]:
        """Events at the end of the stream: open zone visits and tracks end, last counts."""
        frame, pts, wall = self._last
        events = self._ended(self.tracks.finish())
        events.extend(self._close_intervals(pts, frame, wall, final=True))
        self._interval_start = None  # closed: nothing more to count
        return events

    def removed(self, wall: float, reason: str) -> list[Event]:
        """The source was taken out of a running pipeline: :meth:`finish`, then
        ``source_removed``."""
        frame, pts, _ = self._last
        return [*self.finish(), self.tracks.make.source_removed(frame, pts, wall, reason)]

    def replace(self, config) -> list[Event]:
        """Lines, zones and counts of ``config`` from the next frame on; tracks go on.

        The old zones' announced visits end (``zone_exited``, reason
        ``analytics_replaced``) and the open count interval closes, so every
        ``zone_entered`` keeps its ``zone_exited`` and no count spans two layouts."""
        frame, pts, wall = self._last
        events = []
        for zone in self.zones:
            for tid in list(zone.visits):
                visit, subject = zone.end(tid), self.tracks.last_seen(tid)
                if visit is not None and subject is not None:
                    self._count("zone", zone.name, "exited", subject.class_id)
                    events.append(self.tracks.make.zone_exited(zone.name, visit.since, visit.last_inside, subject,
                                                               frame, pts, wall, reason="analytics_replaced"))
        if self._interval_start is not None:
            events.extend(self._close_intervals(pts, frame, wall, final=True))
        self._config, self.anchor, self.interval = config, config.anchor, config.count_interval
        self._interval_start, self._counts = None, {}
        self.lines, self.zones, self._placed = [], [], False  # placed on the next frame, in its pixels
        return events
