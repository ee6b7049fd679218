import numpy as np
import pytest

from streamer.types import Detections
from trackers.ocsort import OcSort


def dets(boxes, scores=None, cls=None):
    boxes = np.array(boxes, float).reshape(-1, 4)
    return Detections(boxes, np.full(len(boxes), 0.9) if scores is None else scores, cls)


def walk(k, x0=10.0, y=50.0, v=4.0):
    return [x0 + v * k, y, x0 + v * k + 30, y + 60]


def test_lifecycle_min_hits_and_max_age():
    t = OcSort(min_hits=3, max_age=2)
    shown = [t.update(dets([walk(k)])).tracker_id.tolist() for k in range(5)]
    assert shown == [[1], [1], [1], [1], [1]]
    for _ in range(3):
        assert len(t.update(dets([]))) == 0
    assert len(t) == 0


def test_reupdate_after_occlusion_keeps_id_and_velocity():
    """A box moving 4 px/frame is missed for 6 frames and seen again: the id is kept
    and, thanks to ORU, the filter's velocity is the true one right away."""
    t = OcSort(min_hits=1, max_age=30)
    for k in range(10):
        t.update(dets([walk(k)]))
    for _ in range(10, 16):
        t.update(dets([]))
    out = t.update(dets([walk(16)]))
    assert out.tracker_id.tolist() == [1]
    ahead = t.predict(1)
    assert ahead.xyxy[0, 0] == pytest.approx(walk(17)[0], abs=0.5)


def test_recovery_by_last_observation():
    """A track whose prediction drifted away is recovered by IoU with its last
    observation (OCR)."""
    t = OcSort(min_hits=1, max_age=30, inertia=0.0)
    for k in range(6):
        t.update(dets([walk(k, v=8.0)]))
    # it stops dead and is missed for 2 frames: the prediction runs on by 16 px+,
    # but the next box sits where it was last seen
    t.update(dets([]))
    t.update(dets([]))
    stop = walk(5, v=8.0)
    stop[0] += 2
    stop[2] += 2
    assert t.update(dets([stop])).tracker_id.tolist() == [1]


def test_low_scores_ignored_and_reset():
    t = OcSort(det_thresh=0.5, min_hits=1)
    assert len(t.update(dets([walk(0)], [0.4]))) == 0 and len(t) == 0
    t.update(dets([walk(0)]))
    t.reset()
    assert t.update(dets([walk(0)])).tracker_id.tolist() == [1]


@pytest.mark.parametrize("persistent, expected", [(True, [3, 5, 7, 9]), (False, [3])])
def test_confirmed_track_reported_whenever_matched(persistent, expected):
    """Confirmed after 3 hits in a row, then seen every other frame: persistent tracks
    are reported at each match; the original rule hides them until a new streak."""
    t = OcSort(min_hits=3, max_age=5, persistent=persistent)
    for k in range(3):
        t.update(dets([walk(k)]))
    shown = []
    for k in range(3, 10):
        out = t.update(dets([walk(k)]) if k % 2 else dets([]))
        if len(out):
            shown.append(k)
    assert shown == expected
