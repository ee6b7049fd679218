"""Lines, zones and counts on synthetic tracks with exact expected events."""

from fractions import Fraction

import numpy as np
import pytest

from streamer.analytics import Analytics, inside_polygon
from streamer.config import AnalyticsConfig
from streamer.types import Detections, Frame

NAMES = {0: "person", 2: "car"}


def frame(k):
    return Frame("cam", k, Fraction(k, 10), np.zeros((1, 1, 3), np.uint8))


def feet(x, y, cls=0, tid=1):
    """A 10x20 box whose bottom centre is (x, y)."""
    return (tid, [x - 5, y - 20, x + 5, y], cls)


def tracks(*rows):
    if not rows:
        return Detections.empty()
    return Detections([r[1] for r in rows], [0.9] * len(rows), [r[2] for r in rows], [r[0] for r in rows])


def run(analytics, path, alive_until=None):
    """Feed ``path[k]`` (a tuple of rows or ()) at frame k; returns (frame, type, data)."""
    out = []
    for k, rows in enumerate(path):
        alive = np.array(sorted({r[0] for step in path[: k + 1] for r in step}), int)
        if alive_until is not None and k >= alive_until:
            alive = np.array([], int)
        for e in analytics.update(frame(k), tracks(*rows), alive):
            out.append((e.frame, e.type, e.track_id, e.data))
    for e in analytics.finish():
        out.append((e.frame, e.type, e.track_id, e.data))
    return out


def analytics(**cfg):
    return Analytics("cam", NAMES, AnalyticsConfig(**cfg), (480, 640))


LINE = {"name": "door", "points": [[100, 0], [100, 200]], "hysteresis": 5}  # vertical, pointing down


def test_crossing_directions():
    # Walking from (100, 0) to (100, 200) (down the image), the left-hand side is x > 100:
    # x 80 -> 120 goes from right to left (out), and back (in).
    a = analytics(lines=[LINE])
    xs = [80, 90, 110, 120, 110, 90, 80]
    events = run(a, [(feet(x, 100),) for x in xs])
    crossings = [(f, d["direction"]) for f, t, _, d in events if t == "line_crossed"]
    assert crossings == [(2, "out"), (5, "in")]


def test_jitter_on_the_line_counts_once():
    a = analytics(lines=[LINE])
    xs = [90, 94, 103, 97, 104, 96, 103, 99, 106, 108, 104, 97, 103, 110]
    events = run(a, [(feet(x, 100),) for x in xs])
    assert [(f, d["direction"]) for f, t, _, d in events if t == "line_crossed"] == [(8, "out")]


def test_crossing_beyond_the_segment_does_not_count():
    a = analytics(lines=[LINE])
    events = run(a, [(feet(x, 300),) for x in (80, 120)])  # y = 300: below the segment's end
    assert not [e for e in events if e[1] == "line_crossed"]


def test_class_filter_and_per_class_counts():
    a = analytics(lines=[{**LINE, "classes": ["car"]}], count_interval=1.0)
    path = [(feet(80, 50, 0, 1), feet(80, 150, 2, 2)), (feet(120, 50, 0, 1), feet(120, 150, 2, 2))]
    events = run(a, path)
    assert [(tid, d["direction"]) for _, t, tid, d in events if t == "line_crossed"] == [(2, "out")]
    (count,) = [d for _, t, _, d in events if t == "count"]
    assert count == {"target": "line", "name": "door", "interval": [0.0, 0.1], "counts": {"out:car": 1}}


ZONE = {"name": "dock", "points": [[200, 200], [300, 200], [300, 300], [200, 300]]}


def test_zone_leave_and_reenter_with_dwell():
    a = analytics(zones=[ZONE])
    ys = [150, 250, 260, 270, 350, 360, 250, 240]  # in at 1, out at 4, in again at 6
    events = run(a, [(feet(250, y),) for y in ys])
    zone = [(f, t, d.get("dwell")) for f, t, _, d in events if t.startswith("zone_")]
    # the second visit is still open at the end of the stream: closed with the track
    assert zone == [(1, "zone_entered", None), (4, "zone_exited", pytest.approx(0.2)),
                    (6, "zone_entered", None), (7, "zone_exited", pytest.approx(0.1))]
    last = [d for _, t, _, d in events if t == "zone_exited"][-1]
    assert last["reason"] == "track_ended"
    # the zone_exited of an ended track comes before its track_ended
    types = [t for _, t, _, _ in events]
    assert types.index("track_ended") == len(types) - 1


