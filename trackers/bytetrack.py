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
from trackers.association import Pairs, assign, iou_cost, similarity
from trackers.base import xyah_to_xyxy, xyxy_to_xyah
from trackers.core import CLASS, TrackTable

__all__ = ["ByteTrack"]

_W_POS = 1.0 / 20.0
_W_VEL = 1.0 / 160.0
_TRACKED, _LOST = 1, 2
# Columns of the integer state after the id and class.
_STATE, _ACTIVE, _END, _START = range(2, 6)


def _stds(h: np.ndarray, pos: float, ratio: float, scale_pos: float = 1.0) -> np.ndarray:
    """``(N, 4)`` standard deviations ``[w h, w h, ratio, w h]`` for heights ``h``."""
    s = np.empty((len(h), 4))
    s[:] = (scale_pos * pos * h)[:, None]
    s[:, 2] = ratio
    return s


class ByteTrack(TrackTable):
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

    columns = 6

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
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        super().__init__(class_aware)

    def reset(self) -> None:
        super().reset()
        self.frame_id = 0

    def _move(self, kf: np.ndarray, steps: int) -> None:
        for _ in range(steps):
            h = kf[0, :, 3].copy()
            kalman.predict(kf, _stds(h, _W_POS, 1e-2) ** 2, _stds(h, _W_VEL, 1e-5) ** 2)

    def _boxes(self, state: np.ndarray) -> np.ndarray:
        return xyah_to_xyxy(state)

    def _cost(self, rows: np.ndarray, dets: Detections, det_rows: np.ndarray, fuse: bool) -> np.ndarray:
        """``1 - IoU`` (times the score with ``fuse``) of tracks ``rows`` and boxes
        ``det_rows``; pairs of other classes (when class-aware) cost infinity."""
        iou = self._iou(xyah_to_xyxy(self._kf[0, rows]), dets.xyxy[det_rows].astype(np.float64),
                        self._int[rows, CLASS], dets.class_id[det_rows])
        return iou_cost(iou, dets.confidence[det_rows] if fuse else None)

    def _update_tracks(self, rows: np.ndarray, dets: Detections, det_rows: np.ndarray) -> None:
        if not len(rows):
            return
        z = xyxy_to_xyah(dets.xyxy[det_rows].astype(np.float64))
        kalman.update(self._kf, z, _stds(self._kf[0, rows, 3], _W_POS, 1e-1) ** 2, rows=rows)
        ints = self._int
        ints[rows, _STATE] = _TRACKED
        ints[rows, _ACTIVE] = 1
        ints[rows, _END] = self.frame_id
        ints[rows, CLASS] = dets.class_id[det_rows]
        self._score[rows] = dets.confidence[det_rows]

    def update(self, detections: Detections, *, period: int = 1) -> Detections:
        """Advance all tracks by ``period`` frames and match them to ``detections``."""
        self.frame_id += period
        ints = self._int
        # Lost tracks stop growing or shrinking (as ByteTrack does).
        self._kf[1, ints[:, _STATE] != _TRACKED, 3] = 0.0
        self._move(self._kf, period)

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
            z = xyxy_to_xyah(detections.xyxy[new].astype(np.float64))
            h = z[:, 3]
            born = kalman.initiate(z, _stds(h, _W_POS, 1e-2, 2.0) ** 2, _stds(h, _W_VEL, 1e-5, 10.0) ** 2)
            rows = self._add(born, detections.class_id[new], conf[new])
            ints = self._int
            ints[rows, _STATE] = _TRACKED
            ints[rows, _ACTIVE] = self.frame_id == period  # the first frame confirms at once
            ints[rows, _END] = self.frame_id
            ints[rows, _START] = self.frame_id
            det_of_track = np.concatenate([det_of_track, new])
            keep = np.concatenate([keep, np.ones(len(new), bool)])

        keep &= self._duplicates_kept()
        result = self._report(detections, det_of_track, keep & (ints[:, _STATE] == _TRACKED) & (ints[:, _ACTIVE] == 1))
        self._keep(keep)
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
        iou = similarity(boxes[tracked], boxes[lost])
        p, q = iou.where(1.0 - iou.values < 0.15) if isinstance(iou, Pairs) else np.nonzero(1.0 - iou < 0.15)
        age = ints[:, _END] - ints[:, _START]
        older = age[tracked[p]] > age[lost[q]]
        keep[lost[q[older]]] = False
        keep[tracked[p[~older]]] = False
        return keep
