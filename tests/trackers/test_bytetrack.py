import numpy as np
import pytest

from streamer.types import Detections
from trackers.bytetrack import ByteTrack


def dets(boxes, scores, cls=None):
    return Detections(np.array(boxes, float).reshape(-1, 4), scores, cls)


def walk(k, x0=10.0, y=10.0, v=3.0):
    return [x0 + v * k, y, x0 + v * k + 30, y + 60]


def test_first_frame_confirms_later_births_need_a_second_hit():
    t = ByteTrack()
    assert t.update(dets([walk(0)], [0.9])).tracker_id.tolist() == [1]
    out = t.update(dets([walk(1), walk(0, x0=200)], [0.9, 0.9]))
    assert out.tracker_id.tolist() == [1]  # id 2 born unconfirmed
    out = t.update(dets([walk(2), walk(1, x0=200)], [0.9, 0.9]))
    assert sorted(out.tracker_id.tolist()) == [1, 2]


def test_low_score_box_keeps_track_alive():
    t = ByteTrack(track_high_thresh=0.5, track_low_thresh=0.1, new_track_thresh=0.5)
    for k in range(3):
        t.update(dets([walk(k)], [0.9]))
    # a low-score box (occlusion) matches in the second stage, keeps the id
    out = t.update(dets([walk(3)], [0.3]))
    assert out.tracker_id.tolist() == [1]
    assert out.confidence.tolist() == pytest.approx([0.3])
    # a low-score box alone never starts a track
    t2 = ByteTrack(track_high_thresh=0.5, new_track_thresh=0.5)
    assert len(t2.update(dets([walk(0)], [0.3]))) == 0 and len(t2) == 0


def test_lost_track_recovered_then_removed_after_buffer():
    t = ByteTrack(track_buffer=5, frame_rate=30)
    for k in range(5):
        t.update(dets([walk(k)], [0.9]))
    for _ in range(5, 8):  # lost for 3 frames
        assert len(t.update(dets([], []))) == 0
    assert t.update(dets([walk(8)], [0.9])).tracker_id.tolist() == [1]
    for _ in range(9, 16):  # lost for 7 > 5 frames: removed
        t.update(dets([], []))
    assert len(t) == 0
    t.update(dets([walk(16)], [0.9]))
    assert t.update(dets([walk(17)], [0.9])).tracker_id.tolist() == [2]


def test_class_aware_and_reset():
    t = ByteTrack()
    t.update(dets([walk(0)], [0.9], [0]))
    t.update(dets([walk(1)], [0.9], [1]))  # other class: not matched to track 1
    out = t.update(dets([walk(2)], [0.9], [1]))
    assert out.tracker_id.tolist() == [2]
    t.reset()
    assert t.update(dets([walk(0)], [0.9])).tracker_id.tolist() == [1]


def test_other_class_never_matched_whatever_the_threshold():
    # past 1 + score, a gated IoU (-1) fused with the score would be admissible
    t = ByteTrack(match_thresh=2.5)
    t.update(dets([walk(0)], [0.9], [0]))
    out = t.update(dets([walk(1)], [0.9], [1]))
    assert out.tracker_id.tolist() == [] and sorted(t.alive_ids.tolist()) == [1, 2]
