import json
from fractions import Fraction

import av
import numpy as np
import pytest

from sinks.annotate import annotate, color_for
from sinks.events import SCHEMA_VERSION, JsonlSink
from sinks.mot import MotSink, format_mot
from sinks.video import VideoSink
from streamer.types import Detections, Event, Frame


def frame(k, h=61, w=83, value=40):
    return Frame("cam", k, Fraction(k, 15), np.full((h, w, 3), value, np.uint8))


def test_video_sink_odd_size_frame_count_and_pts(tmp_path):
    path = tmp_path / "v.mp4"
    tracks = Detections([[10, 10, 30, 40]], [0.9], [0], [7])
    with VideoSink(path, Fraction(15), {0: "person"}) as sink:
        for k in range(23):
            sink.write(frame(k), tracks, [])
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.average_rate == 15 and (s.width, s.height) == (84, 62)
        decoded = list(c.decode(video=0))
    assert len(decoded) == 23
    assert [float(f.time) for f in decoded] == pytest.approx([k / 15 for k in range(23)])
    img = decoded[5].to_ndarray(format="rgb24")
    # the box's 1-px outline is drawn (4:2:0 chroma blurs its colour, not its presence)
    assert np.abs(img[25, 10].astype(int) - 40).max() > 40
    assert np.abs(img[25, 20].astype(int) - 40).max() < 12


def test_video_sink_without_frames_leaves_no_broken_file(tmp_path):
    path = tmp_path / "empty.mp4"
    with VideoSink(path, Fraction(25)):
        pass
    assert not path.exists()


def test_annotate_draws_only_a_copy():
    image = np.zeros((100, 100, 3), np.uint8)
    out = annotate(image, Detections([[10, 20, 50, 80]], [0.5], [2], [3]), {2: "car"})
    assert image.max() == 0 and out.shape == image.shape
    assert tuple(out[50, 10]) == color_for(3)


def test_jsonl_lines_parse_and_carry_the_schema(tmp_path):
    path = tmp_path / "e.jsonl"
    ev = Event("abc", "track_started", "cam", 3, 0.2, None, 5, 0, "person", 0.9, (1.0, 2.0, 3.0, 4.0))
    with JsonlSink(path) as sink:
        sink.write(frame(3), Detections.empty(), [ev, ev])
        sink.write_events([])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"v": SCHEMA_VERSION, "id": "abc", "type": "track_started", "source_id": "cam", "frame": 3,
                        "pts": 0.2, "wall_time": None, "track_id": 5, "class_id": 0, "class_name": "person",
                        "confidence": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}
    assert len(lines) == 2


def test_mot_format(tmp_path):
    tracks = Detections([[10.5, 20.25, 40.5, 80.75]], [0.5], [0], [3],
                        {"track_xyxy": np.array([[11, 21, 41, 81]], np.float32)})
    assert format_mot(7, tracks) == "7,3,10.50,20.25,30.00,60.50,0.5000,-1,-1,-1\n"
    assert format_mot(7, tracks, box="track") == "7,3,11.00,21.00,30.00,60.00,0.5000,-1,-1,-1\n"
    with MotSink(tmp_path / "t.txt") as sink:
        sink.write(frame(0), tracks, [])
        sink.write(frame(1), Detections.empty(), [])
    assert (tmp_path / "t.txt").read_text().startswith("1,3,10.50")
    with pytest.raises(ValueError):
        MotSink(tmp_path / "x.txt", box="kalman")


def test_jsonl_rotation_keeps_whole_lines_in_order(tmp_path):
    path = tmp_path / "e.jsonl"
    events = [Event(f"{k:020x}", "track_started", "cam", k, k / 10, None, k, 0, "person", 0.9, (1.0, 2.0, 3.0, 4.0))
              for k in range(200)]
    with JsonlSink(path, max_bytes=4096, backups=3) as sink:
        for k in range(0, 200, 7):
            sink.write(frame(k), Detections.empty(), events[k : k + 7])
    files = [path.with_name(f"e.jsonl.{k}") for k in (3, 2, 1)] + [path]
    assert all(f.exists() for f in files) and not path.with_name("e.jsonl.4").exists()
    assert all(f.stat().st_size <= 4096 for f in files)
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    frames = [e["frame"] for e in lines]
    assert frames == list(range(200 - len(frames), 200))  # the newest, in order; oldest rotated out


def test_events_to_stdout_keep_stdout_clean(tmp_path, capsys):
    from helpers import OBJECTS, clip_with_detections

    from streamer.cli import main

    video, det, _ = clip_with_detections(tmp_path, OBJECTS, 20)
    assert main(["run", str(video), "--detector", "mot", "--detections", str(det),
                 "--events", "-", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events].count("track_started") == 2 and "frames:" in err


def test_video_sink_draws_lines_zones_counts_and_replaced_analytics(tmp_path):
    from sinks.annotate import LINE_COLOR, ZONE_COLOR
    from streamer.config import AnalyticsConfig

    first = AnalyticsConfig.model_validate({"lines": [{"name": "door", "points": [[80, 0], [80, 120]]}]})
    second = AnalyticsConfig.model_validate(
        {"zones": [{"name": "desk", "points": [[20, 20], [140, 20], [140, 100], [20, 100]]}]})
    sink = VideoSink(tmp_path / "a.mp4", Fraction(10), {0: "person"}, crf=0, analytics=first)
    sink.open()
    none = Detections.empty()
    for i in range(4):
        if i == 2:
            sink.analytics_changed(second)  # from this frame on: the zone, not the line
        sink.write(Frame("s", i, Fraction(i, 10), np.zeros((120, 160, 3), np.uint8)), none)
    sink.close()
    with av.open(str(tmp_path / "a.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(frames) == 4

    def near(pixels, color):  # the hue of any pixel of a few (4:2:0 dims a 2 px line's colour)
        on = np.asarray(color) > 0
        return bool(((pixels[:, on].min(axis=-1) - pixels[:, ~on].max(axis=-1)) > 40).any())

    assert near(frames[0][60, 78:83], LINE_COLOR) and near(frames[1][60, 78:83], LINE_COLOR)
    assert not near(frames[3][60, 78:83], LINE_COLOR) and near(frames[3][60, 138:143], ZONE_COLOR)
