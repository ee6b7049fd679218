"""Decoding with PyAV: the one loop every video source runs, and opening containers with
hardware decoding where there is some.

:func:`decode` demuxes and decodes, asks a :class:`Timeline` for each decoded frame's
pts and capture time, asks the sampler before the pixel conversion (a skipped frame
costs none), and yields :class:`~streamer.types.Frame` objects. What differs between a
file and a camera lives in the timeline: a file's pts are its own (exact, from the time
base); a camera's continue across reconnects, never step back and may be paced to the
wall clock. Damaged packets are handed to a callback and skipped.
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

from streamer.errors import SourceError
from streamer.protocols import Sampling
from streamer.types import Frame

log = logging.getLogger(__name__)

__all__ = ["HWACCELS", "FileTimeline", "Timeline", "decode", "open_container", "reason"]

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


class Timeline(Protocol):
    """Places decoded frames in time.

    Attributes:
        index: The index the next decoded frame gets (counts every decoded frame).
    """

    index: int

    def place(self, frame: av.VideoFrame) -> tuple[Fraction, float] | None:
        """The frame's pts (seconds, exact) and capture wall time; None to stop."""
        ...


class FileTimeline:
    """A file's own timestamps: ``pts * time_base``, or ``index / fps`` where a frame has
    none; capture time is when it was decoded."""

    def __init__(self, time_base: Fraction | None, fps: Fraction) -> None:
        self.time_base = time_base
        self.fps = fps
        self.index = 0
        self.last_pts = Fraction(0)

    def place(self, frame: av.VideoFrame) -> tuple[Fraction, float]:
        if frame.pts is not None and self.time_base is not None:
            pts = Fraction(frame.pts) * self.time_base
        else:
            pts = Fraction(self.index) / self.fps
        self.last_pts = pts
        return pts, time.time()


def decode(container: Any, stream: Any, source_id: str, sampler: Sampling, timeline: Timeline,
           stop: threading.Event, bad_packet: Callable[[av.error.FFmpegError], None]) -> Iterator[Frame]:
    """The frames of ``stream`` the sampler keeps, as RGB, until the stream ends or
    ``stop`` is set. Errors of the demuxer itself are raised to the caller."""
    for packet in container.demux(stream):
        if stop.is_set():
            return
        try:
            decoded = packet.decode()
        except av.error.FFmpegError as exc:  # one damaged packet: the next may be fine
            bad_packet(exc)
            continue
        for frame in decoded:
            placed = timeline.place(frame)
            if placed is None:
                return
            pts, captured = placed
            index = timeline.index
            timeline.index = index + 1
            if sampler.keep(index, pts):
                yield Frame(source_id, index, pts, frame.to_ndarray(format="rgb24"), captured, sampler.detect())


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
