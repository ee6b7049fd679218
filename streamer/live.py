"""Live sources: RTSP and other network streams, webcams, FFmpeg test sources.

A :class:`LiveSource` never ends on its own while its camera may come back: when the
stream stops delivering (server gone, network cut, no packet for ``timeout`` seconds)
it reconnects with capped exponential backoff, for ever unless ``attempts`` says
otherwise. The gap is announced in-band, between the frames, by :class:`SourceStatus`
items (``down`` with the reason, then ``up`` with the downtime), which become
``source_down`` / ``source_up`` events.

Frames carry their capture time on the wall clock (``captured_at``: the stream's own
timestamps anchored to the earliest arrival, so a frame that waited in a socket or
decoder buffer still shows that wait as latency), and a pts that keeps running across
reconnects (the gap is measured on the wall clock), so trackers, analytics and outputs
see one continuous timeline per source.

URIs:
    ``rtsp://``, ``rtsps://``, ``rtmp://``, ``srt://``, ``udp://``, ``tcp://``: network streams;
    ``http(s)://``: progressive video or HLS (``.m3u8``), live when it has no duration;
    ``webcam:N``: capture device N (``v4l2`` ``/dev/videoN`` on Linux, ``avfoundation``
    on macOS, ``dshow`` ``video=NAME`` on Windows), or a device path ``/dev/videoN``;
    ``lavfi:GRAPH``: an FFmpeg test source such as ``lavfi:testsrc2=size=1280x720:rate=30``,
    paced to real time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Generator, Iterator
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import av

from streamer.decode import HWACCELS, HW_FAILURES, Position, decode, open_container, reason, video_stream
from streamer.errors import ConfigError, SourceError, UnsupportedError
from streamer.packets import PacketRing
from streamer.protocols import Sampling
from streamer.types import Frame, SourceStatus
from streamer.urls import redact, shown

log = logging.getLogger(__name__)

__all__ = [
    "HWACCELS", "HW_FAILURES", "LiveSource", "Reconnect", "SourceStatus", "StreamSpec", "local_path", "open_container",
    "parse_uri",
]

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "srt://", "udp://", "tcp://", "rtp://")
HTTP_SCHEMES = ("http://", "https://")


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """How FFmpeg opens a URI."""

    url: str
    format: str | None
    options: dict[str, str]
    live: bool | None  # None: decided once open (HTTP: live when there is no duration)
    realtime: bool = False  # paced to the wall clock (generated sources)
    default_id: str = ""


def _slug(text: str) -> str:
    """A default source id from a URI's host and path: at most 64 characters (a long one
    keeps its start and a digest of the whole, so two long URIs still differ)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "stream"
    if len(slug) > 64:
        slug = f"{slug[:55]}-{hashlib.sha1(slug.encode()).hexdigest()[:8]}"
    return slug


def parse_uri(uri: str, transport: str = "tcp", options: dict[str, str] | None = None) -> StreamSpec | None:
    """The :class:`StreamSpec` of a camera, stream or test-source URI; None for files."""
    extra = dict(options or {})
    if uri.startswith("lavfi:"):
        graph = uri[len("lavfi:"):]
        if not graph:
            raise SourceError("lavfi: needs a filter graph, e.g. lavfi:testsrc2=size=1280x720:rate=30")
        return StreamSpec(graph, "lavfi", extra, True, True, _slug(graph.split("=")[0]))
    if uri.startswith("webcam:") or re.fullmatch(r"/dev/video\d+", uri):
        device = uri.removeprefix("webcam:")
        if not device:
            raise SourceError("webcam: needs a device number or name, e.g. webcam:0")
        name = "webcam" + _slug(device.rsplit("/", 1)[-1].replace("video", ""))
        if sys.platform == "darwin":
            return StreamSpec(f"{device}:none" if device.isdigit() else device, "avfoundation", extra, True,
                              default_id=name)
        if sys.platform == "win32":
            return StreamSpec(device if device.startswith("video=") else f"video={device}", "dshow", extra, True,
                              default_id=name)
        path = f"/dev/video{device}" if device.isdigit() else device
        return StreamSpec(path, "v4l2", extra, True, default_id=name)
    if scheme := re.match(r"[A-Za-z][\w+.-]*(?=://)", uri):  # RTSP:// is rtsp://, as FFmpeg has it
        uri = scheme.group().lower() + uri[scheme.end():]
        if not uri.startswith("file:"):
            _check_host_port(uri)
    host_path = re.sub(r"^[a-z]+://([^@/]*@)?", "", uri).split("?")[0].split("#")[0]
    if uri.startswith(STREAM_SCHEMES):
        if uri.startswith(("rtsp://", "rtsps://")):
            if transport not in ("tcp", "udp"):
                raise SourceError(f"source.transport: must be tcp or udp, got {transport!r}")
            extra.setdefault("rtsp_transport", transport)
        return StreamSpec(uri, None, extra, True, default_id=_slug(host_path))
    if uri.startswith(HTTP_SCHEMES) or (re.match(r"[A-Za-z][\w+.-]*://", uri) and not uri.startswith("file:")):
        # HTTP, and any other scheme FFmpeg may have (ftp://, ...): live or not, decided once open
        return StreamSpec(uri, None, extra, None, default_id=_slug(host_path))
    return None


