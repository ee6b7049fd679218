"""OC-SORT (Cao et al., 2023): observation-centric SORT.

On top of SORT's model it adds, as the official implementation does:

- OCM, observation-centric momentum: the association cost adds the agreement between a
  track's direction of motion (from its observations ``delta_t`` frames apart) and the
  direction from its older observation to each detection, weighted by ``inertia`` and
  the detection score;
- OCR, observation-centric recovery: detections and tracks left over are matched a
  second time by IoU against the tracks' last observations;
- ORU, observation-centric re-update: a track found again after a gap has its filter
  rewound to its last observation and re-run along a straight virtual path to the new
  one, so the error accumulated while it was lost is undone.

Reported boxes (``data["track_xyxy"]``) are the filter's, as SORT reports them; the
original reports the observations. ``inertia`` defaults to 0.1 rather than the paper's 0.2.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from streamer.types import Detections
from trackers import kalman
from trackers.association import Pairs, assign_sort
from trackers.base import xysr_to_xyxy, xyxy_to_xysr
from trackers.core import CLASS, SortModel, TrackTable, sort_predict

__all__ = ["OcSort"]

# Columns of the integer state after the id and class.
_HITS, _STREAK, _SINCE, _AGE, _OBSERVED, _HAS_OBS, _CONFIRMED = range(2, 9)
_NEVER = -(10**9)


@numba.njit(cache=True)
def _direction(x1a, y1a, x2a, y2a, x1b, y1b, x2b, y2b):
    """Unit vector ``(dy, dx)`` from the centre of box a to the centre of box b."""
    dx = (x1b + x2b) / 2.0 - (x1a + x2a) / 2.0
    dy = (y1b + y2b) / 2.0 - (y1a + y2a) / 2.0
    norm = np.sqrt(dx * dx + dy * dy) + 1e-6
    return dy / norm, dx / norm


@numba.njit(cache=True)
def _row_directions(src, dst, out, rows):
    """``out[rows[k]]`` = direction from ``src[k]`` to ``dst[k]``."""
    for k in range(src.shape[0]):
        dy, dx = _direction(src[k, 0], src[k, 1], src[k, 2], src[k, 3], dst[k, 0], dst[k, 1], dst[k, 2], dst[k, 3])
        out[rows[k], 0] = dy
        out[rows[k], 1] = dx


@numba.njit(cache=True)
def _momentum_cost(prev, boxes, vel, valid, scores, inertia):
    """OCM: ``(N, M)`` agreement between each track's direction ``vel`` and the direction
    from its older observation ``prev`` to each detection, as OC-SORT scores it:
    ``(pi/2 - |angle|) / pi * inertia * score``."""
    n, m = boxes.shape[0], prev.shape[0]
    out = np.zeros((n, m))
    for j in range(m):
        if not valid[j]:
            continue
        for i in range(n):
            a, b = prev[j], boxes[i]
            dy, dx = _direction(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3])
            cos = min(1.0, max(-1.0, vel[j, 0] * dy + vel[j, 1] * dx))
            out[i, j] = (np.pi / 2.0 - abs(np.arccos(cos))) / np.pi * inertia * scores[i]
    return out


def _momentum_block(prev, boxes, vel, valid, scores, inertia, det_rows, track_rows):
    """:func:`_momentum_cost` of detections ``det_rows`` and tracks ``track_rows`` only."""
    t = track_rows
    return _momentum_cost(prev[t], boxes[det_rows], vel[t], valid[t], scores[det_rows], inertia)


@numba.njit(cache=True)
def _previous_obs(last, ring, ring_age, age, delta_t):
    """Per track the observation ``delta_t`` frames back, else the nearest younger one in
    that window, else the last one (OC-SORT's ``k_previous_obs``)."""
    n = last.shape[0]
    size = ring.shape[1]
    out = np.empty((n, 4))
    for i in range(n):
        out[i] = last[i, :4]
        for dt in range(delta_t, 0, -1):
            slot = (age[i] - dt) % size
            if ring_age[i, slot] == age[i] - dt:
                out[i] = ring[i, slot]
                break
    return out


@numba.njit(cache=True)
def _virtual_path(kf, z_old, z_new, gap, q_pos, q_vel, r):
    """ORU: from the filter at the last observation (``kf`` ``(5, 1, 4)``, in place),
    predict and update along a straight path of centre, width and height to ``z_new``
    (both ``x, y, s, r``) over ``gap`` frames."""
    w0, h0 = np.sqrt(z_old[2] * z_old[3]), np.sqrt(z_old[2] / z_old[3])
    w1, h1 = np.sqrt(z_new[2] * z_new[3]), np.sqrt(z_new[2] / z_new[3])
    z = np.empty((1, 4))
    row = np.zeros(1, np.int64)
    for step in range(1, gap + 1):
        f = step / gap
        w = w0 + f * (w1 - w0)
        h = h0 + f * (h1 - h0)
        z[0, 0] = z_old[0] + f * (z_new[0] - z_old[0])
        z[0, 1] = z_old[1] + f * (z_new[1] - z_old[1])
        z[0, 2] = w * h
        z[0, 3] = w / h
        sort_predict(kf, 1, q_pos, q_vel)
        kalman.update_kernel(kf, row, z, r)


class OcSort(TrackTable):
    """Observation-centric SORT.

    Args:
        det_thresh: Detections scoring at or below this are ignored.
        max_age: Frames a track survives without a matching detection.
        min_hits: Consecutive matches before a track is reported.
        iou_threshold: Smallest IoU of a match.
        delta_t: Frames between the two observations that give a track's direction.
        inertia: Weight of the direction agreement in the association cost.
        frame_rate: Accepted for a common tracker signature; OC-SORT counts frames.
        class_aware: Never match a detection to a track of another class.
        persistent: Once a track has been matched ``min_hits`` times in a row it is
            reported whenever it is matched (as ByteTrack does); the original, like SORT,
            hides it again until a new streak of ``min_hits``.
    """

    columns = 9
    # Beside the core arrays: the filter right after the last observation, the last
    # observed box, observations by age % (delta_t + 1) and their ages, and the direction
    # (dy, dx) of motion.
    extras = (("_saved", 1), ("_last", 0), ("_ring", 0), ("_ring_age", 0), ("_vel", 0))

    def __init__(
        self,
        det_thresh: float = 0.3,
        max_age: int = 30,
        min_hits: int = 3,
        iou_threshold: float = 0.3,
        delta_t: int = 3,
        inertia: float = 0.1,
        frame_rate: float = 30.0,
        class_aware: bool = True,
        persistent: bool = True,
    ) -> None:
        if delta_t < 1 or max_age < 0 or min_hits < 0 or not 0.0 < iou_threshold <= 1.0:
            raise ValueError(
                "OcSort: need delta_t >= 1, max_age >= 0, min_hits >= 0 and "
                f"0 < iou_threshold <= 1, got {delta_t}, {max_age}, {min_hits}, {iou_threshold}"
            )
        self.det_thresh = det_thresh
        self.max_age = max_age
        self.min_hits = min_hits
        self.iou_threshold = iou_threshold
        self.delta_t = delta_t
        self.inertia = inertia
        self.persistent = persistent
        super().__init__(class_aware)

    def reset(self) -> None:
        super().reset()
        self.frame_count = 0
        ring = self.delta_t + 1
        self._saved = np.empty((5, 0, 4))
        self._last = np.empty((0, 4))
        self._ring = np.empty((0, ring, 4))
        self._ring_age = np.empty((0, ring), np.int64)
        self._vel = np.empty((0, 2))

    def _move(self, kf: np.ndarray, steps: int) -> None:
        SortModel.predict(kf, steps)

    def _boxes(self, state: np.ndarray) -> np.ndarray:
        return xysr_to_xyxy(state)

    def _previous_obs(self) -> np.ndarray:
        return _previous_obs(self._last, self._ring, self._ring_age, self._int[:, _AGE], self.delta_t)

    def _observe(self, t: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> None:
        """Tracks ``t`` observed ``boxes`` ``(K, 4)``: direction, history, filter."""
        ints = self._int
        had = ints[t, _HAS_OBS] == 1
        if had.any():
            th = t[had]
            _row_directions(self._previous_obs()[th], boxes[had], self._vel, th)
        age = ints[t, _AGE]
        slot = age % (self.delta_t + 1)
        self._ring[t, slot] = boxes
        self._ring_age[t, slot] = age
        refound = (ints[t, _OBSERVED] == 0) & had
        z = xyxy_to_xysr(boxes)
        for k in np.flatnonzero(refound):
            self._reupdate(t[k], z[k])
        plain = t[~refound]
        if len(plain):
            kalman.update(self._kf, z[~refound], SortModel.R, rows=plain)
        self._saved[:, t] = self._kf[:, t]
        self._last[t] = boxes
        self._score[t] = scores
        ints[t, _SINCE] = 0
        ints[t, _HITS] += 1
        ints[t, _STREAK] += 1
        ints[t, _OBSERVED] = 1
        ints[t, _HAS_OBS] = 1

    def _reupdate(self, i: int, z_new: np.ndarray) -> None:
        """ORU: rewind track ``i`` to its last observation and re-run the filter along a
        straight path (centre, width, height) to ``z_new`` over the frames it was lost."""
        kf = self._saved[:, i : i + 1].copy()
        z_old = xyxy_to_xysr(self._last[i : i + 1])[0]
        _virtual_path(kf, z_old, z_new, int(self._int[i, _SINCE]), SortModel.Q_POS2, SortModel.Q_VEL2, SortModel.R2)
        self._kf[:, i] = kf[:, 0]

    def update(self, detections: Detections, *, period: int = 1) -> Detections:
        """Advance all tracks by ``period`` frames and match them to ``detections``."""
        self.frame_count += 1
        predicted = self._advance(period)
        rows = np.flatnonzero(detections.confidence > self.det_thresh)
        boxes = detections.xyxy[rows].astype(np.float64)
        scores = detections.confidence[rows].astype(np.float64)
        classes = detections.class_id[rows]

        # First association: IoU with the predictions plus direction agreement (OCM).
        iou = self._iou(boxes, predicted, classes, self._int[:, CLASS])
        matches, u_det, u_trk = self._associate(iou, boxes, scores)
        if len(matches):
            self._observe(matches[:, 1], boxes[matches[:, 0]], scores[matches[:, 0]])
        det_of_track = np.full(len(self._int), -1)
        det_of_track[matches[:, 1]] = rows[matches[:, 0]]

        # Second association (OCR): what is left, by IoU with the last observations.
        if len(u_det) and len(u_trk):
            iou = self._iou(boxes[u_det], self._last[u_trk], classes[u_det], self._int[u_trk, CLASS])
            m, _, _ = assign_sort(iou, self.iou_threshold, fast_path=False)
            d, t = u_det[m[:, 0]], u_trk[m[:, 1]]
            self._observe(t, boxes[d], scores[d])
            det_of_track[t] = rows[d]
            u_det, u_trk = u_det[~np.isin(u_det, d)], u_trk[~np.isin(u_trk, t)]
        self._int[u_trk, _OBSERVED] = 0

        if len(u_det):
            self._born(boxes[u_det], scores[u_det], classes[u_det])
            det_of_track = np.concatenate([det_of_track, rows[u_det]])
        result = self._report(detections, det_of_track, self._ready())
        self._keep(self._int[:, _SINCE] <= self.max_age)
        return result

    def _advance(self, period: int) -> np.ndarray:
        """Predict every track ``period`` frames and count the frames; returns the
        predicted boxes (tracks whose prediction broke down are dropped)."""
        SortModel.predict(self._kf, period)
        ints = self._int
        ints[ints[:, _SINCE] > 0, _STREAK] = 0
        ints[:, _SINCE] += period
        ints[:, _AGE] += period
        predicted = xysr_to_xyxy(self._kf[0])
        bad = np.isnan(predicted).any(axis=1)
        if bad.any():
            self._keep(~bad)
            predicted = predicted[~bad]
        return predicted

    def _ready(self) -> np.ndarray:
        """The tracks reported now: matched now, and confirmed."""
        ints = self._int
        ready = (ints[:, _STREAK] >= self.min_hits) | (self.frame_count <= self.min_hits)
        if self.persistent:
            ints[ready, _CONFIRMED] = 1
            ready |= ints[:, _CONFIRMED] == 1
        return (ints[:, _SINCE] < 1) & ready

    def _associate(self, iou: np.ndarray | Pairs, boxes: np.ndarray, scores: np.ndarray):
        """OCM association: ``-(IoU + direction agreement)``, then SORT's threshold.
        Unmatched detections come sorted (new tracks are born in detection order)."""
        bonus = None
        n_det, n_trk = iou.shape
        crowded = isinstance(iou, Pairs)
        if n_det and n_trk and ((iou.values if crowded else iou) > self.iou_threshold).sum() > 1:
            # The momentum term only matters where pairs compete.
            valid = self._int[:, _HAS_OBS] == 1
            prev, vel, inertia = self._previous_obs(), self._vel, self.inertia
            if crowded:  # per group of competing pairs, as the matching asks for it
                bonus = functools.partial(_momentum_block, prev, boxes, vel, valid, scores, inertia)
            else:
                bonus = _momentum_cost(prev, boxes, vel, valid, scores, inertia)
        matches, u_det, u_trk = assign_sort(iou, self.iou_threshold, bonus)
        return matches, np.sort(u_det), u_trk

    def _born(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> None:
        n = len(boxes)
        kf = kalman.initiate(xyxy_to_xysr(boxes), SortModel.P0_POS, SortModel.P0_VEL)
        rows = self._add(kf, classes, scores)
        self._int[rows, _OBSERVED] = 1
        # Unlike the original, the first box counts as an observation: the direction is
        # known one frame earlier and OCR can recover a track missed on its second frame.
        self._int[rows, _HAS_OBS] = 1
        ring = self.delta_t + 1
        self._saved = np.concatenate([self._saved, kf], axis=1)
        self._last = np.concatenate([self._last, boxes])
        ring_boxes = np.zeros((n, ring, 4))
        ring_boxes[:, 0] = boxes
        ring_age = np.full((n, ring), _NEVER)
        ring_age[:, 0] = 0
        self._ring = np.concatenate([self._ring, ring_boxes])
        self._ring_age = np.concatenate([self._ring_age, ring_age])
        self._vel = np.concatenate([self._vel, np.zeros((n, 2))])
