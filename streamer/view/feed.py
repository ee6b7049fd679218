"""One stream's live picture, rendered and encoded once for every viewer.

The processing thread hands each processed frame to the stream's :class:`ViewSink`,
which keeps only the latest one (a reference and the overlay's counts: no drawing, no
copy). While anyone watches, the stream's :class:`Feed` runs one renderer thread: it
takes the freshest frame at most ``view.fps`` times a second, draws it with the same
annotator as the MP4 (:func:`sinks.annotate.draw`), scales it to ``view.max_width``,
and encodes it once: H.264 for every WebRTC viewer, JPEG for every MJPEG one. Each
viewer gets what was encoded through its own bounded queue; one that falls behind
loses its queue and resumes at the next keyframe, so it never slows the pipeline, the
other viewers, or builds latency. With no viewer, the renderer thread is not running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np

from sinks.annotate import Overlay, Scene, draw
from streamer.metrics import Latency
from streamer.protocols import Sink
from streamer.types import Detections, Event, Frame, SourceStatus

log = logging.getLogger(__name__)

__all__ = ["Feed", "Subscription", "ViewHub", "ViewSink", "jpeg", "output_size"]

_STILL_EVERY = 1.0  # seconds between repeats of a still (down, connecting) frame
_TIME_BASE = Fraction(1, 90_000)  # RTP's video clock


def output_size(height: int, width: int, max_width: int) -> tuple[int, int]:
    """``(height, width)`` of the view of a ``height x width`` frame: at most
    ``max_width`` wide, the aspect kept, both even (H.264's 4:2:0 needs it)."""
    scale = min(1.0, max_width / width)
    w, h = max(2, round(width * scale)), max(2, round(height * scale))
    return h - h % 2, w - w % 2


def jpeg(image: np.ndarray, quality: int) -> bytes:
    """An RGB picture as JPEG bytes."""
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {image.shape} picture")
    return data.tobytes()


@dataclass
class Subscription:
    """A viewer: ``deliver`` is called on the renderer thread with each encoded item
    (an ``av.Packet`` for ``h264``, JPEG bytes for ``jpeg``); it must not block."""

    kind: str  # "h264" or "jpeg"
    deliver: Callable[[Any], None]


@dataclass
class _Latest:
    image: np.ndarray
    tracks: Detections
    captured_at: float
    seq: int


class Feed:
    """The live picture of stream ``sid``: the latest frame, its state, and its viewers.

    Args:
        sid: The stream id.
        config: ``streamer.config.ViewConfig`` (size, rate, bitrate, JPEG quality).
        names: Class names, asked when drawing (the detector's, known once it loaded).
    """

    def __init__(self, sid: str, config: Any, names: Callable[[], dict[int, str]]) -> None:
        self.sid = sid
        self.config = config
        self._names = names
        self.on_idle: Callable[[Feed], None] | None = None  # told when a gone feed's last viewer leaves
        self._cond = threading.Condition()
        self._latest: _Latest | None = None
        self._overlay: Overlay | None = None
        self._seq = 0
        self.state, self.reason = "connecting", ""
        self._subs: list[Subscription] = []
        self._thread: threading.Thread | None = None
        self._keyframe = False
        self._keyframe_asked = 0.0  # when a viewer last asked for one (asks are heeded twice a second at most)
        self._last_key = 0.0  # when the last keyframe was encoded
        self._clock: tuple[float, int] = (time.monotonic(), -1)  # the encoders' clock start and last pts
        self.size: tuple[int, int] | None = None  # (height, width) of the view, once a frame came
        self._source_shape: tuple[int, int] | None = None
        self.gone = False  # its stream was deleted: the hub forgets it once nobody watches
        # figures, for /metrics and the benchmark
        self.rendered = 0
        self.encoded = 0  # H.264 frames
        self.latency = Latency()  # capture to the moment a frame is handed to the encoders

    # ---- the producer side (the processing thread, through ViewSink)

    def attach(self, overlay: Overlay) -> None:
        """The sink of the stream's current instance (a replaced one's is ignored from now on)."""
        with self._cond:
            self._overlay = overlay
            self.gone = False

    def offer(self, frame: Frame, tracks: Detections, events: list[Event], overlay: Overlay) -> None:
        with self._cond:
            if overlay is not self._overlay:  # the stream replaced by a PUT, still finishing
                return
            overlay.update(frame.image.shape[:2], tracks, events)
            self._seq += 1
            self._latest = _Latest(frame.image, tracks, frame.captured_at, self._seq)
            self.state, self.reason = "up", ""
            if self._subs:
                self._cond.notify_all()

    def events(self, events: list[Event], overlay: Overlay) -> None:
        with self._cond:
            overlay.update((0, 0), None, events)

    def set_analytics(self, analytics: Any, overlay: Overlay) -> None:
        with self._cond:
            overlay.set_analytics(analytics)

    def set_state(self, state: str, reason: str = "", overlay: Overlay | None = None) -> None:
        """``overlay``: of the sink that says so (None: the hub); a replaced stream's is ignored."""
        with self._cond:
            if overlay is not None and overlay is not self._overlay:
                return
            self.state, self.reason = state, reason
            if state == "removed":
                self._latest = None  # a deleted stream holds no picture
            self._cond.notify_all()

    # ---- viewers

    def subscribe(self, kind: str, deliver: Callable[[Any], None]) -> Subscription:
        """Adds a viewer; the renderer starts with the first one."""
        sub = Subscription(kind, deliver)
        with self._cond:
            self._subs.append(sub)
            self._keyframe = True  # a new viewer starts decoding at once
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._render_loop, name=f"view-{self.sid}", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Removes a viewer; the renderer ends with the last one."""
        with self._cond:
            if sub in self._subs:
                self._subs.remove(sub)
            self._cond.notify_all()
            idle = self.gone and not self._subs
        if idle and self.on_idle is not None:
            self.on_idle(self)

    def request_keyframe(self) -> None:
        """A viewer needs a keyframe (it fell behind): heeded twice a second at most, so a
        dead viewer cannot make every other viewer's stream all keyframes."""
        with self._cond:
            now = time.monotonic()
            if now - self._keyframe_asked >= 0.5:
                self._keyframe_asked, self._keyframe = now, True

    def viewers(self, kind: str | None = None) -> int:
        with self._cond:
            return sum(1 for s in self._subs if kind is None or s.kind == kind)

    def counts(self) -> dict[str, dict[str, int]]:
        with self._cond:
            return self._overlay.scene().counts() if self._overlay is not None else {}

    def snapshot(self) -> tuple[np.ndarray, str]:
        """The view as of now (RGB, the view's size) and the state it shows; drawn on the
        calling thread, also when nobody watches."""
        with self._cond:
            latest, scene, state, reason = self._take()
        return self._picture(latest, scene, state, reason), state

    # ---- the renderer thread

    def _take(self) -> tuple[_Latest | None, Scene | None, str, str]:
        scene = self._overlay.scene() if self._overlay is not None and self._latest is not None else None
        return self._latest, scene, self.state, self.reason

    def _picture(self, latest: _Latest | None, scene: Scene | None, state: str, reason: str) -> np.ndarray:
        if latest is None or state != "up":
            return self._still(state, reason)
        h, w = latest.image.shape[:2]
        if self._source_shape != (h, w):  # the first frame, or a camera back at another size
            self._source_shape, self.size = (h, w), output_size(h, w, self.config.max_width)
        drawn = draw(latest.image, latest.tracks, self._names(), scene)
        oh, ow = self.size
        if (h, w) != (oh, ow):
            drawn = cv2.resize(drawn, (ow, oh), interpolation=cv2.INTER_AREA)
        return drawn

    def _still(self, state: str, reason: str) -> np.ndarray:
        """A frame saying what the stream is doing, not a frozen picture."""
        h, w = self.size or output_size(540, 960, self.config.max_width)
        image = np.full((h, w, 3), 48, np.uint8)
        scale = max(0.5, w / 960)
        words = {"down": "stream down", "connecting": "connecting...", "removed": "stream removed",
                 "ended": "stream ended"}
        lines = [f"{self.sid}: {words.get(state, state)}", reason[:80], time.strftime("%H:%M:%S")]
        y = h // 2 - int(40 * scale)
        for text in (t for t in lines if t):
            cv2.putText(image, text, (int(20 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 96, 96), 2,
                        cv2.LINE_AA)
            y += int(40 * scale)
        return image

    def _render_loop(self) -> None:
        encoder: _H264 | None = None
        last_seq, next_due, still_at = -1, 0.0, 0.0
        period = 1.0 / self.config.fps
        while True:
            with self._cond:
                if not self._subs:  # decided and cleared under the lock: a new viewer starts a new thread
                    self._thread = None
                    return
                self._cond.wait(timeout=min(period, _STILL_EVERY))
                if not self._subs:
                    self._thread = None
                    return
                now = time.monotonic()
                fresh = self._latest is not None and self._latest.seq != last_seq and self.state == "up"
                still = self.state != "up" and now - still_at >= _STILL_EVERY
                if now < next_due or not (fresh or still):
                    continue
                latest, scene, state, reason = self._take()
                # a keyframe when asked (a new viewer, one that fell behind) and every second
                keyframe = self._keyframe or now - self._last_key >= 1.0
                subs, self._keyframe = list(self._subs), False
            # on a grid of 1/fps (not 1/fps after the last one: a 25 frames/s source then gives 15,
            # not 12.5), never more than one period behind (no burst after a stall)
            next_due = max(next_due + period, now - period)
            if fresh and latest is not None:
                last_seq = latest.seq
            else:
                still_at = now
            try:
                encoder = self._render(latest, scene, state, reason, subs, keyframe, encoder)
            except Exception:  # one bad picture must neither end the view nor take the service down
                log.exception("%s: live view", self.sid)
                encoder = None

    def _render(self, latest: _Latest | None, scene: Scene | None, state: str, reason: str,
                subs: list[Subscription], keyframe: bool, encoder: _H264 | None) -> _H264 | None:
        image = self._picture(latest, scene, state, reason)
        if state == "up" and latest is not None:
            self.latency.add(time.time() - latest.captured_at)
        self.rendered += 1
        if any(s.kind == "h264" for s in subs):
            if encoder is None or encoder.size != image.shape[:2]:
                encoder, keyframe = _H264(image.shape[:2], self.config.fps, self.config.bitrate, self._clock), True
            if keyframe:
                self._last_key = time.monotonic()
            packets = encoder.encode(image, keyframe)
            self._clock = encoder.clock
            for packet in packets:
                for s in subs:
                    if s.kind == "h264":
                        s.deliver(packet)
            self.encoded += 1
        if any(s.kind == "jpeg" for s in subs):
            data = jpeg(image, self.config.jpeg_quality)
            for s in subs:
                if s.kind == "jpeg":
                    s.deliver(data)
        return encoder


class _H264:
    """One H.264 encoder for a feed: Baseline profile (what every WebRTC peer decodes),
    no B-frames, no lookahead, keyframes when the feed asks (every second, and for a viewer
    that joins or fell behind) with their SPS/PPS repeated, timestamps at 90 kHz from the
    feed's clock (``clock``: its start and the last pts), so that a rebuilt encoder (a new
    size) goes on where the last one stopped."""

    def __init__(self, size: tuple[int, int], fps: float, bitrate: int, clock: tuple[float, int]) -> None:
        self.size = size
        self.codec = av.CodecContext.create("libx264", "w")
        self.codec.height, self.codec.width = size
        self.codec.pix_fmt = "yuv420p"
        self.codec.time_base = _TIME_BASE
        self.codec.framerate = Fraction(fps).limit_denominator(1000)
        self.codec.bit_rate = bitrate
        self.codec.profile = "Baseline"
        gop = max(1, round(fps * 10))  # a bound only: the feed forces one a second, by the clock
        self.codec.options = {"preset": "ultrafast", "tune": "zerolatency", "threads": "1",
                              "x264-params": f"keyint={gop}:scenecut=0:repeat-headers=1"}
        self.clock = clock  # its start (monotonic) and the last pts

    def encode(self, image: np.ndarray, keyframe: bool) -> list[av.Packet]:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        start, last = self.clock
        pts = max(last + 1, round((time.monotonic() - start) / _TIME_BASE))
        frame.pts, frame.time_base, self.clock = pts, _TIME_BASE, (start, pts)
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        packets = self.codec.encode(frame)
        for p in packets:
            p.time_base = _TIME_BASE
        return packets


class ViewSink(Sink):
    """A stream's sink for its live view: keeps the latest frame and the overlay's state
    in the stream's :class:`Feed`. Cheap on the processing thread: no drawing, no copy."""

    def __init__(self, feed: Feed, analytics: Any = None, trail: int = 30) -> None:
        self.feed = feed
        self.overlay = Overlay(analytics, trail)

    def open(self) -> None:
        self.feed.attach(self.overlay)

    def write(self, frame: Frame, tracks: Detections, events: list[Event] | tuple = ()) -> None:
        self.feed.offer(frame, tracks, list(events), self.overlay)

    def write_events(self, events: Any) -> None:
        self.feed.events(list(events), self.overlay)

    def analytics_changed(self, analytics: Any) -> None:
        self.feed.set_analytics(analytics, self.overlay)

    def source_changed(self, status: SourceStatus) -> None:
        self.feed.set_state(status.state, status.reason, self.overlay)

    def close(self) -> None:
        if self.feed.state not in ("down", "removed"):
            self.feed.set_state("ended", "", self.overlay)


class ViewHub:
    """The feeds of a service's streams, by id (a stream replaced or re-added keeps its
    feed, so its viewers stay connected)."""

    def __init__(self, config: Any, names: Callable[[], dict[int, str]]) -> None:
        self.config = config
        self._names = names
        self._feeds: dict[str, Feed] = {}
        self._lock = threading.Lock()
        self.closed = False  # the server is stopping: streaming responses (MJPEG) end

    def feed(self, sid: str) -> Feed:
        with self._lock:
            feed = self._feeds.get(sid)
            if feed is None:
                feed = self._feeds[sid] = Feed(sid, self.config, self._names)
                feed.on_idle = self._drop
            return feed

    def _drop(self, feed: Feed) -> None:
        with self._lock:
            if self._feeds.get(feed.sid) is feed and feed.gone and not feed.viewers():
                del self._feeds[feed.sid]

    def get(self, sid: str) -> Feed | None:
        with self._lock:
            return self._feeds.get(sid)

    def feeds(self) -> list[Feed]:
        with self._lock:
            return list(self._feeds.values())

    def sinks(self, sid: str, analytics: Any, trail: int) -> list[Sink]:
        """The view's sink of stream ``sid`` (built with its other sinks)."""
        return [ViewSink(self.feed(sid), analytics, trail)]

    def forget(self, sid: str) -> None:
        """A deleted stream: its feed goes now, or once its last viewer leaves (they see a
        still saying it was removed until then)."""
        with self._lock:
            feed = self._feeds.get(sid)
            if feed is None:
                return
            feed.gone = True
            if not feed.viewers():
                del self._feeds[sid]
        feed.set_state("removed")
