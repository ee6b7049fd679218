"""The whole pipeline as a user runs it: `streamer run` on files, good and bad."""

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from helpers import OBJECTS, SLOW, clip_with_detections

from streamer.cli import main
from streamer.config import load_config
from streamer.pipeline import Pipeline
from streamer.synthetic import write_mot


def decode_count(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return sum(1 for _ in c.decode(video=0)), stream.average_rate


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture()
def tiny_job(tiny_video, tmp_path):
    path, truth = tiny_video
    det = tmp_path / "det.txt"
    write_mot(det, truth)
    return path, truth, det


def run_cli(*args):
    return main(["run", *map(str, args), "--no-progress"])


def test_synthetic_video_exact_tracks(tiny_job, tmp_path):
    path, truth, det = tiny_job
    out = tmp_path / "out"
    rc = run_cli(path, "--detector", "mot", "--detections", det, "--tracker", "sort",
                 "--out-video", out / "a.mp4", "--events", out / "e.jsonl", "--mot", out / "t.txt")
    assert rc == 0
    assert decode_count(out / "a.mp4") == (40, 25)
    rows = np.loadtxt(out / "t.txt", delimiter=",")
    # SORT reports from the start (first min_hits frames) to the end: 2 objects x 40 frames
    assert len(rows) == 80 and sorted(set(rows[:, 1])) == [1, 2]
    for k, boxes in enumerate(truth, 1):
        for _, (x1, y1, x2, y2) in boxes:
            r = rows[(rows[:, 0] == k) & (rows[:, 2] == x1) & (rows[:, 3] == y1)]
            assert len(r) == 1 and r[0, 4] == x2 - x1 and r[0, 5] == y2 - y1
    # one id per object for its whole life
    for oid in (1, 2):
        xs = rows[rows[:, 1] == oid]
        assert len(xs) == 40
    events = read_events(out / "e.jsonl")
    assert [e["type"] for e in events] == ["track_started"] * 2 + ["track_ended"] * 2
    ended = {e["track_id"]: e for e in events if e["type"] == "track_ended"}
    assert ended[1]["frame"] == 39 and ended[1]["duration"] == pytest.approx(39 / 25)
    assert ended[1]["frames"] == 40 and ended[1]["pts"] == pytest.approx(39 / 25)
    assert all(e["v"] == 1 and e["source_id"] == "tiny" and e["class_name"] == "person" for e in events)

    # the same input gives the same event ids
    assert run_cli(path, "--detector", "mot", "--detections", det, "--tracker", "sort",
                   "--events", out / "again.jsonl") == 0
    assert [e["id"] for e in read_events(out / "again.jsonl")] == [e["id"] for e in events]


def test_every_and_detection_interval(tmp_path):
    # slow objects (2 px/frame): SORT keeps them across 4 decoded frames per detection
    path, det, truth = clip_with_detections(tmp_path, SLOW, 40)
    out = tmp_path / "out"
    rc = run_cli(path, "--detector", "mot", "--detections", det, "--every", "2", "--detect-every", "2",
                 "--tracker", "sort", "--out-video", out / "a.mp4", "--mot", out / "t.txt")
    assert rc == 0
    assert decode_count(out / "a.mp4") == (20, Fraction(25, 2))
    rows = np.loadtxt(out / "t.txt", delimiter=",")
    frames = sorted(set(rows[:, 0].astype(int)))
    assert frames == list(range(1, 41, 2))  # MOT frame = decoded index + 1
    assert sorted(set(rows[:, 1].astype(int))) == [1, 2]
    # frames the detector skipped (decoded 2, 6, ...) carry the tracker's predictions,
    # within a pixel of the truth once the velocity is learnt
    for k in (23, 31, 39):
        for _, (x1, _y1, _x2, _y2) in truth[k - 1]:
            got = rows[rows[:, 0] == k]
            assert np.abs(got[:, 2] - x1).min() <= 1.0, (k, got[:, 2], x1)


def test_yolo_batches_end_to_end(tiny_video, tmp_path):
    path, _ = tiny_video
    cfg = load_config(None, {
        "source": {"uri": str(path)},
        "detector": {"weights": "yolov8n.yaml", "device": "cpu", "batch": 4, "imgsz": 320, "conf": 0.01},
        "output": {"video": str(tmp_path / "y.mp4"), "events": str(tmp_path / "y.jsonl")},
        "progress": False,
    })
    p = Pipeline(cfg)
    summary = p.run()
    assert summary.frames == 40 and summary.detected == 40
    assert p.times.calls["detect"] == 40  # frames detected, in batches of up to 4
    assert decode_count(tmp_path / "y.mp4")[0] == 40


def test_pets09_public_detections(data, tmp_path):
    det = data / "mot15" / "PETS09-S2L1" / "det" / "det.txt"
    out = tmp_path / "out"
    rc = run_cli(data / "video" / "pets09-s2l1-vtest.avi", "--detector", "mot", "--detections", det,
                 "--out-video", out / "p.mp4", "--events", out / "p.jsonl", "--mot", out / "p.txt")
    assert rc == 0
    assert decode_count(out / "p.mp4") == (795, 10)
    rows = np.loadtxt(out / "p.txt", delimiter=",")
    dets = np.loadtxt(det, delimiter=",")
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= 795
    # every track box is one of the detections of its frame (to the file's 2 decimals)
    for frame in np.unique(rows[:, 0]):
        ours = rows[rows[:, 0] == frame][:, 2:6]
        theirs = dets[dets[:, 0] == frame][:, 2:6]
        diff = np.abs(ours[:, None, :] - theirs[None, :, :]).max(-1).min(1)
        assert (diff <= 0.006).all(), f"frame {frame}"
    events = read_events(out / "p.jsonl")
    started = [e for e in events if e["type"] == "track_started"]
    ended = [e for e in events if e["type"] == "track_ended"]
    assert len(started) == len(ended) == len(set(rows[:, 1]))
    assert {e["track_id"] for e in started} == set(rows[:, 1].astype(int))


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["missing.mp4"], 1, "missing.mp4: no such file"),
        ([f"{'a' * 300}.mp4"], 1, "a.mp4: cannot be read (File name too long); check the input path"),
        (["loop.mp4"], 1, "loop.mp4: cannot be read (Too many levels of symbolic links); check the input path"),
        (["clip\0.mp4"], 2, "source.uri: holds a NUL byte (\\0); no path or URL can"),
        (["{tiny}", "--events", "e\0.jsonl"], 2, "output.events: holds a NUL byte"),
        (["{tiny}", "--detector", "mot"], 2, "detector: the mot detector needs detections"),
        (["{tiny}", "--conf", "1.5"], 2, "detector.conf: Input should be less than or equal to 1 (got 1.5)"),
        (["{tiny}", "--detector", "mot", "--detections", "nowhere.txt"], 1, "nowhere.txt: no such detections file"),
        (["{tiny}", "--config", "{cfg_typo}"], 2, "detectr: unknown key"),
        (["{tiny}", "--config", "{cfg_params}"], 2, "tracker.params.max_agee: unknown key"),
        (["{tiny}", "--weights", "yolo99x.pt"], 1, "could not load weights 'yolo99x.pt'"),
        ([], 2, "no source"),
    ],
)
def test_bad_input_one_line_error(args, code, message, tiny_video, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "typo.yaml").write_text("detectr:\n  conf: 0.3\n")
    (tmp_path / "params.yaml").write_text("tracker:\n  name: sort\n  params:\n    max_agee: 3\n")
    (tmp_path / "loop.mp4").symlink_to("loop.mp4")
    subs = {"{tiny}": str(tiny_video[0]), "{cfg_typo}": "typo.yaml", "{cfg_params}": "params.yaml"}
    rc = main(["run", *[subs.get(a, a) for a in args], "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code
    assert err and message in err[-1], err
    assert not (tmp_path / "out").exists()


def test_truncated_video_keeps_outputs_valid(tmp_path, capsys):
    path, det, _ = clip_with_detections(tmp_path, OBJECTS, 60, (120, 160), "cut.mkv")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    rc = run_cli(path, "--detector", "mot", "--detections", det, "--out-video", out / "a.mp4",
                 "--events", out / "e.jsonl", "--mot", out / "t.txt")
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "cut.mkv" in err[-1] and "truncated" in err[-1]
    frames, _ = decode_count(out / "a.mp4")
    assert 10 < frames < 60
    events = read_events(out / "e.jsonl")  # parses; every started track has ended
    assert sum(e["type"] == "track_started" for e in events) == sum(e["type"] == "track_ended" for e in events) > 0
    assert np.loadtxt(out / "t.txt", delimiter=",").shape[1] == 10


def test_ctrl_c_leaves_valid_outputs(tmp_path):
    path, det, _ = clip_with_detections(tmp_path, OBJECTS, 1500, name="long.mp4")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "streamer", "run", str(path), "--detector", "mot", "--detections", str(det),
           "--out-video", str(out / "a.mp4"), "--events", str(out / "e.jsonl"), "--mot", str(out / "t.txt"),
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "t.txt").exists() or (out / "t.txt").stat().st_size < 2000:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    summary, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    frames, _ = decode_count(out / "a.mp4")
    assert 0 < frames < 1500
    # Ctrl-C finishes as SIGTERM does: every track that started has ended, and the
    # summary gives the real figures
    assert f"frames:  {frames} processed" in summary, summary
    events = read_events(out / "e.jsonl")
    started = sorted(e["track_id"] for e in events if e["type"] == "track_started")
    assert started and started == sorted(e["track_id"] for e in events if e["type"] == "track_ended")
    assert len(np.loadtxt(out / "t.txt", delimiter=",")) > 0


def test_image_folder_of_real_frames(data, tmp_path):
    """A MOT17 sequence folder (img1/ + seqinfo.ini): the ground-truth pedestrians of
    its frames as detections; every one of them comes out as a track box."""
    seq = data / "mot17-mini" / "MOT17-02-FRCNN"
    n_frames = len(list((seq / "img1").glob("*.jpg")))
    gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")
    gt = gt[(gt[:, 0] <= n_frames) & (gt[:, 6] == 1) & (gt[:, 7] == 1)]  # pedestrians considered
    det = tmp_path / "det.txt"
    det.write_text("".join(f"{int(f)},-1,{x},{y},{w},{h},1,-1,-1,-1\n" for f, _, x, y, w, h, *_ in gt))
    out = tmp_path / "out"
    rc = run_cli(seq, "--detector", "mot", "--detections", det, "--tracker", "sort",
                 "--mot", out / "t.txt", "--out-video", out / "v.mp4", "--events", out / "e.jsonl")
    assert rc == 0
    frames, rate = decode_count(out / "v.mp4")
    assert frames == n_frames and rate == 30  # frameRate of seqinfo.ini
    rows = np.loadtxt(out / "t.txt", delimiter=",")
    # SORT reports every box of the first min_hits frames, then the confirmed ones
    assert len(rows) == len(gt)
    for f, _, x, y, w, h, *_ in gt:
        match = rows[(rows[:, 0] == f) & (np.abs(rows[:, 2] - x) < 0.01) & (np.abs(rows[:, 3] - y) < 0.01)]
        assert len(match) == 1 and abs(match[0, 4] - w) < 0.01 and abs(match[0, 5] - h) < 0.01
    events = read_events(out / "e.jsonl")
    assert all(e["source_id"] == "MOT17-02-FRCNN" for e in events)


def independent_crossings(mot_rows, a, b, hysteresis):
    """Line crossings recomputed from a MOT track file, written apart from streamer's
    code: per track, the side of its boxes' bottom centres, outside a band."""
    (ax, ay), (bx, by) = a, b
    length = ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5
    counts = {"in": 0, "out": 0}
    for tid in sorted(set(mot_rows[:, 1])):
        side = None
        for _, _, x, y, w, h, *_ in sorted(mot_rows[mot_rows[:, 1] == tid].tolist()):
            px, py = x + w / 2, y + h
            dist = ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / length
            t = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / length**2
            new = 1 if dist > hysteresis else -1 if dist < -hysteresis else None
            if new is None:
                continue
            if side is not None and new != side and 0 <= t <= 1:
                counts["in" if new > 0 else "out"] += 1
            side = new
    return counts


def test_pets09_line_counts_match_the_track_file(data, tmp_path):
    det = data / "mot15" / "PETS09-S2L1" / "det" / "det.txt"
    cfg = tmp_path / "line.yaml"
    cfg.write_text(
        "analytics:\n  count_interval: 10\n  lines:\n"
        "    - name: crossing\n      points: [[420, 100], [420, 560]]\n      hysteresis: 5\n"
    )
    out = tmp_path / "out"
    rc = run_cli(data / "video" / "pets09-s2l1-vtest.avi", "--config", cfg, "--detector", "mot",
                 "--detections", det, "--events", out / "e.jsonl", "--mot", out / "t.txt")
    assert rc == 0
    events = read_events(out / "e.jsonl")
    crossed = [e for e in events if e["type"] == "line_crossed"]
    counts = [e for e in events if e["type"] == "count"]
    expected = independent_crossings(np.loadtxt(out / "t.txt", delimiter=","), (420, 100), (420, 560), 5)
    assert expected["in"] > 5 and expected["out"] > 5  # people walk both ways here
    assert sum(e["direction"] == "in" for e in crossed) == expected["in"]
    assert sum(e["direction"] == "out" for e in crossed) == expected["out"]
    # the per-interval counts add up to the same totals; intervals tile the video
    totals = {"in": 0, "out": 0}
    for c in counts:
        for key, n in c["counts"].items():
            totals[key.split(":")[0]] += n
    assert totals == expected
    assert counts[0]["interval"][0] == 0.0 and counts[-1]["interval"][1] == pytest.approx(79.4)
    assert all(a["interval"][1] == b["interval"][0] for a, b in zip(counts, counts[1:], strict=False))
    assert len({e["id"] for e in events}) == len(events)  # ids unique


def test_unknown_class_name_in_analytics(tiny_job, tmp_path, capsys):
    path, _, det = tiny_job
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("analytics:\n  zones:\n    - name: z\n      points: [[0, 0], [10, 0], [0, 10]]\n"
                   "      classes: [persn]\n")
    assert run_cli(path, "--config", cfg, "--detector", "mot", "--detections", det) == 2
    err = capsys.readouterr().err
    assert "analytics.zones[0].classes: unknown class 'persn'; the detector's classes are person" in err


def test_every_event_type_validates_against_the_shipped_schema(data, tmp_path):
    import jsonschema

    from sinks.events import SCHEMA_FILE

    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    det = data / "mot15" / "PETS09-S2L1" / "det" / "det.txt"
    cfg = tmp_path / "a.yaml"
    cfg.write_text(
        "analytics:\n  count_interval: 20\n  lines:\n    - name: crossing\n      points: [[420, 100], [420, 560]]\n"
        "  zones:\n    - name: plaza\n      points: [[300, 250], [600, 250], [600, 500], [300, 500]]\n"
        "      min_dwell: 1\n"
    )
    assert run_cli(data / "video" / "pets09-s2l1-vtest.avi", "--config", cfg, "--detector", "mot",
                   "--detections", det, "--events", tmp_path / "e.jsonl") == 0
    events = read_events(tmp_path / "e.jsonl")
    assert {e["type"] for e in events} == {"track_started", "track_ended", "line_crossed", "zone_entered",
                                          "zone_exited", "count"}
    for e in events:
        errors = sorted(validator.iter_errors(e), key=str)
        assert not errors, (e, errors[0].message)
    # and the schema does reject what breaks it
    bad = dict(next(e for e in events if e["type"] == "line_crossed"))
    del bad["direction"]
    assert list(validator.iter_errors(bad))


@pytest.mark.parametrize("tracker", ["bytetrack", "ocsort"])
def test_detection_interval_with_every_tracker(tracker, tmp_path):
    path, det, truth = clip_with_detections(tmp_path, SLOW, 60)
    out = tmp_path / "out"
    assert run_cli(path, "--detector", "mot", "--detections", det, "--detect-every", "3", "--tracker", tracker,
                   "--mot", out / "t.txt", "--events", out / "e.jsonl") == 0
    rows = np.loadtxt(out / "t.txt", delimiter=",")
    assert sorted(set(rows[:, 1].astype(int))) == [1, 2]
    # skipped frames carry predictions within 1.5 px of the truth once the tracks move
    for k in (40, 50, 59):  # decoded index k-1, not a multiple of 3
        for _, (x1, *_rest) in truth[k - 1]:
            assert np.abs(rows[rows[:, 0] == k][:, 2] - x1).min() <= 1.5
    types = [e["type"] for e in read_events(out / "e.jsonl")]
    assert types.count("track_started") == types.count("track_ended") == 2


def test_a_sink_refused_at_start_prints_one_line_and_no_summary(tiny_job, capsys):
    path, _, det = tiny_job
    assert run_cli(path, "--detector", "mot", "--detections", det, "--mqtt", "http://broker") == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().splitlines() == [
        "streamer: config error: --mqtt: URL 'http://broker' must start with mqtt:// or mqtts://"]
