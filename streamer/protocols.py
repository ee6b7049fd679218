"""The stage protocols the runner speaks: :class:`Source`, :class:`Detector`,
:class:`Tracker` and :class:`Sink`.

They live beside the data types (:mod:`streamer.types`) and import nothing else, so that
``trackers`` and ``sinks`` (and any third-party stage) can import them without pulling
in the pipeline. The runner (:mod:`streamer.pipeline`) knows stages only through these:
a new detector backend, tracker or sink is a new class plus a config variant that
builds it (:mod:`streamer.config`), never a branch in the runner.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

import numpy as np

from streamer.types import DeliveryStats, Detections, Event, Frame, SourceStatus

__all__ = ["Detector", "Sampling", "Sink", "Source", "Tracker"]


class Sampling(Protocol):
    """Which decoded frames a source converts and hands on (see :class:`streamer.sampling.Sampler`)."""

    def keep(self, index: int, pts: Fraction) -> bool: ...

    def detect(self) -> bool: ...


@runtime_checkable
class Source(Protocol):
    """Where frames come from: a file, an image folder, a camera, a stream.

    Attributes:
        id: Name in frames, events and output paths.
        label: How logs name it (credentials redacted).
        live: A camera or stream (may drop frames, reconnects) rather than a file.
        fps: Frame rate (None for a live source before it first connects).
        total_frames: Frames it will decode, when known.
    """

    id: str
    label: str
    live: bool
    fps: Fraction | None
    total_frames: int | None

    def frames(self, sampler: Sampling, stop: threading.Event | None = None) -> Iterator[Frame | SourceStatus]:
        """Kept frames in order, with :class:`SourceStatus` items where a live source went
        down or came back; ends at the source's end or when ``stop`` is set. Raises
        :class:`~streamer.errors.SourceError` after the last readable frame when the
        source failed (corrupt, truncated, gave up reconnecting)."""
        ...


@runtime_checkable
class Detector(Protocol):
    """Finds objects in a batch of frames: one :class:`Detections` per frame, in
    original-image pixels.

    Attributes:
        names: Class id to class name.
        backend: What runs the detector and why (the run's summary names it), e.g.
            ``openvino (auto: the fastest installed for cpu)``.
    """

    names: dict[int, str]
    backend: str

    def __call__(self, frames: Sequence[Frame]) -> list[Detections]: ...

    def stage_seconds(self) -> dict[str, float]:
        """Seconds spent per internal step so far (``preprocess``, ``forward``...); may be empty."""
        ...


@runtime_checkable
class Tracker(Protocol):
    """Assigns persistent ids to detections, one frame at a time.

    ``update`` is called on every frame the detector ran on, with zero boxes or more;
    ``period`` is the number of frames since the previous call (the detection interval),
    so predictions and ages stay right. It returns the input rows that belong to
    confirmed tracks, with ``tracker_id`` filled and the tracker's own box in
    ``data["track_xyxy"]``. ``predict(steps)`` gives the tracks reported by the last
    ``update``, moved ``steps`` frames past it, without changing any state (for frames
    the detector skipped). ``alive_ids`` are the ids of every track the tracker still
    holds, reported or not. ``reset`` forgets every track (a source's gap).
    """

    @property
    def alive_ids(self) -> np.ndarray: ...

    def update(self, detections: Detections, *, period: int = 1) -> Detections: ...

    def predict(self, steps: int) -> Detections: ...

    def reset(self) -> None: ...


class Sink(Protocol):
    """Receives one source's processed frames, or every source's events, in order.

    The lifecycle, all driven by the runner's thread:

    - ``open()`` once, before anything else (files are created here);
    - ``write(frame, tracks, events)`` per processed frame, ``write_events(events)`` for
      events raised between frames (a source going down, tracks ended at the end);
    - ``source_changed(status)`` when a source goes ``down``, comes back ``up`` or is
      ``removed`` from a running pipeline;
    - ``annotate(frame, tracks, events)`` on a source's own sinks, before any sink sees
      those events: a sink that keeps evidence (clips, snapshots) returns them with its
      fields added; ``pending_events()`` after each frame, status change and
      ``begin_close()``: events the sink raised itself (``clip_ready``), which the
      runner then writes to every sink like the others;
    - ``begin_close()`` when no more input will come (slow sinks start their final
      flush, so that several flush at the same time), then ``close()``, which finishes
      the output as a valid file, also after an error or Ctrl-C.

    Sinks subclass this class and override what they need: every method but ``write``
    has a default that does nothing.
    """

    def open(self) -> None:
        """Create the output (called once, before the first write)."""

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None: ...

    def write_events(self, events: Sequence[Event]) -> None:
        """Events not tied to a frame's pixels."""

    def annotate(self, frame: Frame | None, tracks: Detections | None, events: list[Event]) -> list[Event]:
        """``events`` with this sink's evidence added (``frame`` None: events raised
        between frames); called on a source's own sinks before any sink writes them."""
        return events

    def pending_events(self) -> list[Event]:
        """Events this sink raised since the last call (any thread may have made them)."""
        return []

    def source_changed(self, status: SourceStatus) -> None:
        """A source went ``down``, came ``up`` or was ``removed``."""

    def analytics_changed(self, analytics: Any) -> None:
        """The source's lines and zones (``streamer.config.AnalyticsConfig``) were
        replaced at runtime, from the next frame on (sinks that draw them)."""

    def begin_close(self) -> None:
        """No more input will come: start finishing now."""

    def close(self) -> None:
        """Finish the output; idempotent."""

    def delivery(self) -> DeliveryStats | None:
        """Where delivery stands, for sinks that send events over a network (None: not one)."""
        return None

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
