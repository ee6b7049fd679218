"""Event clips: the source's own packets around a trigger, remuxed into MP4 by PyAV.

A :class:`ClipSink` is one source's sink. On the processing thread it only looks: each
frame moves the packet ring's watermark (:meth:`streamer.packets.PacketRing.processed`),
and each trigger event (``line_crossed`` of ``person`` on ``door`` ...) either extends
the clip being written (its window overlaps) or queues a new one starting at the
keyframe at or before ``trigger - pre``; the event gets a ``clip`` field naming the
file. A writer thread remuxes the packets (no decode, no encode: the cost follows the
bitrate, not the resolution) into ``.NAME.part`` and renames it to ``NAME`` once the
MP4 is finalised, so a clip is complete or absent also after ``kill -9``; then it
raises ``clip_ready`` (collected by the runner through :meth:`ClipSink.pending_events`)
and applies the retention (days and/or bytes, oldest first).

A clip ends at the first packet past ``end`` in decode order once every picture up to
the last one it holds is there (so its pictures are contiguous), or earlier at a gap:
the source ended or was lost (``source_ended``), the run stopped (``stopped``), or the
ring had to drop packets it had not written yet (``lost``).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from streamer.packets import FORMATS, Packet, PacketRing, Segment
from streamer.protocols import Sink
from streamer.types import Detections, Event, Frame, SourceStatus

log = logging.getLogger(__name__)

__all__ = ["ClipSink", "apply_retention"]


@dataclass(eq=False)
class _Clip:
    """One clip: planned at its first trigger, extended by the next ones, then written."""

    path: Path
    trigger: Event
    seq: int  # the first packet (a keyframe)
    start: Fraction  # its source pts
    end: Fraction  # source pts the clip reaches at least (extended by later triggers)
    pre: float  # seconds from the start to the trigger
    long_gop: bool  # the keyframes are further apart than pre: the clip starts earlier
    triggers: list[str] = field(default_factory=list)
    format: str = "mp4"  # the container (matroska for codecs MP4 does not take)
    closed: bool = False  # the writer has passed end: a later trigger starts a new clip

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "start": round(float(self.start), 6), "end": round(float(self.end), 6),
                "pre": round(self.pre, 6), "long_gop": self.long_gop}


@dataclass
class _Written:
    """What the writer made of a clip."""

    frames: int = 0
    first: int | None = None  # pts of the first and the last picture, stream units
    last: int | None = None
    reason: str = "complete"


# Packets looked at past a cut in a stream with reordered pictures (B-frames): a cut is
# made only where none of them shows a picture earlier than the last one in the clip.
REORDER_LOOKAHEAD = 16
CLIP_SUFFIXES = tuple(suffix for _, suffix in FORMATS)
# How often a writer looks for new packets (seconds): a clip is ready at most this late.
POLL = 0.05
# Event pts are rounded to 1 us: a picture within that of a clip's end belongs to it.
EPS = Fraction(1, 10**6)


@dataclass
class _Cut:
    """The writer's place in a clip: its segment and output stream, the pts the clip's
    times count from (its first keyframe), the latest pts muxed, and whether pictures
    came out of order (B-frames)."""

    segment: Segment | None = None
    ostream: Any = None
    base: int = 0
    top: int | None = None
    reordered: bool = False

    def start(self, p: Packet, out: Any) -> None:
        self.segment, self.base = p.segment, p.pts
        self.ostream = out.add_stream_from_template(p.segment.template)

    def add(self, p: Packet) -> bool:
        """Takes ``p`` into the clip; False for a leading picture of an open GOP (its
        reference is not in the clip), which is left out."""
        if p.pts < self.base:
            return False
        if self.top is not None and p.pts < self.top:
            self.reordered = True
        self.top = p.pts if self.top is None else max(self.top, p.pts)
        return True


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "source"


class ClipSink(Sink):
    """One source's event clips.

    Args:
        packets: The source's packet ring (its decode thread fills it).
        source_id: The source.
        folder: Where clips go (created at open).
        pre: Seconds before a trigger (from the keyframe at or before it).
        post: Seconds after it; an overlapping trigger extends the clip.
        triggers: Which events trigger (objects with ``matches(event)``).
        days: Retention: clips older than this are removed (None: no limit).
        max_bytes: Retention: the folder's clips stay under this size, oldest removed
            first (None: no limit); the newest clip is always kept.
    """

    def __init__(self, packets: PacketRing, source_id: str, folder: str | Path, pre: float, post: float,
                 triggers: Sequence[Any], days: float | None = None, max_bytes: int | None = None) -> None:
        self.packets = packets
        self.source_id = source_id
        self.folder = Path(folder)
        self.pre = Fraction(pre).limit_denominator(1000)
        self.post = Fraction(post).limit_denominator(1000)
        self.triggers = list(triggers)
        self.days = days
        self.max_bytes = max_bytes
        self.written: list[Path] = []
        self.bytes = 0
        self.cpu_seconds = 0.0  # the writer thread's CPU time, once it has ended
        self._lock = threading.Condition(threading.Lock())
        self._jobs: deque[_Clip] = deque()
        self._latest: _Clip | None = None
        self._ready: deque[Event] = deque()
        self._closing = False
        self._thread: threading.Thread | None = None

    # ---- the processing thread

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A clip of this source that a killed run was writing is never a clip. Only this
        # source's: the folder may be shared, and another source may be writing one now.
        for stale in self.folder.glob(f".{glob.escape(_slug(self.source_id))}-*.part"):
            stale.unlink(missing_ok=True)
        apply_retention(self.folder, self.days, self.max_bytes)
        self._thread = threading.Thread(target=self._run, name=f"clips-{self.source_id}", daemon=True)
        self._thread.start()

    def annotate(self, frame: Frame | None, tracks: Detections | None, events: list[Event]) -> list[Event]:
        if frame is not None:
            self.packets.processed(frame.pts)
        if not events:
            return events
        out = []
        for event in events:
            clip = self._trigger(event) if any(t.matches(event) for t in self.triggers) else None
            out.append(event if clip is None else replace(event, data={**event.data, "clip": clip}))
        return out

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None:
        """Nothing: the watermark and the triggers were taken in :meth:`annotate`."""

    def pending_events(self) -> list[Event]:
        out = []
        while self._ready:
            out.append(self._ready.popleft())
        return out

    def source_changed(self, status: SourceStatus) -> None:
        """At a gap the clip being written ends there: wait (briefly) for it, so its
        ``clip_ready`` goes out with the gap's events."""
        if status.state in ("down", "removed"):
            self._wait_idle(5.0)

    def begin_close(self) -> None:
        """Finish every clip with the packets there are, then stop the writer."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self.packets.wake()
        if self._thread is not None:
            self._thread.join(timeout=60.0)

    def close(self) -> None:
        self.begin_close()

    # ---- inside

    def _trigger(self, event: Event) -> dict[str, Any] | None:
        """Extends the latest clip or plans a new one; its description for the event."""
        pts = Fraction(str(event.pts))  # events carry pts rounded to 1 us: back to the exact value
        with self._lock:
            clip = self._latest
            if clip is not None and not clip.closed and pts - self.pre <= clip.end:
                clip.end = max(clip.end, pts + self.post)
                clip.triggers.append(event.id)
                return clip.describe()
        found = self.packets.keyframe_before(pts - self.pre, pts)
        if found is None:
            log.warning("%s: no packets held yet for a clip of %s at %.2fs", self.source_id, event.type, event.pts)
            return None
        seq, start, after, segment = found
        if segment.template is None:
            return None  # a codec no clip container takes (said once, when the stream connected)
        gop = (after - start) if after is not None else (pts - start)
        stamp = "" if event.wall_time is None else time.strftime("%Y%m%d-%H%M%S-", time.gmtime(event.wall_time))
        path = self.folder / f"{_slug(self.source_id)}-{stamp}{event.frame:06d}{segment.suffix}"
        clip = _Clip(path, event, seq, start, pts + self.post, float(pts - start), gop > self.pre, [event.id],
                     segment.format)
        with self._lock:
            self._jobs.append(clip)
            self._latest = clip
            self._lock.notify_all()
        self._hold(None)
        return clip.describe()

    def _hold(self, cursor: int | None) -> None:
        """Keeps in the ring what the clip being written (at ``cursor``) and the planned
        ones still need."""
        with self._lock:
            needed = [c.seq for c in list(self._jobs)[1 if cursor is not None else 0:]]
            if cursor is not None:
                needed.append(cursor)
            self.packets.hold(min(needed, default=None))

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._jobs and time.monotonic() < deadline:
                self._lock.wait(0.05)

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self.cpu_seconds = time.thread_time()
            log.debug("%s: %d clip(s), %.1f MB, writer CPU %.3f s", self.source_id, len(self.written),
                      self.bytes / 2**20, self.cpu_seconds)

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._jobs and not self._closing:
                    self._lock.wait(0.5)
                if not self._jobs:
                    return
                clip = self._jobs[0]
            try:
                self._write(clip)
            except Exception:  # a clip that cannot be written never stops the video
                log.exception("%s: clip %s could not be written", self.source_id, clip.path)
            with self._lock:
                clip.closed = True
                self._jobs.popleft()
                self._lock.notify_all()
            self._hold(None)

    def _write(self, clip: _Clip) -> None:
        tmp = clip.path.with_name(f".{clip.path.name}.part")
        done = _Written()
        segment: Segment | None = None
        out = av.open(str(tmp), "w", format=clip.format)
        try:
            try:
                segment = self._copy(clip, out, done)
            finally:
                out.close()  # the moov: the file plays
        except BaseException:
            tmp.unlink(missing_ok=True)  # never a half clip, not even under its temporary name
            raise
        if not done.frames or segment is None or segment.offset is None:
            tmp.unlink(missing_ok=True)
            return
        os.replace(tmp, clip.path)
        self.written.append(clip.path)
        self.bytes += clip.path.stat().st_size
        self._ready.append(self._ready_event(clip, segment, done))
        apply_retention(self.folder, self.days, self.max_bytes, keep=clip.path)

    def _copy(self, clip: _Clip, out: Any, done: _Written) -> Segment | None:
        """Muxes the clip's packets until its end or a gap; returns its segment."""
        cursor, cut = clip.seq, _Cut()
        while True:
            packets, first = self.packets.read(cursor, POLL)
            if first > cursor and done.frames:
                done.reason = "lost"
                return cut.segment
            wait = False
            for i, p in enumerate(packets):
                if cut.segment is None:
                    if not p.key:
                        continue
                    cut.start(p, out)
                elif p.segment is not cut.segment:
                    done.reason = "source_ended"
                    return cut.segment
                t = p.segment.seconds(p.pts)
                if t is not None and t > clip.end + EPS and (cut.top is None or p.pts > cut.top):
                    verdict = self._cut_here(clip, packets, i, cut)
                    if verdict is True:
                        return cut.segment
                    if verdict is None:  # frames up to the end are still being processed, or the lookahead
                        wait = True
                        break
                cursor = p.seq + 1
                if cut.add(p):
                    self._mux(out, cut.ostream, p, cut.base)
                    done.frames, done.first, done.last = done.frames + 1, cut.base, cut.top
            if wait:
                self._hold(cursor)
                if self._closing:
                    return cut.segment
                time.sleep(POLL)
            elif packets:
                cursor = max(cursor, packets[-1].seq + 1)
                self._hold(cursor)
            elif cut.segment is not None and self.packets.ended(cut.segment):
                done.reason = "source_ended"
                return cut.segment
            elif self._closing:
                done.reason = "stopped"
                return cut.segment

    def _cut_here(self, clip: _Clip, packets: list[Packet], i: int, cut: _Cut) -> bool | None:
        """Whether the clip may end before ``packets[i]`` (the first picture past its end
        and after every picture muxed): True (the clip is closed, a later trigger starts
        another), False (a picture before it is still to come: mux on), or None (wait:
        frames up to the end are still being processed, and a trigger among them may
        extend the clip; or the lookahead of a stream with reordered pictures is short)."""
        p = packets[i]
        ended = p.segment.ended
        watermark = self.packets.watermark
        if not ended and (watermark is None or watermark <= clip.end):
            return None
        if cut.reordered:  # B-frames: no picture up to the end, or before the last one muxed, may follow
            ahead = [q for q in packets[i + 1:i + 1 + REORDER_LOOKAHEAD] if q.segment is p.segment]
            if len(ahead) < REORDER_LOOKAHEAD and not ended and not self._closing:
                return None
            if any(q.pts <= (cut.top or 0) or (q.segment.seconds(q.pts) or 0) <= clip.end + EPS for q in ahead):
                return False
        with self._lock:
            t = p.segment.seconds(p.pts)
            if t is None or t <= clip.end + EPS:  # a trigger extended it meanwhile
                return False
            clip.closed = True
            return True

    @staticmethod
    def _mux(out: Any, ostream: Any, p: Packet, base: int) -> None:
        q = av.Packet(p.packet)
        q.pts, q.dts = p.pts - base, p.dts - base
        q.duration = p.duration
        q.is_keyframe = p.key
        q.time_base = p.segment.time_base
        q.stream = ostream
        try:
            out.mux(q)
        except av.error.FFmpegError as exc:  # a camera's bad timestamp: that packet only
            log.debug("clip packet skipped (%s)", exc)

    def _ready_event(self, clip: _Clip, segment: Segment, done: _Written) -> Event:
        t = clip.trigger
        start, end = segment.seconds(done.first or 0), segment.seconds(done.last or 0)
        info = {**clip.describe(), "start": round(float(start or 0), 6), "end": round(float(end or 0), 6),
                "frames": done.frames, "bytes": clip.path.stat().st_size, "complete": done.reason == "complete",
                "reason": done.reason, "codec": segment.codec, "width": segment.width, "height": segment.height}
        key = f"{self.source_id}\x1fclip_ready\x1f{t.id}".encode()
        return Event(id=hashlib.sha1(key).hexdigest()[:20], type="clip_ready", source_id=self.source_id,
                     frame=t.frame, pts=t.pts, wall_time=t.wall_time,
                     data={"clip": info, "triggers": list(clip.triggers)})


def apply_retention(folder: Path, days: float | None, max_bytes: int | None, keep: Path | None = None) -> list[Path]:
    """Removes the folder's clips (``*.mp4``, ``*.mkv``) older than ``days`` and then the oldest
    until they total at most ``max_bytes``; ``keep`` (the newest clip) stays. Returns
    the removed files. Several sources may share a folder: a file another one removed
    first is skipped."""
    if days is None and max_bytes is None:
        return []
    clips = []
    for path in (p for suffix in CLIP_SUFFIXES for p in folder.glob(f"*{suffix}")):
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            clips.append((st.st_mtime, path.name, path, st.st_size))
    clips.sort()
    removed = []
    total = sum(c[3] for c in clips)
    cutoff = time.time() - days * 86400 if days is not None else None
    for mtime, _, path, size in clips:
        too_old = cutoff is not None and mtime < cutoff
        too_big = max_bytes is not None and total > max_bytes
        if path == keep or not (too_old or too_big):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
        total -= size
    return removed
