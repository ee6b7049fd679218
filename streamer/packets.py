"""A source's compressed packets, kept for clips: a bounded ring the decode thread fills.

The decode loop (:func:`streamer.decode.decode`) hands every demuxed packet to the
source's :class:`PacketRing` before it decodes it, so neither the sampler nor a
``drop_oldest`` frame buffer can drop one. The ring keeps at least ``seconds`` of
packets before the last processed frame (the processing thread's ``processed(pts)``),
back to the keyframe at or before that point, and never more than ``max_bytes``; a clip
writer reads from it on its own thread (:mod:`sinks.clips`). Packets are kept as PyAV
gave them: no copy, no decode.

Each connection of a source is one :class:`Segment`: its codec parameters (copied, so a
clip can be written after the input is closed), its time base and the offset that maps
its stream time onto the source's pts (0 for files; live sources continue their pts
across reconnects). A clip never spans two segments: it ends at the gap.

Thread safety: one lock. The decode thread calls :meth:`PacketRing.connect`,
:meth:`~PacketRing.add`, :meth:`~PacketRing.anchor` and :meth:`~PacketRing.gap`; the
processing thread :meth:`~PacketRing.processed` and :meth:`~PacketRing.keyframe_before`;
the clip writer :meth:`~PacketRing.read` and :meth:`~PacketRing.hold`.
"""

from __future__ import annotations

import bisect
import io
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "Packet", "PacketRing", "Segment"]


@dataclass(eq=False)
class Segment:
    """One connection's stream.

    Attributes:
        number: 0 for the first connection, then 1, 2 ...
        template: An output stream holding a copy of the input's codec parameters
            (``add_stream_from_template`` takes it), alive as long as the segment; None
            when no clip container takes the codec.
        format, suffix: The container clips of this stream are written in (``mp4``, or
            ``matroska`` for codecs MP4 does not take) and its file suffix.
        time_base: The stream's time base (packet timestamps are in its units).
        codec, width, height: What the stream carries.
        offset: Source pts minus stream time, seconds; None until the first frame of
            the connection is decoded.
        ended: The connection is over (end of file, camera lost): no packet follows.
    """

    number: int
    template: Any
    holder: Any
    time_base: Fraction
    codec: str
    width: int
    height: int
    format: str = "mp4"
    suffix: str = ".mp4"
    offset: Fraction | None = None
    ended: bool = False

    def seconds(self, ticks: int) -> Fraction | None:
        """Source pts of a timestamp in this stream's units (None before the anchor)."""
        return None if self.offset is None else ticks * self.time_base + self.offset


@dataclass(eq=False, slots=True)
class Packet:
    """One compressed packet as demuxed, with what the writer needs read out once.

    ``pts`` and ``dts`` are in the segment's time base (``pts`` falls back to ``dts``,
    and both to the previous packet's, when the demuxer gives none).
    """

    seq: int
    segment: Segment
    packet: Any
    pts: int
    dts: int
    duration: int
    key: bool
    size: int


# A clip's first keyframe: its seq, pts and segment, and the next keyframe's pts.
ClipStart = tuple[int, Fraction, "Fraction | None", Segment]
# Containers a clip may be remuxed into, by preference: MP4 plays everywhere; Matroska
# takes the codecs MP4 does not (MPEG-4 part 2 v3 of old AVI files, ...).
FORMATS = (("mp4", ".mp4"), ("matroska", ".mkv"))


@dataclass
class _State:
    packets: deque[Packet] = field(default_factory=deque)
    keys: list[int] = field(default_factory=list)  # seq of each keyframe held, ascending
    bytes: int = 0
    next_seq: int = 0
    watermark: Fraction | None = None
    hold: int | None = None  # a writer's cursor: nothing at or after it is trimmed (below max_bytes)


