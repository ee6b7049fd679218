"""What the three trackers share must behave the same in each: ids, alive_ids, reset,
class gating and predict(steps)."""

import numpy as np
import pytest

from streamer.protocols import Tracker
from streamer.types import Detections
from trackers.bytetrack import ByteTrack
from trackers.ocsort import OcSort
from trackers.sort import Sort

TRACKERS = {
    "sort": lambda: Sort(min_hits=1, max_age=3),
    "bytetrack": lambda: ByteTrack(),
    "ocsort": lambda: OcSort(min_hits=1),
}


def moving(k: int, classes=(0, 0)) -> Detections:
    """Two boxes moving right at 4 px/frame and down at 2 px/frame."""
    xyxy = [[10 + 4 * k, 20 + 2 * k, 50 + 4 * k, 100 + 2 * k], [200 + 4 * k, 40 + 2 * k, 240 + 4 * k, 120 + 2 * k]]
    return Detections(np.array(xyxy, np.float32), [0.9, 0.8], list(classes))


@pytest.mark.parametrize("name", TRACKERS)
def test_predict_moves_the_last_reported_tracks_and_changes_nothing(name):
    tracker = TRACKERS[name]()
    assert isinstance(tracker, Tracker)
    for k in range(12):
        out = tracker.update(moving(k))
    assert sorted(out.tracker_id.tolist()) == [1, 2]
    ahead = tracker.predict(3)
    # the same tracks, in the same order, with their last scores and classes
    assert ahead.tracker_id.tolist() == out.tracker_id.tolist()
    assert ahead.confidence.tolist() == pytest.approx(out.confidence.tolist())
    assert ahead.class_id.tolist() == out.class_id.tolist()
    # moved 3 frames along the learnt motion (12 px right, 6 px down), within a pixel
    moved = ahead.data["track_xyxy"] - out.data["track_xyxy"]
    np.testing.assert_allclose(moved[:, [0, 2]], 12, atol=1.0)
    np.testing.assert_allclose(moved[:, [1, 3]], 6, atol=1.0)
    np.testing.assert_array_equal(ahead.xyxy, ahead.data["track_xyxy"])
    # no state changed: predicting again, and the next update, are as if predict never ran
    np.testing.assert_array_equal(tracker.predict(3).xyxy, ahead.xyxy)
    twin = TRACKERS[name]()
    for k in range(12):
        twin.update(moving(k))
    np.testing.assert_array_equal(tracker.update(moving(12)).xyxy, twin.update(moving(12)).xyxy)
    assert tracker.predict(0).tracker_id.tolist() == twin.predict(0).tracker_id.tolist()


@pytest.mark.parametrize("name", TRACKERS)
def test_reset_forgets_tracks_and_restarts_ids(name):
    tracker = TRACKERS[name]()
    for k in range(5):
        tracker.update(moving(k))
    assert sorted(tracker.alive_ids.tolist()) == [1, 2]
    tracker.reset()
    assert len(tracker) == 0 and tracker.alive_ids.tolist() == [] and len(tracker.predict(1)) == 0
    for k in range(5):
        out = tracker.update(moving(k))
    assert sorted(out.tracker_id.tolist()) == [1, 2]


@pytest.mark.parametrize("name", TRACKERS)
def test_a_box_of_another_class_never_continues_a_track(name):
    tracker = TRACKERS[name]()
    for k in range(5):
        tracker.update(moving(k, classes=(0, 0)))
    before = dict(zip(tracker.alive_ids.tolist(), [0, 0], strict=True))
    out = tracker.update(moving(5, classes=(0, 1)))  # the second box changes class
    by_class = dict(zip(out.class_id.tolist(), out.tracker_id.tolist(), strict=True))
    assert by_class.get(0) in before  # the first box keeps its track
    assert by_class.get(1) not in before  # the other starts a new one, or is not reported yet
