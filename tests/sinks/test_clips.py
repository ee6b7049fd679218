"""Event clips: cut from the source's own packets, bit-identical to its frames, with a
known GOP and exact ground truth; overlapping triggers; retention; crash safety; RTSP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import jsonschema
import numpy as np
import pytest
from helpers import REPO, BlobDetector, http_server, run_in_thread, wait_for

from sinks.clips import ClipSink, apply_retention
from sinks.events import SCHEMA_FILE
from streamer.config import OutputConfig, TriggerConfig, load_config
from streamer.decode import Position, decode
from streamer.errors import ConfigError
from streamer.packets import PacketRing
from streamer.pipeline import Pipeline
from streamer.sampling import Sampler
from streamer.synthetic import MovingBox, write_mot, write_video
from streamer.types import Event

FPS = 25
DOOR = {"name": "door", "points": [[160, 0], [160, 240]]}
# A box walking right at 2 px/frame: its bottom centre crosses x = 160 once.
WALKER = [MovingBox(0, 100, 30, 40, 2.0, 0.0, (230, 25, 75))]


def scene(tmp_path: Path, objects: list, frames: int, gop: int) -> tuple[Path, Path]:
    video = tmp_path / "cam.mp4"
    truth = write_video(video, objects, frames, (240, 320), FPS, gop=gop)
    det = tmp_path / "det.txt"
    write_mot(det, truth)
    return video, det


def run(tmp_path: Path, video: Path, det: Path, clips: dict, **extra) -> list[dict]:
    overrides = {
        "source": {"uri": str(video), "id": "cam"}, "detector": {"name": "mot", "detections": str(det)},
        "analytics": {"lines": [DOOR]}, "progress": False,
        "output": {"events": str(tmp_path / "events.jsonl"), "clips": {"folder": str(tmp_path / "clips"), **clips}},
    }
    overrides.update(extra)
    Pipeline(load_config(None, overrides)).run()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    schema = json.loads(SCHEMA_FILE.read_text())
    for event in events:
        jsonschema.validate(event, schema)
    return events


def decoded(path: Path) -> list[tuple[Fraction, np.ndarray]]:
    """Every frame of a video: exact pts and its YUV planes as decoded (no conversion)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [(f.pts * stream.time_base, f.to_ndarray()) for f in c.decode(stream)]


def keyframes(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return sorted(round(p.pts * stream.time_base * FPS) for p in c.demux(stream) if p.size and p.is_keyframe)


def assert_clip_is_the_source(clip: Path, source: Path, start: float) -> list[int]:
    """The clip's frames are the source's from ``start`` on, bit for bit; returns their indices."""
    frames = decoded(clip)
    by_pts = {round(pts * FPS): image for pts, image in decoded(source)}
    first = round(Fraction(str(start)) * FPS)
    indices = [first + round(pts * FPS) for pts, _ in frames]
    assert indices == list(range(first, first + len(frames)))  # contiguous, from the keyframe
    for index, (_, image) in zip(indices, frames, strict=True):
        assert np.array_equal(image, by_pts[index]), f"frame {index} differs"
    return indices


def test_clip_is_cut_from_the_packets_at_the_keyframe_before_pre(tmp_path):
    video, det = scene(tmp_path, WALKER, 200, gop=20)
    assert keyframes(video) == list(range(0, 200, 20))
    events = run(tmp_path, video, det, {"pre": 1.0, "post": 1.0})
    crossing = next(e for e in events if e["type"] == "line_crossed")
    ready = [e for e in events if e["type"] == "clip_ready"]
    assert crossing["frame"] == 76  # bottom centre 2k + 15 passes 160 + 5 px of hysteresis
    assert len(ready) == 1 and ready[0]["triggers"] == [crossing["id"]]
    assert events.index(ready[0]) > events.index(crossing)
    planned, clip = crossing["clip"], ready[0]["clip"]
    # The keyframe at or before frame 76 - 25 = 51 is frame 40; the end is at or after 76 + 25.
    assert planned == {"path": str(tmp_path / "clips" / "cam-000076.mp4"), "start": 1.6, "end": 4.04,
                       "pre": 1.44, "long_gop": False}
    assert clip["path"] == planned["path"] and clip["start"] == 1.6 and clip["end"] >= 4.04
    assert (clip["codec"], clip["width"], clip["height"], clip["complete"], clip["reason"]) == (
        "h264", 320, 240, True, "complete")
    path = Path(clip["path"])
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.width, s.codec_context.height) == ("h264", 320, 240)
    indices = assert_clip_is_the_source(path, video, clip["start"])
    assert indices[0] == 40 and indices[-1] >= 101 and len(indices) == clip["frames"]
    assert indices[-1] <= 101 + 16  # it ends near the end: at most the reorder lookahead past it
    assert clip["bytes"] == path.stat().st_size
    assert sorted(p.name for p in path.parent.iterdir()) == ["cam-000076.mp4"]  # no .part left


