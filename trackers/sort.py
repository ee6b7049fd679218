"""SORT (Bewley et al., 2016), faithful to the reference implementation and vectorized.

With ``max_age=1, min_hits=3, iou_threshold=0.3`` its tracks equal those of the
reference ``sort.py`` (abewley/sort) box for box; all tracks live in a handful of
arrays and every step is array math over all of them.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment

from streamer.types import Detections
from trackers import kalman
from trackers.association import iou_matrix
from trackers.base import xysr_to_xyxy, xyxy_to_xysr

__all__ = ["Sort"]

# The reference model: state (x, y, s, r, vx, vy, vs). r has no velocity: here its
# velocity has zero initial variance and zero process noise, so it stays exactly zero.
_Q_POS = np.array([1.0, 1.0, 1.0, 1.0])
_Q_VEL = np.array([0.01, 0.01, 0.0001, 0.0])
_R = np.array([1.0, 1.0, 10.0, 10.0])
_P0_POS = np.array([10.0, 10.0, 10.0, 10.0])
_P0_VEL = np.array([10000.0, 10000.0, 10000.0, 0.0])
_Q_POS2, _Q_VEL2 = _Q_POS[None], _Q_VEL[None]  # as the compiled kernels take them

# Columns of the integer state.
_ID, _CLASS, _HITS, _STREAK, _SINCE, _AGE = range(6)


@numba.njit(cache=True)
def _stop_shrinking(kf):
    """The reference zeroes the area's velocity where it would shrink through zero."""
    for i in range(kf.shape[1]):
        if kf[1, i, 2] + kf[0, i, 2] <= 0:
            kf[1, i, 2] = 0.0


@numba.njit(cache=True)
def _advance(kf, ints, period, q_pos, q_vel):
    """``period`` prediction steps of SORT's filter, and the counters of a step: a hit
    streak ends with a missed frame."""
    for _ in range(period):
        _stop_shrinking(kf)
        kalman._predict(kf, q_pos, q_vel)
    for i in range(ints.shape[0]):
        if ints[i, _SINCE] > 0:
            ints[i, _STREAK] = 0
        ints[i, _SINCE] += period
        ints[i, _AGE] += period


@numba.njit(cache=True)
def _report(ints, pos, min_hits, everyone, max_age):
    """Which tracks are reported (matched now, and with ``min_hits`` hits in a row unless
    ``everyone``), their boxes, and which tracks stay alive."""
    n = ints.shape[0]
    shown = np.zeros(n, np.bool_)
    alive = np.ones(n, np.bool_)
    all_alive = True
    count = 0
    for i in range(n):
        since = ints[i, _SINCE]
        if since < 1 and (everyone or ints[i, _STREAK] >= min_hits):
            shown[i] = True
            count += 1
        if since > max_age:
            alive[i] = False
            all_alive = False
    rows = np.flatnonzero(shown)
    boxes = np.empty((count, 4), np.float32)
    for k in range(count):
        x, y, area, ratio = pos[rows[k], 0], pos[rows[k], 1], pos[rows[k], 2], pos[rows[k], 3]
        w = np.sqrt(area * ratio)
        h = area / w
        boxes[k, 0] = x - w / 2.0
        boxes[k, 1] = y - h / 2.0
        boxes[k, 2] = x + w / 2.0
        boxes[k, 3] = y + h / 2.0
    return rows, boxes, shown, alive, all_alive


@numba.njit(cache=True)
def _hit(ints, rows):
    for i in rows:
        ints[i, _HITS] += 1
        ints[i, _STREAK] += 1
        ints[i, _SINCE] = 0


@numba.njit(cache=True)
def _pairs_above(iou, threshold):
    """Pairs with ``iou > threshold`` and whether they are one-to-one."""
    n, m = iou.shape
    rows = np.empty(n * m, np.int64)
    cols = np.empty(n * m, np.int64)
    row_used = np.zeros(n, np.bool_)
    col_used = np.zeros(m, np.bool_)
    k = 0
    unique = True
    for i in range(n):
        for j in range(m):
            if iou[i, j] > threshold:
                rows[k] = i
                cols[k] = j
                k += 1
                if row_used[i] or col_used[j]:
                    unique = False
                row_used[i] = True
                col_used[j] = True
    return rows[:k], cols[:k], unique


def sort_associate(iou: np.ndarray, threshold: float) -> tuple[list, list, list]:
    """SORT's association, exactly: Hungarian on ``-iou``, then drop pairs below threshold.

    Unlike :func:`trackers.association.assign` the assignment runs before thresholding,
    as in the reference; when the pairs above the threshold are already one-to-one they
    are the result and the solver is skipped (the reference's fast path).

    Returns:
        Matched detection rows, their track columns, and the unmatched detections (first
        those never assigned, then those dropped, as the reference orders them), as lists:
        these are a handful of indices, for which Python is quicker than numpy.
    """
    n_det, n_trk = iou.shape
    if n_trk == 0 or n_det == 0:
        return [], [], list(range(n_det))
    rows, cols, unique = _pairs_above(iou, threshold)
    if not len(rows):
        # Nothing above the threshold: nothing can pass it.
        return [], [], list(range(n_det))
    if unique:
        d, t = rows.tolist(), cols.tolist()
        dropped: list = []
    else:
        rows, cols = linear_sum_assignment(-iou)
        good = iou[rows, cols] >= threshold
        d, t = rows[good].tolist(), cols[good].tolist()
        dropped = rows[~good].tolist()
    taken = set(d).union(dropped)
    return d, t, [i for i in range(n_det) if i not in taken] + dropped