def _check_host_port(uri: str) -> None:
    """A URL whose host or port cannot be right (``:99999``, ``:abc``, ``[zz]``, no host) is
    refused when the source is added, instead of retried for ever."""
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"{shown(uri)}: not a valid URL ({exc}); check its host and port") from None
    if not host:
        raise ConfigError(f"{shown(uri)}: no host in the URL; give scheme://host[:port]/path")
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{shown(uri)}: port {port} is outside 1-65535")


def local_path(uri: str) -> str:
    """The path of a ``file:`` URI (``file:///data/a.mp4``, percent-encoding decoded); any other URI unchanged."""
    if not uri.startswith("file:"):
        return uri
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise SourceError(f"{redact(uri)}: a file: URI names a file on this machine (file:///path); "
                          f"got host {parts.netloc!r}")
    return url2pathname(parts.path)


_TCP_PORTS: dict[str, int] = {
    "rtsp://": 554, "rtsps://": 322, "rtmp://": 1935, "rtmps://": 443, "http://": 80, "https://": 443,
}


def _listening(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=0.2).close()
        return True
    except OSError:
        return False


class _CaptureClock:
    """Capture wall time of a stream's frames from its own timestamps: arrival minus
    stream time, at its smallest, so a frame that waited in a socket or decoder buffer
    still counts that wait as latency. The anchor may creep up 1 ms per second, to
    follow a camera clock slower than ours."""

    DRIFT = 0.001

    def __init__(self) -> None:
        self.anchor: float | None = None
        self.at = 0.0

    def captured(self, stream_seconds: float, arrival: float) -> float:
        allowed = None if self.anchor is None else self.anchor + self.DRIFT * (arrival - self.at)
        offset = arrival - stream_seconds
        self.anchor = offset if allowed is None else min(offset, allowed)
        self.at = arrival
        return self.anchor + stream_seconds


@dataclasses.dataclass
class Reconnect:
    """Capped exponential backoff: ``initial``, ``2 * initial``, ... up to ``max`` seconds
    between attempts; ``attempts`` failures in a row end the source (None: never)."""

    initial: float = 1.0
    max: float = 30.0
    attempts: int | None = None

    def delay(self, failures: int) -> float:
        return min(self.initial * 2 ** max(failures - 1, 0), self.max)


