"""Annotated video: H.264 in MP4 (or any container PyAV writes), encoded on its own thread."""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from sinks.annotate import Overlay, draw
from streamer.errors import SinkError
from streamer.protocols import Sink
from streamer.types import Detections, Event, Frame

log = logging.getLogger(__name__)

__all__ = ["VideoSink", "add_video_stream"]

_END = object()


def add_video_stream(container, fps: Fraction, width: int, height: int, codec: str = "libx264", crf: int = 23):
    """A ``yuv420p`` video stream of ``width x height`` in a container opened for
    writing; frames get pts in frames of ``1 / fps`` (the encoder's time base)."""
    options = {"crf": str(crf), "preset": "veryfast"} if codec == "libx264" else {}
    # Setting the stream's time_base by hand makes the MP4 muxer reject packets.
    stream = container.add_stream(codec, rate=fps, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    return stream


class VideoSink(Sink):
    """Writes every processed frame with its tracks drawn.

    One output frame per processed frame, at ``fps``, pts ``0, 1, 2, ...`` in a
    ``1 / fps`` time base; with ``timed`` (live sources, which drop frames and have
    gaps) each frame keeps its own time instead, so the video plays at the real pace.
    Drawing and encoding run on a worker thread behind a bounded queue; ``close()``
    flushes the encoder and finishes the container, so the file plays also after an
    error upstream.

    Args:
        path: Output file; the container follows its suffix (``.mp4``, ``.mkv``).
        fps: Frame rate of the processed frames (exact).
        names: Class names for labels.
        codec: Encoder name.
        crf: Quality for x264 (lower is better).
        queue_size: Frames waiting for the encoder before ``write`` blocks.
        timed: Place frames by their pts rather than one after another.
        analytics: The source's lines and zones, drawn with their counts.
        trail: Points of each track's drawn path (0: none).
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction,
        names: dict[int, str] | None = None,
        codec: str = "libx264",
        crf: int = 23,
        queue_size: int = 16,
        timed: bool = False,
        analytics: Any = None,
        trail: int = 30,
    ) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001000)
        self.names = names or {}
        self.codec = codec
        self.crf = crf
        self.frames = 0
        self.timed = timed
        self._overlay = Overlay(analytics, trail)  # used on the encoder thread only, fed in frame order
        self._first_pts: Fraction | None = None
        self._last = -1
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._container = None
        self._stream = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise SinkError(f"{self.path}: cannot write a video here ({exc})") from None
        self._thread = threading.Thread(target=self._run, name="video-sink", daemon=True)
        self._thread.start()

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event] = ()) -> None:
        if self._error is not None:
            raise SinkError(f"{self.path}: encoding failed ({self._error})") from self._error
        self._put((frame.image, tracks, frame.pts, events))

    def write_events(self, events: Sequence[Event]) -> None:
        if events:  # between frames: counts and zone visits the drawing shows
            self._put((None, None, None, events))

    def analytics_changed(self, analytics: Any) -> None:
        self._put(analytics)

    def _put(self, item: object) -> None:
        """Waits for room, but never on an encoder thread that is gone."""
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._thread is None or not self._thread.is_alive():
                    return

    def _open_stream(self, height: int, width: int) -> None:
        # yuv420p needs even sizes: odd sizes get one padded row/column.
        self._stream = add_video_stream(self._container, self.fps, width + width % 2, height + height % 2,
                                        self.codec, self.crf)

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if not isinstance(item, tuple):
                    self._overlay.set_analytics(item)
                    continue
                image, tracks, pts, events = item
                self._overlay.update(image.shape[:2] if image is not None else (0, 0), tracks, events)
                if image is None:
                    continue
                if self._stream is None:
                    self._open_stream(*image.shape[:2])
                drawn = draw(image, tracks, self.names, self._overlay.scene())
                h, w = self._stream.height, self._stream.width
                if drawn.shape[0] != h or drawn.shape[1] != w:
                    if 0 <= h - drawn.shape[0] <= 1 and 0 <= w - drawn.shape[1] <= 1:
                        drawn = np.pad(drawn, ((0, h - drawn.shape[0]), (0, w - drawn.shape[1]), (0, 0)), mode="edge")
                    else:  # a camera that came back at another resolution
                        drawn = cv2.resize(drawn, (w, h), interpolation=cv2.INTER_AREA)
                vf = av.VideoFrame.from_ndarray(drawn, format="rgb24")
                if self.timed:
                    self._first_pts = pts if self._first_pts is None else self._first_pts
                    self._last = max(self._last + 1, round((pts - self._first_pts) * self.fps))
                    vf.pts = self._last
                else:
                    vf.pts = self.frames
                for packet in self._stream.encode(vf):
                    self._container.mux(packet)
                self.frames += 1
        except BaseException as exc:  # reported to the pipeline on the next write/close
            self._error = exc
            # Keep draining so a producer blocked on put() is released.
            while self._queue.get() is not _END:
                pass

    def close(self) -> None:
        if self._container is None:
            return
        if self._thread is not None:
            self._put(_END)
            self._thread.join()
            self._thread = None
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
            if self._stream is None:
                # No frame came: an MP4 without a stream is not a valid file.
                self.path.unlink(missing_ok=True)
        if self._error is not None:
            raise SinkError(f"{self.path}: encoding failed ({self._error})") from self._error