def test_gop_longer_than_pre_starts_at_the_keyframe_before_and_says_so(tmp_path):
    video, det = scene(tmp_path, WALKER, 200, gop=100)  # keyframes at 0 and 100 (4 s apart)
    events = run(tmp_path, video, det, {"pre": 1.0, "post": 0.5})
    crossing = next(e for e in events if e["type"] == "line_crossed")
    clip = next(e for e in events if e["type"] == "clip_ready")["clip"]
    assert crossing["clip"]["long_gop"] is True and crossing["clip"]["pre"] == 3.04  # from frame 0
    assert clip["start"] == 0.0 and clip["long_gop"] is True
    indices = assert_clip_is_the_source(Path(clip["path"]), video, clip["start"])
    assert indices[0] == 0 and indices[-1] >= 76 + 12


def test_overlapping_triggers_extend_one_clip(tmp_path):
    walkers = [MovingBox(0, 40, 30, 40, 2.0, 0.0, (230, 25, 75)),
               MovingBox(-40, 150, 30, 40, 2.0, 0.0, (0, 130, 200))]  # crosses 20 frames later
    video, det = scene(tmp_path, walkers, 200, gop=25)
    events = run(tmp_path, video, det, {"pre": 1.0, "post": 1.0})
    crossings = [e for e in events if e["type"] == "line_crossed"]
    ready = [e for e in events if e["type"] == "clip_ready"]
    assert [e["frame"] for e in crossings] == [76, 96]
    assert len(ready) == 1 and ready[0]["triggers"] == [e["id"] for e in crossings]
    assert crossings[0]["clip"]["path"] == crossings[1]["clip"]["path"] == ready[0]["clip"]["path"]
    assert crossings[1]["clip"]["end"] == 4.84  # extended to the second crossing + post
    indices = assert_clip_is_the_source(Path(ready[0]["clip"]["path"]), video, ready[0]["clip"]["start"])
    assert indices[0] == 50 and indices[-1] >= 121


def test_sampler_skips_frames_but_no_packet(tmp_path):
    """Frames the sampler skips are never decoded to pixels, but their packets are in the clip."""
    video, det = scene(tmp_path, WALKER, 200, gop=20)
    events = run(tmp_path, video, det, {"pre": 1.0, "post": 1.0}, sampler={"every": 3})
    clip = next(e for e in events if e["type"] == "clip_ready")["clip"]
    indices = assert_clip_is_the_source(Path(clip["path"]), video, clip["start"])
    assert len(indices) == clip["frames"] >= 60 and clip["complete"]


def test_clip_past_the_end_of_the_file_ends_with_it(tmp_path):
    video, det = scene(tmp_path, WALKER, 90, gop=30)
    events = run(tmp_path, video, det, {"pre": 0.5, "post": 5.0})
    clip = next(e for e in events if e["type"] == "clip_ready")["clip"]
    assert (clip["complete"], clip["reason"]) == (False, "source_ended")
    indices = assert_clip_is_the_source(Path(clip["path"]), video, clip["start"])
    assert indices[0] == 60 and indices[-1] == 89