class PacketRing:
    """The last ``seconds`` of a source's packets (back to a keyframe), at most ``max_bytes``.

    Args:
        seconds: Seconds of packets kept before the last processed frame (a clip's
            pre-roll plus a margin for events raised after their frame).
        max_bytes: Memory bound; past it the oldest group of pictures goes first.
    """

    def __init__(self, seconds: float, max_bytes: int = 64 * 2**20) -> None:
        self.seconds = Fraction(seconds).limit_denominator(1000)
        self.max_bytes = max_bytes
        self._cond = threading.Condition(threading.Lock())
        self._s = _State()
        self._segment: Segment | None = None
        self._segments = 0
        self._last = (0, 0)
        self.trimmed = 0  # packets dropped by the byte bound while a writer held them

    # ---- the decode thread

    def connect(self, stream: Any) -> None:
        """A new connection (or the file) starts: its codec parameters are copied into
        the first clip container that takes the codec."""
        ctx = stream.codec_context
        holder = template = None
        fmt, suffix = FORMATS[0]
        for choice in FORMATS:
            try:
                holder = av.open(io.BytesIO(), "w", format=choice[0])
                template = holder.add_stream_from_template(stream)
            except (ValueError, av.error.FFmpegError):
                holder = template = None
                continue
            fmt, suffix = choice
            break
        if template is None:
            log.warning("clips: no container here takes the %s codec; this source gets no clips", ctx.name)
        segment = Segment(self._segments, template, holder, stream.time_base or Fraction(1, 90000),
                          ctx.name, ctx.width, ctx.height, fmt, suffix)
        with self._cond:
            if self._segment is not None:
                self._segment.ended = True
            self._segment = segment
            self._segments += 1
            self._last = (0, 0)
            self._cond.notify_all()

    def add(self, packet: Any) -> None:
        """One demuxed packet (empty flush packets are ignored)."""
        size = packet.size
        segment = self._segment
        if not size or segment is None:
            return
        dts = packet.dts
        pts = packet.pts
        if dts is None:
            dts = self._last[1] if pts is None else pts
        if pts is None:
            pts = dts
        self._last = (pts, dts)
        with self._cond:
            s = self._s
            entry = Packet(s.next_seq, segment, packet, pts, dts, packet.duration or 0, packet.is_keyframe, size)
            s.next_seq += 1
            s.packets.append(entry)
            if entry.key:
                s.keys.append(entry.seq)
            s.bytes += size
            self._trim()
            # No notify per packet: a writer polls (read's timeout), so it never wakes,
            # and asks for the GIL, once per packet of every camera.

    def anchor(self, stream_time: Fraction, pts: Fraction) -> None:
        """The first decoded frame of the connection: stream time ``stream_time`` is source pts ``pts``."""
        segment = self._segment
        if segment is not None and segment.offset is None:
            with self._cond:
                segment.offset = pts - stream_time

    def gap(self) -> None:
        """The connection ended (end of file, stream lost, stopped): no packet follows in it."""
        with self._cond:
            if self._segment is not None:
                self._segment.ended = True
            self._cond.notify_all()

    # ---- the processing thread

    def processed(self, pts: Fraction) -> None:
        """Frames up to ``pts`` have been processed: packets older than ``seconds`` before
        it (back to a keyframe) may go."""
        with self._cond:
            self._s.watermark = pts
            self._trim()

    def keyframe_before(self, start: Fraction, at: Fraction | None = None) -> ClipStart | None:
        """Where a clip for a trigger at ``at`` (default ``start``) begins: the seq and
        source pts of the last keyframe at or before ``start`` in the trigger's own
        connection (else that connection's first keyframe held), and the pts of the
        keyframe after it (None: none yet). None when no keyframe with a known time is
        held. A clip never starts before a gap its trigger is after."""
        at = start if at is None else at
        with self._cond:
            s = self._s
            lo = s.packets[0].seq if s.packets else 0
            keys = []
            for seq in s.keys:
                p = s.packets[seq - lo]
                t = p.segment.seconds(p.pts)
                if t is None:
                    break
                keys.append((seq, t, p.segment))
            if not keys:
                return None
            own = next((k[2] for k in reversed(keys) if k[1] <= at), keys[0][2])
            keys = [k for k in keys if k[2] is own]
            i = max(sum(1 for k in keys if k[1] <= start) - 1, 0)
            after = keys[i + 1][1] if i + 1 < len(keys) else None
            return keys[i][0], keys[i][1], after, own

    # ---- the clip writer

    def read(self, after: int, timeout: float) -> tuple[list[Packet], int]:
        """Packets with seq ``>= after`` (waiting up to ``timeout`` seconds when there is
        none yet, cut short by a gap, a new connection or :meth:`wake`) and the oldest
        seq still held (``> after`` means some were lost)."""
        with self._cond:
            s = self._s
            if not s.packets or s.packets[-1].seq < after:
                segment = self._segment
                if segment is None or not segment.ended:
                    self._cond.wait(timeout)
            if not s.packets:
                return [], s.next_seq
            first = s.packets[0].seq
            start = max(after - first, 0)
            return [s.packets[i] for i in range(start, len(s.packets))], first

    def ended(self, segment: Segment) -> bool:
        """Whether ``segment`` will get no more packets."""
        with self._cond:
            return segment.ended

    def hold(self, seq: int | None) -> None:
        """A writer's cursor: packets from ``seq`` on stay (within ``max_bytes``); None: none held."""
        with self._cond:
            self._s.hold = seq

    def wake(self) -> None:
        """Wakes a writer waiting in :meth:`read` (the sink is closing)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def watermark(self) -> Fraction | None:
        """The pts of the last processed frame (None: none yet)."""
        return self._s.watermark

    @property
    def bytes(self) -> int:
        return self._s.bytes

    def __len__(self) -> int:
        return len(self._s.packets)

    # ---- inside (under the lock)

    def _trim(self) -> None:
        s = self._s
        while len(s.keys) > 1 and self._may_drop_to(s.keys[1]):
            self._drop_to(s.keys[1])
        while s.bytes > self.max_bytes and len(s.packets) > 1:
            target = s.keys[1] if len(s.keys) > 1 else s.packets[0].seq + 1
            if s.hold is not None and s.hold < target:
                self.trimmed += target - max(s.hold, s.packets[0].seq)
            self._drop_to(target)

    def _may_drop_to(self, seq: int) -> bool:
        """Whether the keyframe ``seq`` is old enough to start the ring."""
        s = self._s
        if s.watermark is None or (s.hold is not None and s.hold < seq):
            return False
        p = s.packets[seq - s.packets[0].seq]
        t = p.segment.seconds(p.pts)
        return t is not None and t <= s.watermark - self.seconds

    def _drop_to(self, seq: int) -> None:
        s = self._s
        while s.packets and s.packets[0].seq < seq:
            s.bytes -= s.packets.popleft().size
        del s.keys[: bisect.bisect_left(s.keys, seq)]
