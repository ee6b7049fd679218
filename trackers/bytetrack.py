"""ByteTrack (Zhang et al., 2022): two-stage association that also uses low-score boxes.

Follows the published algorithm as ultralytics' ``BYTETracker`` implements it (same
thresholds, score fusion, unconfirmed tracks, lost-track buffer and duplicate removal),
with every track held in arrays, class-aware association and a ``period`` for frames
the detector skipped. Unlike ultralytics, unconfirmed tracks are predicted too.
"""

from __future__ import annotations

import numpy as np

from streamer.types import Detections
from trackers import kalman
from trackers.association import assign, forbid_cross_class, iou_matrix
from trackers.base import xyah_to_xyxy, xyxy_to_xyah

__all__ = ["ByteTrack"]

_W_POS = 1.0 / 20.0
_W_VEL = 1.0 / 160.0
_TRACKED, _LOST = 1, 2
_ID, _CLASS, _STATE, _ACTIVE, _END, _START = range(6)


def _stds(h: np.ndarray, pos: float, ratio: float, scale_pos: float = 1.0) -> np.ndarray:
    """``(N, 4)`` standard deviations ``[w h, w h, ratio, w h]`` for heights ``h``."""
    s = np.empty((len(h), 4))
    s[:] = (scale_pos * pos * h)[:, None]
    s[:, 2] = ratio
    return s


