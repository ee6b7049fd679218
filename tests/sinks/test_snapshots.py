"""Snapshots: the best frame of a track that walks in from the edge, as the score prefers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import cv2
import jsonschema
import numpy as np

from sinks.events import SCHEMA_FILE
from sinks.snapshots import CUT, score
from streamer.config import load_config
from streamer.pipeline import Pipeline
from streamer.synthetic import MovingBox, write_video

# 30 x 40, walking in from the left edge at 2 px/frame: cut by the edge up to frame 15.
WALKER = MovingBox(-30, 100, 30, 40, 2.0, 0.0, (230, 25, 75))
FRAMES = 120


def confidence(frame: int) -> float:
    """Very sure while the box is cut by the edge, less once it is whole, a peak at 50."""
    return 0.99 if frame <= 15 else 0.8 if frame == 50 else 0.7


def test_score_prefers_confidence_size_and_whole_boxes():
    assert score((10, 10, 40, 50), 0.5, 320, 240) == 0.5 * math.sqrt(1200)
    assert score((0, 10, 30, 50), 0.5, 320, 240) == CUT * 0.5 * math.sqrt(1200)  # touches the left edge
    assert score((290, 10, 320, 50), 0.5, 320, 240) == CUT * 0.5 * math.sqrt(1200)  # the right edge
    assert score((10, 10, 40, 50), 0.9, 320, 240) > score((10, 10, 50, 60), 0.5, 320, 240)  # sqrt: size counts less


def test_snapshot_of_a_track_walking_in_from_the_edge(tmp_path):
    video = tmp_path / "cam.mp4"
    truth = write_video(video, [WALKER], FRAMES, (240, 320), 25)
    lines = []
    for k, boxes in enumerate(truth):
        for _, (x1, y1, x2, y2) in boxes:
            lines.append(f"{k + 1},-1,{x1},{y1},{x2 - x1},{y2 - y1},{confidence(k)},-1,-1,-1\n")
    det = tmp_path / "det.txt"
    det.write_text("".join(lines))
    config = load_config(None, {
        "source": {"uri": str(video), "id": "cam"}, "detector": {"name": "mot", "detections": str(det)},
        "analytics": {"lines": [{"name": "door", "points": [[160, 0], [160, 240]]}]}, "progress": False,
        "output": {"events": str(tmp_path / "events.jsonl"), "snapshots": {"folder": str(tmp_path / "snaps")}},
    })
    Pipeline(config).run()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    schema = json.loads(SCHEMA_FILE.read_text())
    for event in events:
        jsonschema.validate(event, schema)

    # What the score prefers, from the ground truth: frame 50 (0.8, whole); without the
    # edge penalty frame 15 (0.99, its box on the edge) would win.
    scores = {k: score(boxes[0][1], confidence(k), 320, 240) for k, boxes in enumerate(truth) if boxes}
    best = max(scores, key=scores.get)
    assert best == 50
    unpenalised = {k: confidence(k) * math.sqrt((b[0][1][2] - b[0][1][0]) * (b[0][1][3] - b[0][1][1]))
                   for k, b in enumerate(truth) if b}
    assert max(unpenalised, key=unpenalised.get) == 15

    ended = next(e for e in events if e["type"] == "track_ended")
    crossing = next(e for e in events if e["type"] == "line_crossed")
    snap = ended["snapshot"]
    x1, y1, x2, y2 = truth[50][0][1]
    assert (snap["frame"], snap["box"], snap["pts"]) == (50, [x1, y1, x2, y2], 2.0)
    assert snap["score"] == round(scores[50], 4)
    assert crossing["frame"] == 91 and crossing["snapshot"] == snap  # the best so far at the trigger: the same

    with av.open(str(video)) as c:
        source = next(f for i, f in enumerate(c.decode(video=0)) if i == 50).to_ndarray(format="rgb24")
    crop = cv2.cvtColor(cv2.imread(snap["crop"]), cv2.COLOR_BGR2RGB)
    assert crop.shape == (y2 - y1, x2 - x1, 3)  # the crop is the box
    assert np.abs(crop.astype(int) - source[y1:y2, x1:x2].astype(int)).mean() < 4  # JPEG q90 of the same pixels
    full = cv2.cvtColor(cv2.imread(snap["image"]), cv2.COLOR_BGR2RGB)
    assert full.shape == (240, 320, 3)
    inside = np.abs(full[y1 + 4:y2 - 4, x1 + 4:x2 - 4].astype(int) - source[y1 + 4:y2 - 4, x1 + 4:x2 - 4]).mean()
    outline = np.abs(full[y1, x1:x2].astype(int) - source[y1, x1:x2]).mean()
    assert inside < 4 and outline > 30  # the box is drawn on its outline, the inside untouched
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == ["cam-1-000050-crop.jpg",
                                                                      "cam-1-000050-frame.jpg"]
    assert all("snapshot" not in e for e in events if e["type"] == "track_started")


def test_no_snapshot_without_a_detected_frame(tmp_path):
    from sinks.snapshots import SnapshotSink
    from streamer.types import Event

    sink = SnapshotSink("cam", tmp_path / "s", {0: "box"})
    sink.open()
    ended = Event("e", "track_ended", "cam", 3, 0.1, None, 7, 0, "box", 0.9, (0, 0, 1, 1), {})
    assert sink.annotate(None, None, [ended]) == [ended]
    sink.close()
    assert list((tmp_path / "s").iterdir()) == []
    assert Path(tmp_path / "s").is_dir()
