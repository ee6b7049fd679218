"""Frame sources: video files (anything FFmpeg reads, through PyAV) and image sequences.

A source yields :class:`~streamer.types.Frame` objects in decode order; the sampler
decides on each frame before its pixels are converted, so skipped frames cost no
conversion. Problems found while decoding (corrupt packets, a file that ends early)
are raised as :class:`SourceError` only after every readable frame has been yielded,
so nothing readable is lost.
"""

from __future__ import annotations

import glob
import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamer.decode import Position, decode, open_container, reason, video_stream
from streamer.errors import ConfigError, SourceError
from streamer.live import HTTP_SCHEMES, LiveSource, Reconnect, local_path, parse_uri
from streamer.mot import read_seqinfo
from streamer.packets import PacketRing
from streamer.protocols import Sampling
from streamer.types import Frame
from streamer.urls import redact, shown

log = logging.getLogger(__name__)

__all__ = ["ImageSequenceSource", "LiveSource", "VideoSource", "open_source"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class VideoSource:
    """A video file (or a finite HTTP video) decoded with PyAV in FFmpeg's own threads.

    Attributes:
        id: Source id used in frames and events.
        label: The URI as logs show it (credentials redacted).
        fps: Average frame rate as an exact Fraction.
        total_frames: Frames the container declares (None when unknown).
        size: ``(height, width)``.
    """

    live = False

    def __init__(self, uri: str, source_id: str | None = None, *, hwaccel: str = "none", timeout: float = 10.0,
                 container=None, packets: PacketRing | None = None) -> None:
        self.uri = uri
        self.packets = packets  # the clip ring: every demuxed packet goes there too
        spec = parse_uri(uri)
        if spec is None and not Path(uri).is_file():
            raise SourceError(f"{uri}: no such file; check the path")
        self.label = shown(uri)
        self.id = source_id or (spec.default_id if spec else Path(uri).stem)
        try:
            self._container = container or open_container(
                spec.url if spec else uri, self.label, timeout=timeout if spec else None, hwaccel=hwaccel,
                format=spec.format if spec else None, options=spec.options if spec else None,
            )
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.label}: cannot be opened as a video ({reason(exc)})") from None
        self._stream, self.fps = video_stream(self._container, self.label)
        stream = self._stream
        self.total_frames = stream.frames or None
        # Declared length in seconds (container header), to tell a truncated file.
        if stream.duration is not None and stream.time_base is not None:
            self.duration: Fraction | None = stream.duration * stream.time_base
        elif self._container.duration is not None:
            self.duration = Fraction(self._container.duration, av.time_base)
        else:
            self.duration = None
        self.size = (stream.codec_context.height, stream.codec_context.width)

    def frames(self, sampler: Sampling, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Decoded frames the sampler keeps, as RGB; raises SourceError at the end if
        packets were corrupt or the file ended before its declared length."""
        position = Position()
        errors: list[str] = []
        stop = stop or threading.Event()
        try:
            yield from decode(self._container, self._stream, self.id, sampler, stop, position=position, fps=self.fps,
                              bad_packet=lambda exc: errors.append(reason(exc)), packets=self.packets)
        except av.error.FFmpegError as exc:
            errors.append(reason(exc))
        finally:
            self._container.close()
        if not stop.is_set():  # stopped early on purpose: the rest was not read, not missing
            self._check_complete(errors, position)

    def _check_complete(self, errors: list[str], position: Position) -> None:
        """Raises SourceError, after every readable frame, if the file was damaged."""
        index, last_pts = position.index, position.last_pts
        if errors:
            raise SourceError(
                f"{self.label}: {len(errors)} packet(s) could not be decoded ({errors[0]}); "
                f"the file is corrupt, {index} frames were read"
            )
        if self.total_frames and index < self.total_frames:
            raise SourceError(
                f"{self.label}: ended after {index} of {self.total_frames} frames; "
                f"the file is truncated"
            )
        if self.duration and last_pts + 2 / self.fps < self.duration:
            raise SourceError(
                f"{self.label}: ended at {float(last_pts):.2f}s of {float(self.duration):.2f}s "
                f"({index} frames); the file is truncated"
            )


class ImageSequenceSource:
    """Images from a folder (sorted by name), a MOT sequence folder (``img1/``), or a glob.

    The frame rate is ``fps`` if given, else ``frameRate`` from a ``seqinfo.ini`` beside
    the images, else 30. ``pts`` is ``index / fps``.
    """

    live = False

    def __init__(self, uri: str, source_id: str | None = None, fps: float | None = None) -> None:
        path = Path(uri)
        info_dir = None
        if path.is_dir():
            if (path / "img1").is_dir():
                info_dir, path = path, path / "img1"
            else:
                info_dir = path.parent if (path.parent / "seqinfo.ini").is_file() else path
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            stem = (info_dir if info_dir and info_dir != path else path).name
        else:
            files = sorted(Path(p) for p in glob.glob(uri) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            stem = Path(uri).parent.name
        if not files:
            raise SourceError(f"{uri}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        self.files = files
        self.id = source_id or stem
        self.label = shown(uri)
        info = read_seqinfo(info_dir / "seqinfo.ini") if info_dir else {}
        rate = fps or float(info.get("framerate", 0)) or 30.0
        self.fps = Fraction(rate).limit_denominator(1001000)
        self.total_frames = len(files)
        self.size = self._read(files[0]).shape[:2]

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{path}: not an image OpenCV can read")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def frames(self, sampler: Sampling, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Images the sampler keeps, as RGB (read only when kept)."""
        for index, path in enumerate(self.files):
            if stop is not None and stop.is_set():
                return
            pts = Fraction(index) / self.fps
            if sampler.keep(index, pts):
                yield Frame(self.id, index, pts, self._read(path), time.time(), sampler.detect())


def _interruptible(open_it):
    """``open_it()`` on a thread of its own, waited for in short steps: a signal handler
    (SIGTERM, Ctrl-C) runs in the waiting thread at once and may raise there, where inside
    PyAV's open it ran only when the open's own timeout (10 s) ended. An open left so
    closes what it opened when it returns."""
    done = threading.Event()
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = open_it()
        except BaseException as exc:  # handed to the waiting thread
            result["error"] = exc
        done.set()
        if result.get("left") and "value" in result:
            result["value"].close()

    threading.Thread(target=target, name="open", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except BaseException:
        result["left"] = True
        if done.is_set() and "value" in result:
            result["value"].close()
        raise
    if "error" in result:
        raise result["error"]
    return result["value"]


def open_source(uri: str, source_id: str | None = None, fps: float | None = None, *, live: bool | None = None,
                transport: str = "tcp", timeout: float = 10.0, reconnect: Reconnect | None = None,
                realtime: bool | None = None, options: dict[str, str] | None = None, hwaccel: str = "none",
                packets: PacketRing | None = None):
    """The source for ``uri``: a camera, stream or test source (:class:`LiveSource`), an
    image folder or glob, or a video file.

    ``live`` None decides by the URI: network streams, webcams and ``lavfi:`` are live;
    an ``http(s)://`` URL is live when FFmpeg finds no duration (live HLS), else it is
    read like a file, every frame. ``packets``: the source's clip ring (video sources only).
    """
    if not uri:
        raise SourceError("no source given; pass a video file, image folder, glob, camera or stream URL")
    uri = local_path(uri)
    spec = parse_uri(uri, transport, options)
    if spec is not None:
        def live_source():
            return LiveSource(uri, source_id, timeout=timeout, reconnect=reconnect, realtime=realtime,
                              hwaccel=hwaccel, spec=spec, packets=packets)
        if live is None and spec.live is None:  # HTTP: ask the server whether it has an end
            try:
                container = _interruptible(lambda: open_container(spec.url, redact(uri), options=spec.options,
                                                                  timeout=timeout))
            except (av.error.HTTPClientError, av.error.InvalidDataError) as exc:  # an answer: no such stream
                raise SourceError(f"{redact(uri)}: cannot be opened ({reason(exc)})") from None
            except (av.error.FFmpegError, OSError) as exc:
                if not uri.startswith(HTTP_SCHEMES):  # ftp:// and the like: files on a server
                    raise SourceError(f"{redact(uri)}: cannot be opened ({reason(exc)})") from None
                # no answer: an HTTP/HLS camera that is off, waited for like an RTSP one
                log.warning("%s: cannot be opened (%s); waiting for it as a live stream (source.live: false "
                            "fails at once instead)", redact(uri), reason(exc))
                return live_source()
            if container.duration is None:
                container.close()
                return live_source()
            return VideoSource(uri, source_id, container=container, packets=packets)
        if live if live is not None else spec.live:
            return live_source()
        return VideoSource(uri, source_id, hwaccel=hwaccel, timeout=timeout, packets=packets)
    if live:
        raise SourceError(f"{uri}: source.live is set but this is a file or folder, not a camera or stream")
    path = Path(uri)
    try:
        path.stat()
    except FileNotFoundError:
        pass  # a glob, or a file that is not there: said below, as such
    except (OSError, ValueError) as exc:  # a name too long, a loop of links, a NUL byte
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise SourceError(f"{redact(uri)}: cannot be read ({why}); check the input path") from None
    if path.is_dir() or any(ch in uri for ch in "*?[") or path.suffix.lower() in IMAGE_SUFFIXES:
        if packets is not None:
            raise ConfigError(f"{uri}: clips are cut from a video's own packets and images have none; "
                              f"turn output.clips off for this source")
        return ImageSequenceSource(uri, source_id, fps)
    return VideoSource(uri, source_id, hwaccel=hwaccel, packets=packets)