def test_triggers_filter_by_type_class_and_name(tmp_path):
    video, det = scene(tmp_path, WALKER, 120, gop=20)
    events = run(tmp_path, video, det, {"pre": 0.5, "post": 0.5, "triggers": [{"types": ["line_crossed"],
                                                                                "classes": ["car"]}]})
    assert any(e["type"] == "line_crossed" for e in events) and not any("clip" in e for e in events)
    assert list((tmp_path / "clips").glob("*.mp4")) == []
    with pytest.raises(ConfigError, match=r"output.clips.triggers\[0\].names: no line or zone named gate"):
        load_config(None, {"analytics": {"lines": [DOOR]},
                           "output": {"clips": {"triggers": [{"types": ["line_crossed"], "names": ["gate"]}]}}})
    with pytest.raises(ConfigError, match=r"sources\[0\].clips.triggers\[0\].names: no line or zone named exit"):
        load_config(None, {"analytics": {"lines": [DOOR]}, "sources": [
            {"uri": "a.mp4", "clips": {"triggers": [{"names": ["door"]}, {"names": ["exit"]}][::-1]}}]})
    trigger = TriggerConfig(types=["line_crossed"], classes=["person"], names=["door"])
    event = Event("x", "line_crossed", "cam", 1, 0.0, None, 1, 0, "person", 0.9, (0, 0, 1, 1), {"line": "door"})
    assert trigger.matches(event)
    assert not trigger.matches(Event("x", "line_crossed", "cam", 1, 0.0, None, 1, 0, "person", 0.9, (0, 0, 1, 1),
                                     {"line": "exit"}))


def test_clips_of_an_image_folder_are_refused(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.zeros((16, 16, 3), np.uint8))
    config = load_config(None, {"source": {"uri": str(tmp_path)}, "detector": {"name": "mot",
                                "detections": str(tmp_path / "none.txt")}, "output": {"clips": {}}})
    with pytest.raises(ConfigError, match="images have none; turn output.clips off"):
        Pipeline(config, detector=BlobDetector())


def test_per_source_clips_override_the_output_section(tmp_path):
    config = load_config(None, {"sources": [{"uri": "a.mp4", "id": "a", "clips": {"pre": 2.0}}, {"uri": "b.mp4"}],
                                "output": {"clips": {"pre": 7.0}}})
    assert [config.clips_of(s).pre for s in config.sources] == [2.0, 7.0]
    assert load_config(None, {}).clips_of(load_config(None, {}).source) is None


# ---- retention


def small_clips(tmp_path: Path, count: int) -> list[dict]:
    """``count`` real clips, one per crossing (crossings 1 s apart, pre and post 0.2 s)."""
    walkers = [MovingBox(-200 * k, 10 + 14 * k, 30, 10, 8.0, 0.0, (230, 25, 75), start=25 * k, end=25 * k + 40)
               for k in range(count)]
    video, det = scene(tmp_path, walkers, 25 * count + 40, gop=5)
    return run(tmp_path, video, det, {"pre": 0.2, "post": 0.2}, tracker={"name": "sort"})


def test_many_small_clips_are_written_one_per_trigger(tmp_path):
    events = small_clips(tmp_path, 12)
    ready = [e for e in events if e["type"] == "clip_ready"]
    assert len(ready) == 12 and len({e["clip"]["path"] for e in ready}) == 12
    assert all(e["clip"]["complete"] for e in ready)


def test_retention_by_bytes_keeps_the_newest_under_the_limit(tmp_path):
    events = small_clips(tmp_path, 12)
    paths = [Path(e["clip"]["path"]) for e in events if e["type"] == "clip_ready"]
    for k, path in enumerate(paths):  # written in order; make their ages unambiguous
        os.utime(path, (1_000_000 + k, 1_000_000 + k))
    sizes = [p.stat().st_size for p in paths]
    limit = sum(sizes[-5:])
    removed = apply_retention(tmp_path / "clips", None, limit)
    assert removed == paths[:7]
    assert sorted((tmp_path / "clips").glob("*.mp4")) == sorted(paths[7:])


