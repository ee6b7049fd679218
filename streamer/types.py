"""The data that flows between stages: :class:`Frame`, :class:`Detections`, :class:`Event`.

``trackers`` and ``sinks`` import these types and nothing else from ``streamer``.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["DeliveryStats", "Detections", "Event", "Frame", "SourceStatus"]


@dataclasses.dataclass(eq=False, slots=True)
class Frame:
    """One decoded picture.

    Attributes:
        source_id: Name of the source the frame came from.
        index: Decoded frame number in the source, 0-based (counts every decoded frame,
            also those the sampler skipped).
        pts: Presentation time in seconds, exact (``pts * time_base`` from PyAV).
        image: ``(H, W, 3)`` uint8 RGB, C-contiguous.
        captured_at: Wall-clock time (``time.time()``) when the frame was decoded; used
            for latency of live sources.
        detect: Whether the detector runs on this frame (the sampler's detection interval).
    """

    source_id: str
    index: int
    pts: Fraction
    image: np.ndarray
    captured_at: float = 0.0
    detect: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the image in pixels."""
        return self.image.shape[0], self.image.shape[1]


def _column(name: str, value: Any, dtype: Any, n: int, width: int | None) -> np.ndarray:
    array = np.ascontiguousarray(value, dtype=dtype)
    expected = (n,) if width is None else (n, width)
    if array.shape != expected:
        raise ValueError(f"Detections.{name}: expected shape {expected}, got {array.shape}")
    return array


class Detections:
    """Boxes of one frame as a struct of arrays.

    Attributes:
        xyxy: ``(N, 4)`` float32, ``x1, y1, x2, y2`` in original-image pixels.
        confidence: ``(N,)`` float32 in ``[0, 1]``.
        class_id: ``(N,)`` int64.
        tracker_id: ``(N,)`` int64; ``-1`` where no tracker assigned one.
        data: Extra per-row arrays, each of length N, indexed along with the rest
            (trackers put their filtered box in ``data["track_xyxy"]``).

    Index it with an int array or boolean mask: ``dets[dets.confidence > 0.5]``.
    """

    __slots__ = ("xyxy", "confidence", "class_id", "tracker_id", "data")

    def __init__(
        self,
        xyxy: Any,
        confidence: Any = None,
        class_id: Any = None,
        tracker_id: Any = None,
        data: dict[str, np.ndarray] | None = None,
    ) -> None:
        xyxy = np.asarray(xyxy, dtype=np.float32)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            if xyxy.size == 0:
                xyxy = xyxy.reshape(0, 4)
            else:
                raise ValueError(f"Detections.xyxy: expected shape (N, 4), got {xyxy.shape}")
        n = len(xyxy)
        self.xyxy = np.ascontiguousarray(xyxy)
        self.confidence = _column(
            "confidence", np.ones(n) if confidence is None else confidence, np.float32, n, None
        )
        self.class_id = _column(
            "class_id", np.zeros(n) if class_id is None else class_id, np.int64, n, None
        )
        self.tracker_id = _column(
            "tracker_id", np.full(n, -1) if tracker_id is None else tracker_id, np.int64, n, None
        )
        self.data = {}
        for key, value in (data or {}).items():
            value = np.asarray(value)
            if len(value) != n:
                raise ValueError(f"Detections.data[{key!r}]: expected length {n}, got {len(value)}")
            self.data[key] = value

    @classmethod
    def _trusted(cls, xyxy, confidence, class_id, tracker_id, data) -> Detections:
        """Construct from arrays already of the right dtypes and shapes (no checks; for
        hot paths inside the package)."""
        out = cls.__new__(cls)
        out.xyxy, out.confidence, out.class_id, out.tracker_id, out.data = (
            xyxy, confidence, class_id, tracker_id, data
        )
        return out

    def take(self, index: np.ndarray, tracker_id: np.ndarray, **data: np.ndarray) -> Detections:
        """Rows ``index`` with ``tracker_id`` set and ``data`` entries added (trackers'
        output: the input rows of the reported tracks)."""
        extra = {k: v[index] for k, v in self.data.items()}
        extra.update(data)
        return Detections._trusted(
            self.xyxy[index], self.confidence[index], self.class_id[index], tracker_id, extra
        )

    @classmethod
    def empty(cls) -> Detections:
        """Zero boxes, every column present."""
        return cls(np.empty((0, 4), np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [index]
        out = Detections.__new__(Detections)
        out.xyxy = self.xyxy[index]
        out.confidence = self.confidence[index]
        out.class_id = self.class_id[index]
        out.tracker_id = self.tracker_id[index]
        out.data = {key: value[index] for key, value in self.data.items()}
        return out

    def __repr__(self) -> str:
        return f"Detections(n={len(self)})"

    def proper(self) -> Detections:
        """Only the boxes with finite coordinates and a width and height above zero (a
        box of zero size, as float32 rounding makes of a huge coordinate, has no aspect
        ratio for a tracker's motion model); itself when all are."""
        x = self.xyxy
        ok = np.isfinite(x).all(1) & (x[:, 2] > x[:, 0]) & (x[:, 3] > x[:, 1]) & np.isfinite(self.confidence)
        return self if ok.all() else self[np.flatnonzero(ok)]

    def best(self, n: int) -> Detections:
        """At most ``n`` boxes, the best scoring, in their order (a detector's ``max_det``);
        itself when it has no more."""
        if len(self) <= n:
            return self
        return self[np.sort(np.argsort(-self.confidence, kind="stable")[:n])]

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        """Rows of every part, in order."""
        if not parts:
            return cls.empty()
        keys = set(parts[0].data).intersection(*(p.data for p in parts[1:]))
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.tracker_id for p in parts]),
            {k: np.concatenate([p.data[k] for p in parts]) for k in keys},
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a source, as downstream systems receive it.

    ``id`` is deterministic: the same input produces the same ids, so consumers can
    de-duplicate deliveries. ``data`` holds type-specific fields (duration, path, ...).
    """

    id: str
    type: str
    source_id: str
    frame: int
    pts: float
    wall_time: float | None
    track_id: int | None = None
    class_id: int | None = None
    class_name: str | None = None
    confidence: float | None = None
    box: tuple[float, float, float, float] | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (schema ``SCHEMA_VERSION`` of sinks.events)."""
        out = {
            "id": self.id,
            "type": self.type,
            "source_id": self.source_id,
            "frame": self.frame,
            "pts": self.pts,
            "wall_time": self.wall_time,
        }
        if self.track_id is not None:
            out.update(
                track_id=self.track_id,
                class_id=self.class_id,
                class_name=self.class_name,
                confidence=self.confidence,
                box=list(self.box) if self.box is not None else None,
            )
        out.update(self.data)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class SourceStatus:
    """A change of a source's state, passed in order with its frames.

    Attributes:
        state: ``down`` (stopped delivering), ``up`` (delivering again) or
            ``removed`` (taken out of a running pipeline).
        index: Index the next frame will have (frames decoded so far).
        pts: Pts of the last frame before the change, seconds.
        at: Wall-clock time of the change.
        reason: Why it went down.
        downtime: Seconds it was down (``up`` only).
        attempts: Connection attempts it took (``up`` only).
    """

    source_id: str
    state: str
    index: int
    pts: Fraction
    at: float
    reason: str = ""
    downtime: float = 0.0
    attempts: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryStats:
    """Where a network sink's delivery stands.

    Attributes:
        sink: The sink's name in metrics and the summary (kind and redacted endpoint).
        pending: Events in its outbox, not yet acknowledged.
        delivered: Events acknowledged by the endpoint in this run.
        failures: Failed sends in this run (each retried).
        dead: Events the endpoint refused for good in this run (set aside in the outbox's
            dead letters; delivery went on).
        error: Why the last send failed (a broker's refusal: "bad user name or
            password", "not authorised"), while no later one succeeded; "" when none did.
    """

    sink: str
    pending: int
    delivered: int
    failures: int
    dead: int = 0
    error: str = ""
