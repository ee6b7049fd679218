"""What the trackers here share: the track table, SORT's motion model, and the output.

Every tracker keeps its tracks as a handful of arrays, one row per track:

- ``_kf`` ``(5, N, 4)``: the Kalman state (see :mod:`trackers.kalman`);
- ``_int`` ``(N, C)`` int64: the id and class in columns :data:`ID` and :data:`CLASS`,
  then the tracker's own counters;
- ``_score`` ``(N,)``: the score of each track's last matched detection;
- ``_shown`` ``(N,)``: whether the last ``update`` reported the track;
- the tracker's own per-track arrays, named in ``extras``.

:class:`TrackTable` owns their life (birth with new ids, removal by mask, reset) and the
two verbs every tracker answers the same way: ``alive_ids`` and ``predict(steps)``.
"""

from __future__ import annotations

from typing import ClassVar

import numba
import numpy as np

from streamer.types import Detections
from trackers import kalman
from trackers import sparse
from trackers.association import Pairs, similarity

__all__ = ["CLASS", "ID", "SortModel", "TrackTable", "sort_predict"]

ID, CLASS = 0, 1  # the first two columns of every tracker's integer state


@numba.njit(cache=True)
def sort_predict(kf, steps, q_pos, q_vel):
    """``steps`` prediction steps of SORT's model for every track of ``kf``, in place,
    for compiled callers (noise as :data:`SortModel.Q_POS2`, :data:`SortModel.Q_VEL2`).
    Before each step the area's velocity is zeroed where the area would shrink through
    zero, as the reference does."""
    for _ in range(steps):
        for i in range(kf.shape[1]):
            if kf[1, i, 2] + kf[0, i, 2] <= 0:
                kf[1, i, 2] = 0.0
        kalman.predict_kernel(kf, q_pos, q_vel)


class SortModel:
    """SORT's motion model (Bewley et al.): state ``(x, y, s, r)`` with velocities of
    ``x, y, s``. ``r`` has no velocity: its velocity has zero initial variance and zero
    process noise, so it stays exactly zero. OC-SORT uses the same model."""

    Q_POS = np.array([1.0, 1.0, 1.0, 1.0])
    Q_VEL = np.array([0.01, 0.01, 0.0001, 0.0])
    R = np.array([1.0, 1.0, 10.0, 10.0])
    P0_POS = np.array([10.0, 10.0, 10.0, 10.0])
    P0_VEL = np.array([10000.0, 10000.0, 10000.0, 0.0])
    # The same as the 2-D arrays the compiled kernels take.
    Q_POS2, Q_VEL2, R2 = Q_POS[None], Q_VEL[None], R[None]

    @staticmethod
    def predict(kf: np.ndarray, steps: int) -> None:
        """``steps`` prediction steps of every track of ``kf``, in place."""
        sort_predict(kf, steps, SortModel.Q_POS2, SortModel.Q_VEL2)


class TrackTable:
    """The track arrays of a tracker, and what every tracker does with them alike.

    Subclasses set ``columns`` (integer columns, :data:`ID` and :data:`CLASS` first),
    ``extras`` (names of their own per-track arrays with the axis that runs over tracks)
    and implement ``_move(kf, steps)`` (their motion model's prediction) and
    ``_boxes(state)`` (state to ``x1, y1, x2, y2``).
    """

    columns: ClassVar[int] = 2
    extras: ClassVar[tuple[tuple[str, int], ...]] = ()

    def __init__(self, class_aware: bool) -> None:
        self.class_aware = class_aware
        sparse.warm()  # a crowded frame's kernels ready before the first one comes
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 1."""
        self._next_id = 1
        self._kf = np.empty((5, 0, 4))
        self._int = np.empty((0, self.columns), np.int64)
        self._score = np.empty(0, np.float32)
        self._shown = np.empty(0, bool)

    def __len__(self) -> int:
        return len(self._int)

    @property
    def alive_ids(self) -> np.ndarray:
        """Ids of every track still held, reported or not; a track has ended when its
        id leaves this set."""
        return self._int[:, ID].copy()

    def _iou(self, a: np.ndarray, b: np.ndarray, class_a: np.ndarray, class_b: np.ndarray) -> np.ndarray | Pairs:
        """IoU of boxes ``a`` with boxes ``b``, pairs of other classes gated when class-aware
        (a crowded frame's as :class:`~trackers.sparse.Pairs`)."""
        if self.class_aware:
            return similarity(a, b, class_a, class_b)
        return similarity(a, b)

    def _add(self, kf: np.ndarray, classes: np.ndarray, scores: np.ndarray) -> slice:
        """New tracks with filter state ``kf`` ``(5, n, 4)``; returns their rows, whose
        own columns and extras the tracker fills."""
        n, start = kf.shape[1], len(self._int)
        ints = np.zeros((n, self.columns), np.int64)
        ints[:, ID] = np.arange(self._next_id, self._next_id + n)
        ints[:, CLASS] = classes
        self._next_id += n
        self._kf = np.concatenate([self._kf, kf], axis=1)
        self._int = np.concatenate([self._int, ints])
        self._score = np.concatenate([self._score, np.asarray(scores, np.float32)])
        self._shown = np.concatenate([self._shown, np.zeros(n, bool)])
        return slice(start, start + n)

    def _keep(self, mask: np.ndarray) -> None:
        """Drop the tracks where ``mask`` is False."""
        if mask.all():
            return
        self._kf, self._int = self._kf[:, mask], self._int[mask]
        self._score, self._shown = self._score[mask], self._shown[mask]
        for name, axis in self.extras:
            array = getattr(self, name)
            setattr(self, name, array[:, mask] if axis == 1 else array[mask])

    def _report(self, detections: Detections, det_of_track: np.ndarray, shown: np.ndarray) -> Detections:
        """The output of an ``update``: the input rows matched by the ``shown`` tracks,
        with their ids and the tracker's boxes (row provenance: ``det_of_track[t]`` is the
        input row of track ``t``). Remembers them for :meth:`predict`."""
        rows = np.flatnonzero(shown)
        return self._output(detections, det_of_track, shown, rows, self._boxes(self._kf[0, rows]).astype(np.float32))

    def _output(self, detections: Detections, det_of_track: np.ndarray, shown: np.ndarray, rows: np.ndarray,
                boxes: np.ndarray) -> Detections:
        """:meth:`_report` with the reported ``rows`` and their ``boxes`` (float32) known."""
        self._shown = shown
        return detections.take(det_of_track[rows], self._int[rows, ID], track_xyxy=boxes)

    def predict(self, steps: int) -> Detections:
        """The tracks reported by the last ``update``, moved ``steps`` frames past it by
        the motion model, without changing any state (for frames the detector skipped)."""
        rows = np.flatnonzero(self._shown)
        kf = self._kf[:, rows].copy()
        self._move(kf, steps)
        xyxy = self._boxes(kf[0])
        return Detections(
            xyxy, self._score[rows], self._int[rows, CLASS], self._int[rows, ID],
            {"track_xyxy": xyxy.astype(np.float32)},
        )

    def _move(self, kf: np.ndarray, steps: int) -> None:
        raise NotImplementedError

    def _boxes(self, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError
