from fractions import Fraction

import numpy as np

from streamer.analytics import TrackEvents, event_id
from streamer.types import Detections, Frame


def frame(k):
    return Frame("cam", k, Fraction(k, 10), np.zeros((1, 1, 3), np.uint8), captured_at=1000.0 + k)


def tracks(*rows):
    rows = [r for r in rows if r]
    if not rows:
        return Detections.empty()
    return Detections([r[1] for r in rows], [0.8] * len(rows), [0] * len(rows), [r[0] for r in rows])


def test_start_end_with_alive_ids_and_path_summary():
    ev = TrackEvents("cam", {0: "person"})
    out = ev.update(frame(0), tracks((1, [0, 0, 10, 10])), np.array([1]))
    assert [(e.type, e.track_id, e.frame) for e in out] == [("track_started", 1, 0)]
    ev.update(frame(1), tracks((1, [3, 4, 13, 14])), np.array([1]))
    # not reported but still held by the tracker: nothing ends
    assert ev.update(frame(2), tracks(), np.array([1])) == []
    out = ev.update(frame(3), tracks(), np.array([], int))
    assert [(e.type, e.track_id, e.frame) for e in out] == [("track_ended", 1, 1)]
    d = out[0].to_dict()
    assert d["duration"] == 0.1 and d["frames"] == 2 and d["path"] == {"start": [5.0, 5.0], "end": [8.0, 9.0], "length": 5.0}
    assert d["id"] == event_id("cam", "track_ended", 1, 1) and d["wall_time"] is None
    assert len(ev) == 0


def test_horizon_without_alive_ids_and_finish():
    ev = TrackEvents("cam", {0: "person"}, end_after=2, live=True)
    ev.update(frame(0), tracks((4, [0, 0, 1, 1])))
    assert ev.update(frame(1), tracks()) == [] and ev.update(frame(2), tracks()) == []
    (end,) = ev.update(frame(3), tracks())
    assert end.type == "track_ended" and end.wall_time == 1000.0
    ev.update(frame(4), tracks((5, [0, 0, 1, 1])))
    assert [e.track_id for e in ev.finish()] == [5]
