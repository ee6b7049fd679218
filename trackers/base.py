"""Box conversions shared by the trackers, and the tracker protocol (defined with the
other stage protocols in :mod:`streamer.protocols`)."""

from __future__ import annotations

import numba
import numpy as np

from streamer.protocols import Tracker

__all__ = ["Tracker", "xyxy_to_xysr", "xysr_to_xyxy", "xyxy_to_xyah", "xyah_to_xyxy"]


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