def test_retention_by_bytes_while_running(tmp_path):
    (tmp_path / "a").mkdir()
    events = small_clips(tmp_path / "a", 12)
    size = max(Path(e["clip"]["path"]).stat().st_size for e in events if e["type"] == "clip_ready")
    (tmp_path / "b").mkdir()
    walkers = [MovingBox(-200 * k, 10 + 14 * k, 30, 10, 8.0, 0.0, (230, 25, 75), start=25 * k, end=25 * k + 40)
               for k in range(12)]
    video, det = scene(tmp_path / "b", walkers, 25 * 12 + 40, gop=5)
    events = run(tmp_path / "b", video, det, {"pre": 0.2, "post": 0.2, "retention": {"bytes": 3 * size}},
                 tracker={"name": "sort"})
    left = sorted((tmp_path / "b" / "clips").glob("*.mp4"))
    total = sum(p.stat().st_size for p in left)
    assert 2 <= len(left) <= 3 and total <= 3 * size
    last = [Path(e["clip"]["path"]) for e in events if e["type"] == "clip_ready"][-1]
    assert last in left  # the newest stays


def test_retention_by_age_at_start_and_after_each_clip(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    old, recent = folder / "old.mp4", folder / "recent.mp4"
    for path, age_days in ((old, 3), (recent, 0.5)):
        path.write_bytes(b"x" * 100)
        t = time.time() - age_days * 86400
        os.utime(path, (t, t))
    (folder / "notes.txt").write_text("not a clip")
    video, det = scene(tmp_path, WALKER, 120, gop=20)
    events = run(tmp_path, video, det, {"pre": 0.5, "post": 0.5, "retention": {"days": 1}})
    clip = Path(next(e for e in events if e["type"] == "clip_ready")["clip"]["path"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(["recent.mp4", "notes.txt", clip.name])


# ---- crash safety

CRASH = r"""
import os, signal, sys, threading
from fractions import Fraction
import av
sys.path.insert(0, sys.argv[3])
from sinks.clips import ClipSink
from streamer.config import TriggerConfig
from streamer.decode import Position, decode
from streamer.packets import PacketRing
from streamer.sampling import Sampler
from streamer.types import Event, Frame
ring = PacketRing(3.0)
sink = ClipSink(ring, "cam", sys.argv[2], 0.5, 60.0, [TriggerConfig(types=["line_crossed"])])
sink.open()
container = av.open(sys.argv[1])
frames = decode(container, container.streams.video[0], "cam", Sampler(), threading.Event(), position=Position(),
                fps=Fraction(25), bad_packet=print, packets=ring)
for frame in frames:
    event = Event("e", "line_crossed", "cam", frame.index, float(frame.pts), None)
    sink.annotate(frame, None, [event] if frame.index == 10 else [])
    if frame.index == 60:  # the clip is being written (post is 60 s): killed now
        while not any(n.endswith(".part") for n in os.listdir(sys.argv[2])):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_clip_killed_while_written_is_absent_and_its_part_removed(tmp_path):
    video, _ = scene(tmp_path, WALKER, 100, gop=10)
    folder = tmp_path / "clips"
    folder.mkdir()
    proc = subprocess.run([sys.executable, "-c", CRASH, str(video), str(folder), str(REPO)], capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr.decode()
    assert [p.name for p in folder.iterdir()] == [".cam-000010.mp4.part"]  # never under the clip's name
    (folder / ".door-000003.mp4.part").write_bytes(b"another source's clip, being written")
    sink = ClipSink(PacketRing(1.0), "cam", folder, 0.5, 0.5, [])
    sink.open()
    sink.close()
    assert [p.name for p in folder.iterdir()] == [".door-000003.mp4.part"]  # a shared folder: only its own


def test_the_ring_is_bounded_and_keeps_pre_back_to_a_keyframe(tmp_path):
    video, _ = scene(tmp_path, WALKER, 200, gop=20)
    ring = PacketRing(1.0)
    container = av.open(str(video))
    import threading

    for frame in decode(container, container.streams.video[0], "cam", Sampler(), threading.Event(),
                        position=Position(), fps=Fraction(FPS), bad_packet=print, packets=ring):
        ring.processed(frame.pts)
        seq, start, _, _ = ring.keyframe_before(Fraction(0))
        # Kept: from the keyframe at or before (processed - 1 s); never more than one GOP beyond.
        expected = max(k for k in range(0, 200, 20) if k <= max(frame.index - 25, 0))
        assert start == Fraction(expected, FPS), frame.index
    assert len(ring) <= 20 + 25 + 4  # a GOP plus pre plus the decoder's delay
    small = PacketRing(1000.0, max_bytes=2**14)
    container = av.open(str(video))
    for _ in decode(container, container.streams.video[0], "cam", Sampler(), threading.Event(), position=Position(),
                    fps=Fraction(FPS), bad_packet=print, packets=small):
        small.processed(Fraction(0))
        assert small.bytes <= 2**14 or len(small) == 1


# ---- RTSP


def record_frames(monkeypatch) -> dict[str, dict]:
    """Every processed frame's pixels by source and pts (an extra real sink in each source's list)."""
    from streamer.protocols import Sink

    seen: dict[str, dict] = {}

    class Recorder(Sink):
        def __init__(self, source_id):
            self.frames = seen.setdefault(source_id, {})

        def write(self, frame, tracks, events):
            self.frames[round(float(frame.pts), 4)] = frame.image.copy()

    original = OutputConfig.stream_sinks

    def stream_sinks(self, source_id, *args, **kwargs):
        return [*original(self, source_id, *args, **kwargs), Recorder(source_id)]

    monkeypatch.setattr(OutputConfig, "stream_sinks", stream_sinks)
    return seen


def live_run(tmp_path, server, clips: dict):
    config = load_config(None, {
        "sources": [{"uri": server.url("cam"), "id": "cam", "reconnect": {"initial": 30}}],
        "analytics": {"lines": [DOOR]}, "progress": False, "stats_interval": 0,
        "output": {"events": str(tmp_path / "events.jsonl"), "clips": {"folder": str(tmp_path / "clips"), **clips}},
    })
    pipeline = Pipeline(config, detector=BlobDetector())
    thread, result = run_in_thread(pipeline)
    return pipeline, thread, result


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def clip_frames_match(clip: dict, frames: dict) -> int:
    """The clip's frames equal the pipeline's decoded frames at the same pts (RGB, bit for bit)."""
    matched = 0
    with av.open(clip["path"]) as c:
        stream = c.streams.video[0]
        for f in c.decode(stream):
            key = round(clip["start"] + float(f.pts * stream.time_base), 4)
            if key in frames:
                assert np.array_equal(f.to_ndarray(format="rgb24"), frames[key]), key
                matched += 1
    return matched


def test_rtsp_clip_with_pre_roll(rtsp_server, tmp_path, monkeypatch):
    frames = record_frames(monkeypatch)
    server = rtsp_server(["cam"])
    pipeline, thread, result = live_run(tmp_path, server, {"pre": 1.0, "post": 1.0})
    wait_for(lambda: any(e["type"] == "clip_ready" for e in read_events(tmp_path / "events.jsonl")), 30,
             "clip_ready")
    pipeline.stop()
    thread.join(30)
    assert "error" not in result, result.get("error")
    events = read_events(tmp_path / "events.jsonl")
    crossing = next(e for e in events if e["type"] == "line_crossed")
    ready = next(e for e in events if e["type"] == "clip_ready")
    clip = ready["clip"]
    assert crossing["id"] in ready["triggers"] and clip["complete"]
    assert clip["start"] <= crossing["pts"] - 1.0 and clip["end"] >= crossing["pts"] + 1.0 - 1e-6
    assert clip["start"] >= crossing["pts"] - 2.0 - 1e-6  # the server's keyframes are 1 s apart
    assert (clip["codec"], clip["width"], clip["height"]) == ("h264", 320, 240)
    assert not crossing["clip"]["long_gop"]
    # Every frame of the clip decodes to what the pipeline decoded (drops aside), bit for bit.
    assert clip_frames_match(clip, frames["cam"]) >= clip["frames"] // 2
    with av.open(clip["path"]) as c:
        assert sum(1 for _ in c.decode(video=0)) == clip["frames"] >= 60


def test_rtsp_server_killed_mid_clip_ends_the_clip_at_the_gap(rtsp_server, tmp_path, monkeypatch):
    frames = record_frames(monkeypatch)
    server = rtsp_server(["cam"])
    pipeline, thread, result = live_run(tmp_path, server, {"pre": 1.0, "post": 4.0})
    wait_for(lambda: any(e["type"] == "line_crossed" for e in read_events(tmp_path / "events.jsonl")), 30,
             "line_crossed")
    time.sleep(1.0)
    server.stop(kill=True)
    wait_for(lambda: any(e["type"] == "clip_ready" for e in read_events(tmp_path / "events.jsonl")), 30,
             "clip_ready after the gap")
    pipeline.stop()
    thread.join(30)
    assert "error" not in result, result.get("error")
    events = read_events(tmp_path / "events.jsonl")
    crossing = next(e for e in events if e["type"] == "line_crossed")
    ready = next(e for e in events if e["type"] == "clip_ready")
    clip = ready["clip"]
    assert (clip["complete"], clip["reason"]) == (False, "source_ended")
    assert crossing["pts"] + 0.5 < clip["end"] < crossing["pts"] + 4.0
    down = next(e for e in events if e["type"] == "source_down")
    assert events.index(ready) <= events.index(down) + 1  # out with the gap's events, not at the next frame
    with av.open(clip["path"]) as c:  # a valid, finished MP4 up to the gap
        assert sum(1 for _ in c.decode(video=0)) == clip["frames"]
    assert clip_frames_match(clip, frames["cam"]) >= clip["frames"] // 2


def test_cli_flags_set_the_folders(tmp_path, capsys):
    from streamer.cli import main

    video, det = scene(tmp_path, WALKER, 150, gop=25)
    config = tmp_path / "door.yaml"
    config.write_text("analytics:\n  lines:\n    - {name: door, points: [[160, 0], [160, 240]]}\n"
                      "output:\n  clips: {pre: 1.0, post: 1.0}\n")
    code = main(["run", str(video), "--config", str(config), "--detector", "mot", "--detections", str(det),
                 "--events", str(tmp_path / "events.jsonl"), "--clips", str(tmp_path / "c"),
                 "--snapshots", str(tmp_path / "s"), "--no-progress"])
    assert code == 0
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    clip = next(e for e in events if e["type"] == "clip_ready")["clip"]
    # The folder from the flag, pre from the file: the keyframe at or before frame 76 - 25 is 50.
    assert Path(clip["path"]).parent == tmp_path / "c" and clip["start"] == 2.0
    assert len(list((tmp_path / "s").glob("*-crop.jpg"))) == 1
    summary = capsys.readouterr()
    assert str(tmp_path / "c") in summary.out + summary.err and str(tmp_path / "s") in summary.out + summary.err


def test_a_trigger_after_a_reconnect_starts_its_clip_after_the_gap(tmp_path):
    """Two connections in one ring (the second's pts continue 10 s later): a trigger 0.4 s
    into the second starts at its first keyframe, not in the first connection."""
    import threading

    video, _ = scene(tmp_path, WALKER, 50, gop=10)
    ring = PacketRing(30.0)
    for connection in range(2):
        container = av.open(str(video))
        stream = container.streams.video[0]
        position = Position()

        def place(t, index, last, offset=Fraction(10 * connection)):
            return t + offset, 0.0
        for frame in decode(container, stream, "cam", Sampler(), threading.Event(), position=position,
                            fps=Fraction(FPS), bad_packet=print, packets=ring, place=place if connection else None):
            ring.processed(frame.pts)
        container.close()
    seq, start, after, _ = ring.keyframe_before(Fraction(104, 10) - 1, Fraction(104, 10))
    assert (start, after) == (Fraction(10), Fraction(104, 10))
    seq, start, after, _ = ring.keyframe_before(Fraction(15, 10) - 1, Fraction(15, 10))
    assert (start, after) == (Fraction(4, 10), Fraction(8, 10))  # within the first connection
    sink = ClipSink(ring, "cam", tmp_path / "clips", 1.0, 0.3, [TriggerConfig(types=["line_crossed"])])
    sink.open()
    (event,) = sink.annotate(None, None, [Event("t", "line_crossed", "cam", 60, 10.4, None)])
    assert event.data["clip"]["start"] == 10.0 and event.data["clip"]["pre"] == 0.4
    sink.begin_close()
    (ready,) = sink.pending_events()
    assert (ready.data["clip"]["start"], ready.data["clip"]["end"]) == (10.0, 10.72)
    indices = assert_clip_is_the_source(Path(ready.data["clip"]["path"]), video, 0.0)
    assert indices[0] == 0 and indices[-1] == 18


def test_a_codec_mp4_does_not_take_is_remuxed_into_matroska(data, tmp_path):
    """PETS09's AVI is MPEG-4 part 2 v3 (msmpeg4), which MP4 refuses: the clip is an MKV,
    frame for frame the source's."""
    video = data / "video" / "pets09-s2l1-vtest.avi"
    if not video.exists():
        pytest.skip(f"{video} not found")
    events = run(tmp_path, video, data / "mot15" / "PETS09-S2L1" / "det" / "det.txt", {"pre": 1.0, "post": 1.0},
                 analytics={"lines": [{"name": "door", "points": [[420, 100], [420, 560]]}]})
    ready = [e for e in events if e["type"] == "clip_ready"]
    assert ready and all(e["clip"]["path"].endswith(".mkv") and e["clip"]["codec"] == "msmpeg4" for e in ready)
    clip = ready[0]["clip"]
    with av.open(str(video)) as c:
        source = {f.pts: f.to_ndarray() for f, _ in zip(c.decode(video=0), range(400), strict=False)}
    with av.open(clip["path"]) as c:
        stream = c.streams.video[0]
        frames = [(round((clip["start"] + float(f.pts * stream.time_base)) * 10), f.to_ndarray())
                  for f in c.decode(stream)]
    assert len(frames) == clip["frames"] and frames[0][0] == round(clip["start"] * 10)
    assert [k for k, _ in frames] == list(range(frames[0][0], frames[0][0] + len(frames)))
    assert all(np.array_equal(image, source[k]) for k, image in frames)


def test_network_sinks_carry_the_evidence(tmp_path):
    """A webhook receives the same events as the JSONL file, clip fields and clip_ready included."""
    import http.server

    posted: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posted.extend(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Receiver) as url:
        video, det = scene(tmp_path, WALKER, 150, gop=25)
        events = run(tmp_path, video, det, {"pre": 1.0, "post": 1.0}, output={
            "events": str(tmp_path / "events.jsonl"), "outbox": str(tmp_path / "outbox"),
            "clips": {"folder": str(tmp_path / "clips"), "pre": 1.0, "post": 1.0},
            "snapshots": {"folder": str(tmp_path / "snaps")},
            "event_sinks": [{"type": "webhook", "url": f"{url}/e"}]})
    assert posted == events
    assert [e["type"] for e in posted if "clip" in e] == ["line_crossed", "clip_ready"]
    assert [e["type"] for e in posted if "snapshot" in e] == ["line_crossed", "track_ended"]
