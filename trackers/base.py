"""The tracker protocol and box conversions shared by the trackers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from streamer.types import Detections

__all__ = ["Tracker", "xyxy_to_xysr", "xysr_to_xyxy", "xyxy_to_xyah", "xyah_to_xyxy"]


@runtime_checkable
class Tracker(Protocol):
    """Assigns persistent ids to detections, one frame at a time.

    ``update`` is called on every frame the detector ran on, with zero boxes or more;
    ``period`` is the number of frames since the previous call (the detection interval),
    so predictions and ages stay right. It returns the input rows that belong to
    confirmed tracks, with ``tracker_id`` filled and the tracker's own box in
    ``data["track_xyxy"]``. ``predict(steps)`` gives the same tracks moved ``steps``
    frames ahead without changing any state (for frames the detector skipped).
    ``alive_ids`` are the ids of every track the tracker still holds, reported or not.
    """

    @property
    def alive_ids(self) -> np.ndarray: ...

    def update(self, detections: Detections, *, period: int = 1) -> Detections: ...

    def predict(self, steps: int) -> Detections: ...

    def reset(self) -> None: ...


def xyxy_to_xysr(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners to SORT's centre, area, aspect ratio ``w / h``."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    return np.stack([xyxy[:, 0] + w / 2.0, xyxy[:, 1] + h / 2.0, w * h, w / h], axis=1)


def xysr_to_xyxy(xysr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xysr`; NaN where area times ratio is negative."""
    with np.errstate(invalid="ignore"):
        w = np.sqrt(xysr[:, 2] * xysr[:, 3])
    h = xysr[:, 2] / w
    return np.stack(
        [xysr[:, 0] - w / 2.0, xysr[:, 1] - h / 2.0, xysr[:, 0] + w / 2.0, xysr[:, 1] + h / 2.0],
        axis=1,
    )


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners to ByteTrack's centre, aspect ratio ``w / h``, height."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    return np.stack([xyxy[:, 0] + w / 2.0, xyxy[:, 1] + h / 2.0, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xyah`."""
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    return np.stack(
        [xyah[:, 0] - w / 2.0, xyah[:, 1] - h / 2.0, xyah[:, 0] + w / 2.0, xyah[:, 1] + h / 2.0],
        axis=1,
    )
