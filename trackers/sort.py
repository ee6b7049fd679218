"""SORT (Bewley et al., 2016), faithful to the reference implementation and vectorized.

With ``max_age=1, min_hits=3, iou_threshold=0.3`` its tracks equal those of the
reference ``sort.py`` (abewley/sort) box for box; all tracks live in a handful of
arrays and every step is array math over all of them.
"""

from __future__ import annotations

import numba
import numpy as np

from streamer.types import Detections
from trackers import kalman
from trackers.association import assign_sort
from trackers.base import xysr_to_xyxy, xyxy_to_xysr
from trackers.core import CLASS, SortModel, TrackTable, sort_predict

__all__ = ["Sort"]

# Columns of the integer state after the id and class.
_HITS, _STREAK, _SINCE, _AGE = range(2, 6)


@numba.njit(cache=True)
def _advance(kf, ints, period, q_pos, q_vel):
    """``period`` prediction steps of SORT's filter, and the counters of a step: a hit
    streak ends with a missed frame."""
    sort_predict(kf, period, q_pos, q_vel)
    for i in range(ints.shape[0]):
        if ints[i, _SINCE] > 0:
            ints[i, _STREAK] = 0
        ints[i, _SINCE] += period
        ints[i, _AGE] += period


@numba.njit(cache=True)
def _status(ints, pos, min_hits, everyone, max_age):
    """Which tracks are reported (matched now, and with ``min_hits`` hits in a row unless
    ``everyone``), their rows and boxes, and which tracks stay alive (one pass: this is
    most of a frame's work besides the association)."""
    n = ints.shape[0]
    shown = np.zeros(n, np.bool_)
    alive = np.ones(n, np.bool_)
    for i in range(n):
        since = ints[i, _SINCE]
        if since < 1 and (everyone or ints[i, _STREAK] >= min_hits):
            shown[i] = True
        if since > max_age:
            alive[i] = False
    rows = np.flatnonzero(shown)
    boxes = np.empty((rows.shape[0], 4), np.float32)
    for k in range(rows.shape[0]):
        x, y, area, ratio = pos[rows[k], 0], pos[rows[k], 1], pos[rows[k], 2], pos[rows[k], 3]
        w = np.sqrt(area * ratio)
        h = area / w
        boxes[k, 0] = x - w / 2.0
        boxes[k, 1] = y - h / 2.0
        boxes[k, 2] = x + w / 2.0
        boxes[k, 3] = y + h / 2.0
    return shown, rows, boxes, alive


@numba.njit(cache=True)
def _hit(ints, rows):
    for i in rows:
        ints[i, _HITS] += 1
        ints[i, _STREAK] += 1
        ints[i, _SINCE] = 0


class Sort(TrackTable):
    """Simple Online and Realtime Tracking.

    Args:
        max_age: Frames a track survives without a matching detection.
        min_hits: Consecutive matches before a track is reported (tracks are reported
            from their first frame during the first ``min_hits`` frames, as in the
            reference).
        iou_threshold: Smallest IoU between a detection and a predicted box to match.
        class_aware: Never match a detection to a track of another class.
    """

    columns = 6

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
        super().__init__(class_aware)

    def reset(self) -> None:
        super().reset()
        self.frame_count = 0

    def _move(self, kf: np.ndarray, steps: int) -> None:
        SortModel.predict(kf, steps)

    def _boxes(self, state: np.ndarray) -> np.ndarray:
        return xysr_to_xyxy(state)

    def update(self, detections: Detections, *, period: int = 1) -> Detections:
        """Advance all tracks by ``period`` frames and match them to ``detections``."""
        self.frame_count += 1
        predicted = np.empty((0, 4))
        if len(self._int):
            _advance(self._kf, self._int, period, SortModel.Q_POS2, SortModel.Q_VEL2)
            predicted = xysr_to_xyxy(self._kf[0])
            if not np.isfinite(predicted.sum()):
                keep = np.isfinite(predicted).all(axis=1)
                self._keep(keep)
                predicted = predicted[keep]

        boxes = detections.xyxy.astype(np.float64)
        z = xyxy_to_xysr(boxes)
        iou = self._iou(boxes, predicted, detections.class_id, self._int[:, CLASS])
        matches, new, _ = assign_sort(iou, self.iou_threshold)
        det_of_track = np.full(len(self._int), -1)
        if len(matches):
            d, t = matches[:, 0], matches[:, 1]
            kalman.update(self._kf, z[d], SortModel.R, rows=t)
            _hit(self._int, t)
            det_of_track[t] = d
            self._score[t] = detections.confidence[d]
        if len(new):
            self._add(kalman.initiate(z[new], SortModel.P0_POS, SortModel.P0_VEL), detections.class_id[new],
                      detections.confidence[new])
            det_of_track = np.concatenate([det_of_track, new])

        shown, rows, boxes, alive = _status(self._int, self._kf[0], self.min_hits, self.frame_count <= self.min_hits,
                                            self.max_age)
        result = self._output(detections, det_of_track, shown, rows, boxes)
        self._keep(alive)
        return result
