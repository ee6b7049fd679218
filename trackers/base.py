"""The tracker protocol and box conversions shared by the trackers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numba
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


@numba.njit(cache=True)
def _xyxy_to_xysr(xyxy, out):
    for i in range(xyxy.shape[0]):
        w = xyxy[i, 2] - xyxy[i, 0]
        h = xyxy[i, 3] - xyxy[i, 1]
        out[i, 0] = xyxy[i, 0] + w / 2.0
        out[i, 1] = xyxy[i, 1] + h / 2.0
        out[i, 2] = w * h
        out[i, 3] = w / h


@numba.njit(cache=True)
def _xysr_to_xyxy(xysr, out):
    for i in range(xysr.shape[0]):
        w = np.sqrt(xysr[i, 2] * xysr[i, 3])  # NaN when negative, as in the reference
        h = xysr[i, 2] / w
        out[i, 0] = xysr[i, 0] - w / 2.0
        out[i, 1] = xysr[i, 1] - h / 2.0
        out[i, 2] = xysr[i, 0] + w / 2.0
        out[i, 3] = xysr[i, 1] + h / 2.0


@numba.njit(cache=True)
def _xyxy_to_xyah(xyxy, out):
    for i in range(xyxy.shape[0]):
        w = xyxy[i, 2] - xyxy[i, 0]
        h = xyxy[i, 3] - xyxy[i, 1]
        out[i, 0] = xyxy[i, 0] + w / 2.0
        out[i, 1] = xyxy[i, 1] + h / 2.0
        out[i, 2] = w / h
        out[i, 3] = h


@numba.njit(cache=True)
def _xyah_to_xyxy(xyah, out):
    for i in range(xyah.shape[0]):
        w = xyah[i, 2] * xyah[i, 3]
        h = xyah[i, 3]
        out[i, 0] = xyah[i, 0] - w / 2.0
        out[i, 1] = xyah[i, 1] - h / 2.0
        out[i, 2] = xyah[i, 0] + w / 2.0
        out[i, 3] = xyah[i, 1] + h / 2.0


def _convert(kernel, boxes: np.ndarray) -> np.ndarray:
    out = np.empty((len(boxes), 4))
    kernel(np.asarray(boxes, dtype=np.float64), out)
    return out


def xyxy_to_xysr(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners to SORT's centre, area, aspect ratio ``w / h`` (float64)."""
    return _convert(_xyxy_to_xysr, xyxy)


def xysr_to_xyxy(xysr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xysr`; NaN where area times ratio is negative."""
    return _convert(_xysr_to_xyxy, xysr)


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners to ByteTrack's centre, aspect ratio ``w / h``, height (float64)."""
    return _convert(_xyxy_to_xyah, xyxy)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xyah`."""
    return _convert(_xyah_to_xyxy, xyah)
