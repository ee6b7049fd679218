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
    assert d["duration"] == 0.1 and d["frames"] == 2
    assert d["path"] == {"start": [5.0, 5.0], "end": [8.0, 9.0], "length": 5.0}
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


def test_source_down_ends_open_tracks_then_source_up():
    from streamer.analytics import Analytics
    from streamer.config import AnalyticsConfig

    an = Analytics("cam", {0: "person"}, AnalyticsConfig(), None, live=True)
    an.update(frame(0), tracks((1, [0, 0, 10, 10]), (2, [20, 0, 30, 10])), np.array([1, 2]))
    an.update(frame(1), tracks((1, [1, 0, 11, 10])), np.array([1, 2]))
    down = an.source_down(1, 0.1, 1001.5, "stream lost: Input/output error")
    assert [(e.type, e.track_id, e.frame) for e in down] == [
        ("track_ended", 1, 1), ("track_ended", 2, 0), ("source_down", None, 1)]
    assert down[-1].to_dict()["reason"] == "stream lost: Input/output error" and down[-1].wall_time == 1001.5
    up = an.source_up(1, 0.1, 1004.0, 2.5, 3)
    assert up[0].type == "source_up" and up[0].to_dict()["downtime"] == 2.5 and up[0].to_dict()["attempts"] == 3
    again = an.source_down(5, 0.5, 1010.0, "x")
    assert again[-1].id != down[-1].id  # one id per outage
    assert an.finish() == []
