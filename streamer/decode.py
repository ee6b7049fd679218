"""Decoding with PyAV: the one loop every video source runs, and opening containers with
hardware decoding where there is some.

:func:`decode` demuxes and decodes, gives each decoded frame its index (every decoded
frame counts) and its exact pts (``frame.pts * time_base``), asks the sampler before the
pixel conversion (a skipped frame costs none), and yields
:class:`~streamer.types.Frame` objects; a damaged packet goes to a callback and is
skipped. A file runs it as it is. A camera wraps it: reconnecting around it, and, per
frame, a ``place`` hook that continues the pts across reconnects, paces generated
sources and reads the capture clock (:mod:`streamer.live`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np

from streamer.errors import SourceError, UnsupportedError
from streamer.packets import PacketRing
from streamer.protocols import Sampling
from streamer.types import Frame

log = logging.getLogger(__name__)

__all__ = [
    "HWACCELS", "HW_FAILURES", "Place", "Position", "decode", "open_container", "reason", "upright", "video_stream",
]

# The one list of hardware decoders a config may name (config, CLI and open_container use it).
HWACCELS = ("auto", "none", "cuda", "vaapi", "qsv", "videotoolbox")
# What `auto` tries, in order, on each platform.
_AUTO = {"linux": ("cuda", "vaapi", "qsv"), "darwin": ("videotoolbox",), "win32": ("cuda", "d3d11va", "qsv")}



def reason(exc: BaseException) -> str:
    """Why FFmpeg failed, without the URL: its strerror (str(exc) quotes the URL,
    credentials included)."""
    text = getattr(exc, "strerror", None)
    if not text:
        text = type(exc).__name__ if isinstance(exc, av.error.FFmpegError) else str(exc)
    return text


class Position:
    """How far a source has decoded: ``index``, the index the next decoded frame gets
    (every decoded frame counts, kept or not), and ``last_pts``, the pts of the last one.
    :func:`decode` updates it when it ends, however it ends."""

    def __init__(self) -> None:
        self.index = 0
        self.last_pts = Fraction(0)


class Place(Protocol):
    """A live source's per-frame hook in :func:`decode` (see :mod:`streamer.live`)."""

    def __call__(self, t: Fraction | None, index: int, last_pts: Fraction) -> tuple[Fraction, float] | None:
        """The pts and capture time of decoded frame ``index`` at stream time ``t``
        (None: it has no timestamp), ``last_pts`` being the previous frame's; None: stop."""
        ...


