"""The sink protocol: a context manager with one verb, ``write``."""

from __future__ import annotations

from typing import Protocol, Sequence

from streamer.types import Detections, Event, Frame


class Sink(Protocol):
    """Receives every processed frame in order, with its tracks and the events it raised.

    Sinks that take events also have ``write_events(events)`` for those raised after
    the last frame (tracks still open at the end of a stream).
    ``close()`` (or leaving the ``with`` block) finishes the output so that it is a
    valid file, also after an error or Ctrl-C.
    """

    def __enter__(self) -> "Sink": ...

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...

    def __exit__(self, *exc: object) -> None: ...