def test_min_dwell_and_track_ending_inside():
    a = analytics(zones=[{**ZONE, "min_dwell": 0.25}])
    ys = [150, 250, 250, 150, 250, 250, 250, 250, 250]  # short visit (0.1 s), then a long one
    path = [(feet(250, y),) for y in ys] + [()]
    events = run(a, path, alive_until=9)
    zone = [(f, t, d) for f, t, _, d in events if t.startswith("zone_")]
    assert [(f, t) for f, t, _ in zone] == [(7, "zone_entered"), (8, "zone_exited")]
    assert zone[0][2]["entered_at"] == pytest.approx(0.4)
    assert zone[1][2] == {"zone": "dock", "entered_at": pytest.approx(0.4), "dwell": pytest.approx(0.4),
                          "reason": "track_ended"}
    assert [t for _, t, _, _ in events][-2:] == ["zone_exited", "track_ended"]


def test_state_dies_with_the_track():
    a = analytics(lines=[LINE], zones=[ZONE])
    run(a, [(feet(80, 100), feet(250, 250, tid=2)), (feet(120, 100), feet(250, 260, tid=2)), ()], alive_until=2)
    assert a.lines[0].side == {} and a.zones[0].visits == {}


def test_normalized_points():
    config = AnalyticsConfig(lines=[{"name": "mid", "points": [[0.5, 0], [0.5, 1]], "normalized": True}])
    a = Analytics("cam", NAMES, config, (200, 400))
    assert a.lines[0].a.tolist() == [200, 0] and a.lines[0].ab.tolist() == [0, 200]


def test_inside_polygon():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    pts = np.array([[5, 5], [15, 5], [-1, 5], [5, 11], [9.9, 0.1]])
    assert inside_polygon(pts, square).tolist() == [True, False, False, False, True]


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"zones": [{"name": "z", "points": [[0, 0], [1, 1]]}]}, "a zone needs at least 3 points, got 2"),
        ({"lines": [{"name": "l", "points": [[0, 0]]}]}, "a line needs exactly 2 points, got 1"),
        ({"lines": [{"name": "l", "points": [[0, 0], [0, 0]]}]}, "must differ"),
        ({"lines": [{"name": "l", "points": [[0, 0], [2, 1]], "normalized": True}]},
         "normalized points must lie in 0-1"),
        ({"lines": [{"name": "x", "points": [[0, 0], [1, 1]]}],
          "zones": [{"name": "x", "points": [[0, 0], [1, 0], [0, 1]]}]}, "repeated: x"),
        ({"zones": [{"name": "z", "points": [[0, 0], [5, 5], [10, 10]]}]},
         r"enclose no area \(they are on one line\)"),
        ({"zones": [{"name": "bowtie", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]}]},
         "the edges of the zone cross each other; give its points in order around it"),
        ({"lines": [{"name": "", "points": [[0, 0], [1, 1]]}]}, r"lines.0.name: a line or zone needs a name"),
        ({"zones": [{"name": "  ", "points": [[0, 0], [1, 0], [0, 1]]}]}, r"zones.0.name: a line or zone needs a name"),
    ],
)
def test_bad_config(cfg, message):
    from streamer.config import load_config
    from streamer.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(None, {"analytics": cfg})


def test_analytics_replaced_while_tracks_go_on():
    """A zone replaced by a line mid-stream: the open visit ends ('analytics_replaced'),
    the old zone's interval closes, the track goes on and crosses the new line; removal
    ends the track and says so last."""
    zone = AnalyticsConfig(zones=[{"name": "z", "points": [[0, 0], [50, 0], [50, 100], [0, 100]]}],
                           count_interval=10.0)
    line = AnalyticsConfig(lines=[{"name": "l", "points": [[60, 0], [60, 100]]}])
    analytics = Analytics("cam", NAMES, zone, (100, 100))
    got = []
    for k, x in enumerate((10, 20, 30)):
        got += [(e.frame, e.type, e.data) for e in analytics.update(frame(k), tracks(feet(x, 50)), np.array([1]))]
    got += [(e.frame, e.type, e.data) for e in analytics.replace(line)]
    for k, x in enumerate((40, 55, 70), start=3):
        got += [(e.frame, e.type, e.data) for e in analytics.update(frame(k), tracks(feet(x, 50)), np.array([1]))]
    got += [(e.frame, e.type, e.data) for e in analytics.removed(123.0, "deleted")]
    assert got == [
        (0, "track_started", {}),
        (0, "zone_entered", {"zone": "z", "entered_at": 0.0}),
        (2, "zone_exited", {"zone": "z", "entered_at": 0.0, "dwell": 0.2, "reason": "analytics_replaced"}),
        (2, "count", {"target": "zone", "name": "z", "interval": [0.0, 0.2], "counts": {"entered:person": 1,
                                                                                       "exited:person": 1},
                      "occupancy": 0}),
        (5, "line_crossed", {"line": "l", "direction": "out"}),
        (5, "track_ended", got[-2][2]),
        (5, "source_removed", {"reason": "deleted"}),
    ]
    assert got[-2][2]["first_frame"] == 0 and got[-2][2]["frames"] == 6