def video_stream(container: Any, label: str) -> tuple[Any, Fraction]:
    """The container's first video stream, set to decode in FFmpeg's threads, and its
    frame rate (30 when it declares none); closes the container and raises SourceError
    when it has no video."""
    if not container.streams.video:
        container.close()
        raise SourceError(f"{label}: has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream, Fraction(stream.average_rate or stream.guessed_rate or Fraction(30))


def decode(container: Any, stream: Any, source_id: str, sampler: Sampling, stop: threading.Event, *,
           position: Position, fps: Fraction, bad_packet: Callable[[av.error.FFmpegError], None],
           place: Place | None = None, packets: PacketRing | None = None) -> Iterator[Frame]:
    """The frames of ``stream`` the sampler keeps, as RGB, until the stream ends or
    ``stop`` is set; demuxer errors are raised to the caller.

    A frame's pts is ``frame.pts * time_base`` (exact), or ``index / fps`` when it has
    none, and its capture time is when it was converted. ``place`` (live sources) maps
    the stream time to the source's own pts and capture time instead, or says stop.
    ``packets`` (clips) gets every demuxed packet before it is decoded, whatever the
    sampler keeps, and learns the connection's pts offset from its first frame.
    """
    time_base = stream.time_base
    index, last_pts = position.index, position.last_pts
    captured = 0.0
    unanchored = packets is not None
    if packets is not None:
        packets.connect(stream)
    try:
        for packet in container.demux(stream):
            if stop.is_set():
                return
            if packets is not None:
                packets.add(packet)
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:  # one damaged packet: the next may be fine
                bad_packet(exc)
                continue
            for frame in decoded:
                raw = frame.pts
                pts = Fraction(raw) * time_base if raw is not None and time_base is not None else None
                if place is not None:
                    placed = place(pts, index, last_pts)
                    if placed is None:
                        return
                    pts, captured = placed
                elif pts is None:
                    pts = Fraction(index) / fps
                last_pts = pts
                if unanchored and raw is not None:
                    packets.anchor(Fraction(raw) * time_base, pts)  # type: ignore[union-attr]
                    unanchored = False
                if sampler.keep(index, pts):
                    image = upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                    yield Frame(source_id, index, pts, image, time.time() if place is None else captured,
                                sampler.detect())
                index += 1
    finally:  # locals in the loop, the position once: the hot loop pays nothing for it
        position.index, position.last_pts = index, last_pts
        if packets is not None:
            packets.gap()


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """The picture as it is meant to be seen: a frame whose display matrix rotates it
    (phone video: ``rotation`` -90 for portrait) turned by that many degrees
    counterclockwise, as FFmpeg's players do; boxes and outputs then use the upright size."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


class _DeviceFailures:
    """Hardware devices that could not be opened in this process: each is tried once,
    and its failure is told once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: set[str] = set()

    def __contains__(self, device: str) -> bool:
        with self._lock:
            return device in self._failed

    def add(self, device: str) -> bool:
        """Records a failure; True the first time for this device."""
        with self._lock:
            first = device not in self._failed
            self._failed.add(device)
            return first

    def clear(self) -> None:
        with self._lock:
            self._failed.clear()


HW_FAILURES = _DeviceFailures()


def _devices(hwaccel: str) -> tuple[str, ...]:
    if hwaccel not in HWACCELS:
        raise SourceError(f"decode.hwaccel: must be one of {', '.join(HWACCELS)}, got {hwaccel!r}")
    if hwaccel == "auto":
        return _AUTO.get(sys.platform, ())
    return () if hwaccel == "none" else (hwaccel,)


def open_container(url: str, label: str, *, format: str | None = None, options: dict[str, str] | None = None,
                   timeout: float | tuple[float, float] | None = None, hwaccel: str = "none") -> Any:
    """``av.open`` for reading, with hardware decoding when asked and available.

    A device that cannot be used is tried once per process; the source then decodes in
    software after one warning (``auto``: one info line).
    """
    try:
        return _open(url, label, format, options, timeout, hwaccel)
    except av.error.ProtocolNotFoundError:
        scheme = url.split("://", 1)[0] if "://" in url else url.split(":", 1)[0]
        raise UnsupportedError(
            f"{label}: this FFmpeg build (PyAV {av.__version__}) has no {scheme}:// support; use another "
            f"protocol, or a PyAV built against an FFmpeg that has it"
        ) from None


def _open(url: str, label: str, format: str | None, options: dict[str, str] | None,
          timeout: float | tuple[float, float] | None, hwaccel: str) -> Any:
    kwargs: dict[str, Any] = {"format": format, "options": dict(options or {}), "timeout": timeout}
    devices = _devices(hwaccel)
    if not devices:
        return av.open(url, **kwargs)
    from av.codec.hwaccel import HWAccel, hwdevices_available

    compiled = set(hwdevices_available())
    for device in devices:
        if device in HW_FAILURES:
            continue
        if device not in compiled:
            why = f"this PyAV/FFmpeg build has no {device} support (it has: {', '.join(sorted(compiled)) or 'none'})"
        else:
            try:
                container = av.open(url, hwaccel=HWAccel(device_type=device, allow_software_fallback=True), **kwargs)
                log.debug("%s: decoding on %s", label, device)
                return container
            except av.error.FFmpegError as exc:
                why = f"the {device} device could not be opened ({reason(exc)})"
        if HW_FAILURES.add(device):
            level = logging.INFO if hwaccel == "auto" else logging.WARNING
            log.log(level, "decode.hwaccel %s: %s; decoding in software", device, why)
    return av.open(url, **kwargs)
