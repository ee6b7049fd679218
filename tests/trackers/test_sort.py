"""SORT: faithful to the reference implementation's output, and its lifecycle."""

import numpy as np
import pytest
from helpers import MOT15_SEQS

from streamer.evaluation import load_sequence
from streamer.types import Detections
from trackers.sort import Sort


def run_sort(frames):
    tracker = Sort(max_age=1, min_hits=3, iou_threshold=0.3)
    rows = []
    for number, dets in enumerate(frames, 1):
        out = tracker.update(dets)
        box = out.data["track_xyxy"].astype(np.float64)
        for tid, (x1, y1, x2, y2) in zip(out.tracker_id, box, strict=True):
            rows.append((number, tid, x1, y1, x2 - x1, y2 - y1))
    return np.array(rows).reshape(-1, 6)


@pytest.mark.parametrize("seq", MOT15_SEQS)
def test_sort_equals_reference(data, seq):
    frames, _ = load_sequence(data / "mot15" / seq)
    ours = run_sort(frames)
    ref = np.loadtxt(data / "mot15-sort-reference" / f"{seq}.txt", delimiter=",")[:, :6]
    assert len(ours) == len(ref)
    mapping: dict[int, int] = {}
    for number in np.unique(ref[:, 0]):
        a, b = ours[ours[:, 0] == number], ref[ref[:, 0] == number]
        assert len(a) == len(b), f"frame {number}"
        for row in a:
            diff = np.abs(row[2:] - b[:, 2:]).max(axis=1)
            j = int(np.argmin(diff))
            assert diff[j] <= 0.01, f"frame {number}: box {row[2:]} not in reference"
            assert mapping.setdefault(int(row[1]), int(b[j, 1])) == b[j, 1], "id switch against reference"
    assert len(set(mapping.values())) == len(mapping), "ids must map one to one"


def box(x, y, w=20, h=40):
    return [x, y, x + w, y + h]


def dets(*boxes, cls=None):
    return Detections(np.array(boxes, float).reshape(-1, 4), np.full(len(boxes), 0.9), cls)


def test_birth_after_min_hits():
    t = Sort(max_age=1, min_hits=3)
    # the first min_hits frames report every track at once (reference behaviour)
    for k in range(3):
        assert t.update(dets(box(10 + k, 10))).tracker_id.tolist() == [1]
    # a track born at frame 4 counts hits from the next frame on, as in the reference,
    # and is reported at its third: frame 7
    seen = []
    for k in range(3, 8):
        seen.append(t.update(dets(box(10 + k, 10), box(200 + k, 50))).tracker_id.tolist())
    assert seen == [[1], [1], [1], [1, 2], [1, 2]]


def test_output_rows_are_input_rows():
    t = Sort(min_hits=1)
    d = Detections(np.array([box(100, 10), box(10, 10)], float), [0.8, 0.7], [3, 5])
    out = t.update(d)
    assert out.xyxy.tolist() == d.xyxy.tolist()
    assert out.confidence.tolist() == pytest.approx([0.8, 0.7])
    assert out.class_id.tolist() == [3, 5]
    assert out.tracker_id.tolist() == [1, 2]


def test_death_after_max_age():
    t = Sort(max_age=2, min_hits=1)
    t.update(dets(box(10, 10)))
    assert len(t.update(dets())) == 0 and len(t) == 1
    assert len(t.update(dets())) == 0 and len(t) == 1
    assert len(t.update(dets())) == 0 and len(t) == 0  # 3 frames unseen > max_age 2
    # a new track (id 2), reported from its first hit after birth
    assert t.update(dets(box(10, 10))).tracker_id.tolist() == []
    assert t.update(dets(box(10, 10))).tracker_id.tolist() == [2]


def test_track_survives_a_gap_within_max_age():
    t = Sort(max_age=2, min_hits=1)
    for k in range(5):
        t.update(dets(box(10 + 5 * k, 10)))
    t.update(dets())
    out = t.update(dets(box(10 + 5 * 6, 10)))
    assert out.tracker_id.tolist() == [1]


def test_period_predicts_over_skipped_frames():
    """Detections every 3rd frame of a box moving 4 px/frame: with period=3 the track
    keeps up; the prediction between detections moves it on."""
    t = Sort(max_age=3, min_hits=1)
    for k in range(0, 30, 3):
        out = t.update(dets(box(10 + 4 * k, 10, 40, 40)), period=3)
        assert out.tracker_id.tolist() == [1]
    ahead = t.predict(1)
    assert ahead.tracker_id.tolist() == [1]
    # velocity learnt: 12 px per update of period 3 -> 4 px per frame
    assert ahead.xyxy[0, 0] == pytest.approx(10 + 4 * 28, abs=1.0)


def test_empty_frames_and_reset():
    t = Sort(min_hits=1)
    assert len(t.update(Detections.empty())) == 0
    t.update(dets(box(0, 0)))
    t.reset()
    assert len(t) == 0
    assert t.update(dets(box(0, 0))).tracker_id.tolist() == [1]


def test_class_change_starts_a_new_track():
    t = Sort(max_age=1, min_hits=3)
    assert t.update(dets(box(10, 10), cls=[0])).tracker_id.tolist() == [1]
    out = t.update(dets(box(11, 10), cls=[2]))  # frame_count <= min_hits: shown at birth
    assert out.tracker_id.tolist() == [2] and out.class_id.tolist() == [2]
    assert len(t) == 2  # track 1 unmatched, alive until max_age
    # class-agnostic SORT keeps the id
    t = Sort(max_age=1, min_hits=1, class_aware=False)
    t.update(dets(box(10, 10), cls=[0]))
    assert t.update(dets(box(11, 10), cls=[2])).tracker_id.tolist() == [1]


def test_ids_are_per_instance():
    a, b = Sort(min_hits=1), Sort(min_hits=1)
    a.update(dets(box(0, 0), box(100, 0)))
    assert b.update(dets(box(0, 0))).tracker_id.tolist() == [1]