class LiveSource:
    """A source that may stop delivering and come back.

    Args:
        uri: Camera, stream or test-source URI (see the module docstring).
        source_id: Name in frames and events (default: from the URI, without credentials).
        transport: RTSP over ``tcp`` or ``udp``.
        timeout: Seconds to open, and seconds without a packet before the source is down.
        reconnect: Backoff policy.
        realtime: Pace frames to their pts (default: for generated ``lavfi`` sources).
        options: More FFmpeg options (``video_size``, ``framerate``, ``input_format`` for webcams).
        hwaccel: See :func:`open_container`.
        spec: A parsed URI (default: parsed from ``uri``).
        packets: The clip ring: every packet of every connection goes there too.

    Attributes:
        fps: Frame rate once connected (None before).
    """

    live = True
    total_frames = None

    def __init__(self, uri: str, source_id: str | None = None, *, transport: str = "tcp", timeout: float = 10.0,
                 reconnect: Reconnect | None = None, realtime: bool | None = None,
                 options: dict[str, str] | None = None, hwaccel: str = "none", spec: StreamSpec | None = None,
                 packets: PacketRing | None = None) -> None:
        spec = spec or parse_uri(uri, transport, options)
        if spec is None:
            raise SourceError(f"{uri}: not a camera or stream URI (rtsp://, http(s)://, webcam:N, lavfi:...)")
        self.uri = uri
        self.spec = spec
        self.label = shown(uri)
        self.id = source_id or spec.default_id
        self.timeout = timeout
        self.reconnect = reconnect or Reconnect()
        self.realtime = spec.realtime if realtime is None else realtime
        self.hwaccel = hwaccel
        self.fps: Fraction | None = None
        self.packets = packets

    def _address(self) -> tuple[str, int] | None:
        """Host and TCP port of a network source (None for devices, generated and UDP sources)."""
        if not self.spec.url.startswith(tuple(_TCP_PORTS)):
            return None
        try:
            parts = urlsplit(self.spec.url)
            port = parts.port or _TCP_PORTS[self.spec.url.split("://")[0] + "://"]
        except (ValueError, KeyError):
            return None
        return (parts.hostname, port) if parts.hostname else None

    def _wait(self, seconds: float, stop: threading.Event) -> None:
        """The backoff wait, cut short when a server that refused connections listens
        again: a TCP connect every 0.25 s costs little, and the camera is back at once."""
        address = self._address()
        if address is None or _listening(address):
            stop.wait(seconds)  # no port to watch, or the server is up but failing: plain backoff
            return
        deadline = time.monotonic() + seconds
        while not stop.wait(min(0.25, max(deadline - time.monotonic(), 0))):
            if time.monotonic() >= deadline or _listening(address):
                return

    def _open(self) -> Any:
        container = open_container(self.spec.url, self.label, format=self.spec.format, options=self.spec.options,
                                   timeout=(self.timeout, self.timeout), hwaccel=self.hwaccel)
        _, self.fps = video_stream(container, self.label)
        return container

    def frames(self, sampler: Sampling, stop: threading.Event | None = None) -> Iterator[Frame | SourceStatus]:
        """Frames the sampler keeps, with :class:`SourceStatus` items where the source
        went down and came back; ends when ``stop`` is set, when a generated source ends,
        or (raising SourceError) after ``reconnect.attempts`` failed attempts in a row."""
        stop = stop or threading.Event()
        timeline = _LiveTimeline(self.realtime, stop)
        outage = _Outage()
        while not stop.is_set():
            container = yield from self._connect(timeline, outage, stop)
            if container is None:
                return
            why = yield from self._play(container, sampler, timeline, stop)
            if why is None or stop.is_set():
                return
            outage.since = time.time()
            log.warning("%s: %s; reconnecting", self.label, why)
            yield SourceStatus(self.id, "down", timeline.index, timeline.last_pts, outage.since, why)

    def _connect(self, timeline: _LiveTimeline, outage: _Outage,
                 stop: threading.Event) -> Generator[SourceStatus, None, Any]:
        """Opens the stream, retrying with backoff; yields ``down`` at the first failure
        and ``up`` once connected after an outage; returns the container (None: stopped)."""
        while not stop.is_set():
            try:
                container = self._open()
            except UnsupportedError:  # no retry brings a protocol into this build
                raise
            except (av.error.FFmpegError, SourceError, OSError) as exc:
                why = self._why_not_connected(exc)
                outage.failures += 1
                if outage.since is None:
                    outage.since = time.time()
                    yield SourceStatus(self.id, "down", timeline.index, timeline.last_pts, outage.since, why)
                if self.reconnect.attempts is not None and outage.failures > self.reconnect.attempts:
                    raise SourceError(
                        f"{self.label}: gave up after {outage.failures} failed connection attempt(s) ({why}); "
                        f"check the address and that the camera is on, or raise source.reconnect.attempts"
                    ) from None
                wait = self.reconnect.delay(outage.failures)
                log.warning("%s: %s; retrying in %.1fs (attempt %d)", self.label, why, wait, outage.failures + 1)
                self._wait(wait, stop)
                continue
            if outage.since is not None:
                up, attempts = time.time(), outage.failures + 1
                log.info("%s: connected again after %.1fs (%d attempt(s))", self.label, up - outage.since, attempts)
                yield SourceStatus(self.id, "up", timeline.index, timeline.last_pts, up, downtime=up - outage.since,
                                   attempts=attempts)
            outage.since, outage.failures = None, 0
            return container
        return None

    def _why_not_connected(self, exc: BaseException) -> str:
        if isinstance(exc, SourceError):
            return exc.args[0]
        if isinstance(exc, av.error.ExitError):
            return f"cannot connect: no answer within {self.timeout:g}s"
        return f"cannot connect: {reason(exc)}"

    def _play(self, container: Any, sampler: Sampling, timeline: _LiveTimeline,
              stop: threading.Event) -> Generator[Frame, None, str | None]:
        """Decodes one connection; returns why it stopped delivering (None: a generated
        source that finished)."""
        stream = container.streams.video[0]
        timeline.connect(1 / self.fps)
        ended = False
        try:
            yield from decode(container, stream, self.id, sampler, stop, position=timeline, fps=self.fps,
                              bad_packet=self._bad_packet, place=timeline.place, packets=self.packets)
            ended, why = True, "the stream ended"
        except av.error.ExitError:  # PyAV's read timeout interrupted FFmpeg
            why = f"no data for {self.timeout:g}s"
        except av.error.FFmpegError as exc:
            why = f"stream lost: {reason(exc)}"
        finally:
            container.close()
        return None if ended and self.spec.format == "lavfi" else why

    def _bad_packet(self, exc: av.error.FFmpegError) -> None:
        log.debug("%s: packet dropped (%s)", self.label, reason(exc))