class Sort:
    """Simple Online and Realtime Tracking.

    Args:
        max_age: Frames a track survives without a matching detection.
        min_hits: Consecutive matches before a track is reported (tracks are reported
            from their first frame during the first ``min_hits`` frames, as in the
            reference).
        iou_threshold: Smallest IoU between a detection and a predicted box to match.
        class_aware: Never match a detection to a track of another class.
    """

    def __init__(
        self,
        max_age: int = 1,
        min_hits: int = 3,
        iou_threshold: float = 0.3,
        class_aware: bool = True,
    ) -> None:
        if max_age < 0 or min_hits < 0 or not 0.0 < iou_threshold <= 1.0:
            raise ValueError(
                "Sort: need max_age >= 0, min_hits >= 0 and 0 < iou_threshold <= 1, got "
                f"{max_age}, {min_hits}, {iou_threshold}"
            )
        self.max_age = max_age
        self.min_hits = min_hits
        self.iou_threshold = iou_threshold
        self.class_aware = class_aware
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 1."""
        self._next_id = 1
        self.frame_count = 0
        # Filter state of every track, (5, N, 4) (see kalman).
        self._kf = np.empty((5, 0, 4))
        self._int = np.empty((0, 6), np.int64)
        self._conf = np.empty(0, np.float32)
        self._shown = np.empty(0, bool)

    def __len__(self) -> int:
        return len(self._int)

    @property
    def alive_ids(self) -> np.ndarray:
        """Ids of every track still held, reported or not; a track has ended when its
        id leaves this set."""
        return self._int[:, _ID].copy()

    def update(self, detections: Detections, *, period: int = 1) -> Detections:
        """Advance all tracks by ``period`` frames and match them to ``detections``."""
        self.frame_count += 1
        kf, ints = self._kf, self._int
        if len(ints):
            _advance(kf, ints, period, _Q_POS2, _Q_VEL2)
            predicted = xysr_to_xyxy(kf[0])
            if not np.isfinite(predicted.sum()):
                keep = np.isfinite(predicted).all(axis=1)
                kf, ints, predicted = kf[:, keep], ints[keep], predicted[keep]
                self._conf = self._conf[keep]
        else:
            predicted = np.empty((0, 4))

        boxes = detections.xyxy.astype(np.float64)
        z = xyxy_to_xysr(boxes)
        if self.class_aware:
            iou = iou_matrix(boxes, predicted, detections.class_id, ints[:, _CLASS])
        else:
            iou = iou_matrix(boxes, predicted)
        d, t, new_dets = sort_associate(iou, self.iou_threshold)

        det_of_track = np.full(len(ints), -1)
        if d:
            t_rows = np.array(t)
            kalman.update(kf, z[d], _R, rows=t_rows)
            _hit(ints, t_rows)
            det_of_track[t_rows] = d
        if new_dets:
            n = len(new_dets)
            new_ints = np.zeros((n, 6), np.int64)
            new_ints[:, _ID] = np.arange(self._next_id, self._next_id + n)
            new_ints[:, _CLASS] = detections.class_id[new_dets]
            self._next_id += n
            born = kalman.initiate(z[new_dets], _P0_POS, _P0_VEL)
            kf = np.concatenate([kf, born], axis=1)
            ints = np.concatenate([ints, new_ints])
            det_of_track = np.concatenate([det_of_track, new_dets])

        out, track_xyxy, shown, alive, all_alive = _report(
            ints, kf[0], self.min_hits, self.frame_count <= self.min_hits, self.max_age
        )
        result = detections.take(det_of_track[out], ints[out, _ID], track_xyxy=track_xyxy)
        # Confidence of each track's last detection, for predict().
        conf = np.zeros(len(ints), np.float32)
        conf[out] = result.confidence
        if all_alive:
            self._kf, self._int, self._shown, self._conf = kf, ints, shown, conf
        else:
            self._kf, self._int = kf[:, alive], ints[alive]
            self._shown, self._conf = shown[alive], conf[alive]
        return result

    def predict(self, steps: int) -> Detections:
        """The tracks reported by the last ``update``, moved ``steps`` frames ahead."""
        rows = np.flatnonzero(self._shown)
        xyxy = xysr_to_xyxy(self._kf[0, rows] + steps * self._kf[1, rows])
        return Detections(
            xyxy, self._conf[rows], self._int[rows, _CLASS], self._int[rows, _ID],
            {"track_xyxy": xyxy.astype(np.float32)},
        )