class ByteTrack:
    """ByteTrack with ultralytics' default thresholds.

    Args:
        track_high_thresh: Score from which a box takes part in the first association.
        track_low_thresh: Score above which a box takes part in the second association.
        new_track_thresh: Score from which an unmatched box starts a track.
        track_buffer: Frames a lost track is kept (at 30 fps; scaled by ``frame_rate``).
        match_thresh: Largest ``1 - IoU * score`` cost of a first-stage match.
        fuse_score: Multiply IoU by the detection score in the first stage.
        frame_rate: Frames per second of the source.
        class_aware: Never match a detection to a track of another class.
    """

    def __init__(
        self,
        track_high_thresh: float = 0.25,
        track_low_thresh: float = 0.1,
        new_track_thresh: float = 0.25,
        track_buffer: int = 30,
        match_thresh: float = 0.8,
        fuse_score: bool = True,
        frame_rate: float = 30.0,
        class_aware: bool = True,
    ) -> None:
        if not 0 <= track_low_thresh <= track_high_thresh <= 1:
            raise ValueError(
                "ByteTrack: need 0 <= track_low_thresh <= track_high_thresh <= 1, got "
                f"{track_low_thresh}, {track_high_thresh}"
            )
        self.track_high_thresh = track_high_thresh
        self.track_low_thresh = track_low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_thresh = match_thresh
        self.fuse_score = fuse_score
        self.class_aware = class_aware
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 1."""
        self._next_id = 1
        self.frame_id = 0
        self._kf = np.empty((5, 0, 4))
        self._int = np.empty((0, 6), np.int64)
        self._score = np.empty(0, np.float32)

    def __len__(self) -> int:
        return len(self._int)

    @property
    def alive_ids(self) -> np.ndarray:
        """Ids of every track still held, reported or not; a track has ended when its
        id leaves this set."""
        return self._int[:, _ID].copy()

    def _cost(self, rows: np.ndarray, dets: Detections, det_rows: np.ndarray, fuse: bool) -> np.ndarray:
        boxes = xyah_to_xyxy(self._kf[0, rows])
        sim = iou_matrix(boxes, dets.xyxy[det_rows].astype(np.float64))
        if fuse:
            sim = sim * dets.confidence[det_rows][None, :]
        cost = 1.0 - sim
        if self.class_aware:
            cost = forbid_cross_class(cost, self._int[rows, _CLASS], dets.class_id[det_rows])
        return cost

    def _update_tracks(self, rows: np.ndarray, dets: Detections, det_rows: np.ndarray) -> None:
        if not len(rows):
            return
        z = xyxy_to_xyah(dets.xyxy[det_rows].astype(np.float64))
        kalman.update(self._kf, z, _stds(self._kf[0, rows, 3], _W_POS, 1e-1) ** 2, rows=rows)
        ints = self._int
        ints[rows, _STATE] = _TRACKED
        ints[rows, _ACTIVE] = 1
        ints[rows, _END] = self.frame_id
        ints[rows, _CLASS] = dets.class_id[det_rows]
        self._score[rows] = dets.confidence[det_rows]

    def update(self, detections: Detections, *, period: int = 1) -> Detections:
        """Advance all tracks by ``period`` frames and match them to ``detections``."""
        self.frame_id += period
        kf, ints = self._kf, self._int
        # Lost tracks stop growing or shrinking (as ByteTrack does).
        kf[1, ints[:, _STATE] != _TRACKED, 3] = 0.0
        for _ in range(period):
            h = kf[0, :, 3].copy()
            kalman.predict(kf, _stds(h, _W_POS, 1e-2) ** 2, _stds(h, _W_VEL, 1e-5) ** 2)

        conf = detections.confidence
        high = np.flatnonzero(conf >= self.track_high_thresh)
        low = np.flatnonzero((conf > self.track_low_thresh) & (conf < self.track_high_thresh))
        det_of_track = np.full(len(ints), -1)
        active = ints[:, _ACTIVE] == 1
        pool = np.flatnonzero(active)
        unconfirmed = np.flatnonzero(~active)

        # 1. confirmed and lost tracks with high-score boxes.
        m, u_pool, u_high = assign(self._cost(pool, detections, high, self.fuse_score), self.match_thresh)
        self._update_tracks(pool[m[:, 0]], detections, high[m[:, 1]])
        det_of_track[pool[m[:, 0]]] = high[m[:, 1]]
        # 2. tracks still being tracked with low-score boxes.
        rest = pool[u_pool]
        rest = rest[ints[rest, _STATE] == _TRACKED]
        m, u_rest, _ = assign(self._cost(rest, detections, low, False), 0.5)
        self._update_tracks(rest[m[:, 0]], detections, low[m[:, 1]])
        det_of_track[rest[m[:, 0]]] = low[m[:, 1]]
        ints[rest[u_rest], _STATE] = _LOST
        # 3. unconfirmed tracks with the high-score boxes left; unmatched ones are dropped.
        high = high[u_high]
        m, u_unconf, u_high = assign(
            self._cost(unconfirmed, detections, high, self.fuse_score), 0.7
        )
        self._update_tracks(unconfirmed[m[:, 0]], detections, high[m[:, 1]])
        det_of_track[unconfirmed[m[:, 0]]] = high[m[:, 1]]
        keep = np.ones(len(ints), bool)
        keep[unconfirmed[u_unconf]] = False
        # Lost for too long.
        keep &= ~((ints[:, _STATE] == _LOST) & (self.frame_id - ints[:, _END] > self.max_time_lost))

        # 4. new tracks.
        new = high[u_high]
        new = new[conf[new] >= self.new_track_thresh]
        if len(new):
            n = len(new)
            z = xyxy_to_xyah(detections.xyxy[new].astype(np.float64))
            h = z[:, 3]
            born = kalman.initiate(z, _stds(h, _W_POS, 1e-2, 2.0) ** 2, _stds(h, _W_VEL, 1e-5, 10.0) ** 2)
            new_ints = np.zeros((n, 6), np.int64)
            new_ints[:, _ID] = np.arange(self._next_id, self._next_id + n)
            new_ints[:, _CLASS] = detections.class_id[new]
            new_ints[:, _STATE] = _TRACKED
            new_ints[:, _ACTIVE] = self.frame_id == period  # the first frame confirms at once
            new_ints[:, _END] = self.frame_id
            new_ints[:, _START] = self.frame_id
            self._next_id += n
            kf = self._kf = np.concatenate([self._kf, born], axis=1)
            ints = self._int = np.concatenate([ints, new_ints])
            self._score = np.concatenate([self._score, conf[new]])
            det_of_track = np.concatenate([det_of_track, new])
            keep = np.concatenate([keep, np.ones(n, bool)])

        keep &= self._duplicates_kept()
        tracked = keep & (ints[:, _STATE] == _TRACKED)
        out = np.flatnonzero(tracked & (ints[:, _ACTIVE] == 1))
        result = detections.take(
            det_of_track[out], ints[out, _ID], track_xyxy=xyah_to_xyxy(kf[0, out]).astype(np.float32)
        )
        self._kf, self._int, self._score = kf[:, keep], ints[keep], self._score[keep]
        return result

    def _duplicates_kept(self) -> np.ndarray:
        """Mask of tracks kept after dropping the younger of tracked/lost near-duplicates."""
        ints = self._int
        keep = np.ones(len(ints), bool)
        tracked = np.flatnonzero(ints[:, _STATE] == _TRACKED)
        lost = np.flatnonzero(ints[:, _STATE] == _LOST)
        if not len(tracked) or not len(lost):
            return keep
        boxes = xyah_to_xyxy(self._kf[0])
        p, q = np.nonzero(1.0 - iou_matrix(boxes[tracked], boxes[lost]) < 0.15)
        age = ints[:, _END] - ints[:, _START]
        older = age[tracked[p]] > age[lost[q]]
        keep[lost[q[older]]] = False
        keep[tracked[p[~older]]] = False
        return keep

    def predict(self, steps: int) -> Detections:
        """The tracks reported by the last ``update``, moved ``steps`` frames ahead."""
        rows = np.flatnonzero(
            (self._int[:, _STATE] == _TRACKED) & (self._int[:, _ACTIVE] == 1)
        )
        xyxy = xyah_to_xyxy(self._kf[0, rows] + steps * self._kf[1, rows])
        return Detections(
            xyxy, self._score[rows], self._int[rows, _CLASS], self._int[rows, _ID],
            {"track_xyxy": xyxy.astype(np.float32)},
        )