@dataclasses.dataclass
class _Outage:
    """Since when a live source is down (None: it is up) and its failed attempts in a row."""

    since: float | None = None
    failures: int = 0


class _LiveTimeline(Position):
    """A live source's timeline, around the decode loop: pts continue across reconnects
    (the gap measured on the wall clock) and never step back; frames may be paced to
    their pts; capture times come from the stream's own clock (:class:`_CaptureClock`)."""

    def __init__(self, realtime: bool, stop: threading.Event) -> None:
        super().__init__()
        self.realtime = realtime
        self.stop = stop
        self.last_wall: float | None = None
        self.connect(Fraction(1, 30))

    def connect(self, step: Fraction) -> None:
        """A new connection: its timestamps start anew, after the gap."""
        self.step = step
        gap = Fraction(round((time.time() - self.last_wall) * 1000), 1000) if self.last_wall is not None else 0
        self.base = self.last_pts + gap
        self.first: Fraction | None = None
        self.clock = _CaptureClock()
        self.paced_from = time.monotonic()

    def place(self, t: Fraction | None, index: int, last_pts: Fraction) -> tuple[Fraction, float] | None:
        """The pts and capture time of the frame at stream time ``t`` (None: it has no
        timestamp); None when ``stop`` was set while pacing."""
        if t is not None:
            self.first = t if self.first is None else self.first
            pts = self.base + (t - self.first)
        else:
            pts = last_pts + self.step
        if index and pts <= last_pts:  # never step back (a camera's clock reset)
            pts = last_pts + self.step
        if self.realtime:
            ahead = float(pts - self.base) - (time.monotonic() - self.paced_from)
            if ahead > 0 and self.stop.wait(ahead):
                return None
        self.last_wall = time.time()
        return pts, self.clock.captured(float(pts - self.base), self.last_wall)
