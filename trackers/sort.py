"""SORT (Bewley et al., 2016), faithful to the reference implementation and vectorized.

With ``max_age=1, min_hits=3, iou_threshold=0.3`` its tracks equal those of the
reference ``sort.py`` (abewley/sort) box for box; all tracks live in a handful of
arrays and every step is array math over all of them.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamer.types import Detections
from trackers import kalman
from trackers.association import EMPTY_MATCHES, iou_matrix
from trackers.base import xysr_to_xyxy, xyxy_to_xysr

__all__ = ["Sort"]

# The reference model: state (x, y, s, r, vx, vy, vs); r has no velocity.
_DT = np.array([1.0, 1.0, 1.0, 0.0])
_Q_POS = np.array([1.0, 1.0, 1.0, 1.0])
_Q_VEL = np.array([0.01, 0.01, 0.0001, 0.0])
_R = np.array([1.0, 1.0, 10.0, 10.0])
_P0_POS = np.array([10.0, 10.0, 10.0, 10.0])
_P0_VEL = np.array([10000.0, 10000.0, 10000.0, 0.0])

# Columns of the integer state.
_ID, _CLASS, _HITS, _STREAK, _SINCE, _AGE = range(6)


def sort_associate(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SORT's association, exactly: Hungarian on ``-iou``, then drop pairs below threshold.

    Unlike :func:`trackers.association.assign` the assignment runs before thresholding,
    as in the reference. Returns ``matches (K, 2)`` as ``(det, track)``, the unmatched
    detections (first those never assigned, then those dropped, as the reference orders
    them) and the unmatched tracks.
    """
    n_det, n_trk = iou.shape
    if n_trk == 0 or n_det == 0:
        return EMPTY_MATCHES, np.arange(n_det), np.arange(n_trk)
    above = iou > threshold
    if above.sum(1).max() == 1 and above.sum(0).max() == 1:
        matched = np.argwhere(above)
    else:
        rows, cols = linear_sum_assignment(-iou)
        matched = np.stack([rows, cols], axis=1)
    good = iou[matched[:, 0], matched[:, 1]] >= threshold
    det_free = np.ones(n_det, bool)
    det_free[matched[:, 0]] = False
    trk_free = np.ones(n_trk, bool)
    trk_free[matched[good, 1]] = False
    unmatched_dets = np.concatenate([np.flatnonzero(det_free), matched[~good, 0]])
    return matched[good], unmatched_dets, np.flatnonzero(trk_free)


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
        # Per track: mean rows 0-1, covariance rows 2-4, over the 4 axes (see kalman).
        self._kf = np.empty((0, 5, 4))
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
        mean, cov = kf[:, 0:2], kf[:, 2:5]
        # The reference stops the area from shrinking through zero.
        stop = mean[:, 1, 2] + mean[:, 0, 2] <= 0
        if stop.any():
            mean[stop, 1, 2] = 0.0
        for _ in range(period):
            kalman.predict(mean, cov, _Q_POS, _Q_VEL, _DT)
        ints[ints[:, _SINCE] > 0, _STREAK] = 0
        ints[:, _SINCE] += period
        ints[:, _AGE] += period
        predicted = xysr_to_xyxy(mean[:, 0])
        bad = np.isnan(predicted).any(axis=1)
        if bad.any():
            keep = ~bad
            kf, ints, predicted = kf[keep], ints[keep], predicted[keep]
            self._conf = self._conf[keep]
            mean, cov = kf[:, 0:2], kf[:, 2:5]

        boxes = detections.xyxy.astype(np.float64)
        iou = iou_matrix(boxes, predicted)
        if self.class_aware and iou.size:
            iou[detections.class_id[:, None] != ints[None, :, _CLASS]] = 0.0
        matches, new_dets, _ = sort_associate(iou, self.iou_threshold)

        z = xyxy_to_xysr(boxes)
        det_of_track = np.full(len(ints), -1)
        if len(matches):
            d, t = matches[:, 0], matches[:, 1]
            m_mean, m_cov = mean[t], cov[t]
            kalman.update(m_mean, m_cov, z[d], _R)
            mean[t], cov[t] = m_mean, m_cov
            ints[t, _SINCE] = 0
            ints[t, _HITS] += 1
            ints[t, _STREAK] += 1
            self._conf[t] = detections.confidence[d]
            det_of_track[t] = d
        if len(new_dets):
            n = len(new_dets)
            new_mean, new_cov = kalman.initiate(z[new_dets], _P0_POS, _P0_VEL)
            new_ints = np.zeros((n, 6), np.int64)
            new_ints[:, _ID] = np.arange(self._next_id, self._next_id + n)
            new_ints[:, _CLASS] = detections.class_id[new_dets]
            self._next_id += n
            kf = np.concatenate([kf, np.concatenate([new_mean, new_cov], axis=1)])
            ints = np.concatenate([ints, new_ints])
            self._conf = np.concatenate([self._conf, detections.confidence[new_dets]])
            det_of_track = np.concatenate([det_of_track, new_dets])

        since = ints[:, _SINCE]
        shown = (since < 1) & (
            (ints[:, _STREAK] >= self.min_hits) | (self.frame_count <= self.min_hits)
        )
        out_rows = np.flatnonzero(shown)
        result = detections[det_of_track[out_rows]].with_tracker_id(
            ints[out_rows, _ID],
            track_xyxy=xysr_to_xyxy(kf[out_rows, 0]).astype(np.float32),
        )
        alive = since <= self.max_age
        self._kf, self._int = kf[alive], ints[alive]
        self._conf, self._shown = self._conf[alive], shown[alive]
        return result

    def predict(self, steps: int) -> Detections:
        """The tracks reported by the last ``update``, moved ``steps`` frames ahead."""
        rows = np.flatnonzero(self._shown)
        mean = self._kf[rows, 0:2].copy()
        mean[:, 0] += steps * _DT * mean[:, 1]
        xyxy = xysr_to_xyxy(mean[:, 0])
        return Detections(
            xyxy, self._conf[rows], self._int[rows, _CLASS], self._int[rows, _ID],
            {"track_xyxy": xyxy.astype(np.float32)},
        )
