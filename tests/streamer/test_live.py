"""Live sources against a real RTSP server: reconnect, bounded latency, several streams."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import jsonschema
import numpy as np
import pytest
from helpers import BlobDetector, free_port, run_in_thread, wait_for

from sinks.events import SCHEMA_FILE
from streamer.config import load_config
from streamer.errors import SourceError
from streamer.live import LiveSource, Reconnect, SourceStatus, parse_uri
from streamer.pipeline import Pipeline
from streamer.sampling import Sampler
from streamer.sources import VideoSource, open_source
from streamer.types import Frame


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def live_config(tmp_path: Path, sources: list[dict], **extra) -> object:
    overrides = {
        "sources": sources,
        "output": {"video": str(tmp_path / "{source_id}.mp4"), "events": str(tmp_path / "events.jsonl"),
                   "mot": str(tmp_path / "{source_id}.txt")},
        "progress": False, "stats_interval": 1.0,
    }
    overrides.update(extra)
    return load_config(None, overrides)


# ---- URIs


def test_uris_map_to_ffmpeg_inputs(monkeypatch):
    spec = parse_uri("lavfi:testsrc2=size=1280x720:rate=30")
    assert (spec.url, spec.format, spec.live, spec.realtime, spec.default_id) == (
        "testsrc2=size=1280x720:rate=30", "lavfi", True, True, "testsrc2")
    spec = parse_uri("rtsp://user:pw@10.0.0.5:554/stream1", transport="udp")
    assert spec.options == {"rtsp_transport": "udp"} and spec.live and spec.default_id == "10.0.0.5-554-stream1"
    assert parse_uri("https://example.org/live/index.m3u8").live is None  # decided by its duration once open
    assert parse_uri("clip.mp4") is None
    monkeypatch.setattr(sys, "platform", "linux")
    assert (parse_uri("webcam:0").url, parse_uri("webcam:0").format) == ("/dev/video0", "v4l2")
    assert parse_uri("/dev/video2").default_id == "webcam2"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert (parse_uri("webcam:1").url, parse_uri("webcam:1").format) == ("1:none", "avfoundation")
    monkeypatch.setattr(sys, "platform", "win32")
    assert (parse_uri("webcam:USB Camera").url, parse_uri("webcam:USB Camera").format) == ("video=USB Camera", "dshow")
    with pytest.raises(SourceError, match="needs a filter graph"):
        parse_uri("lavfi:")


def test_lavfi_source_is_paced_in_real_time():
    source = open_source("lavfi:testsrc2=size=160x120:rate=30")
    assert isinstance(source, LiveSource)
    start = time.monotonic()
    frames = []
    for item in source.frames(Sampler()):
        frames.append(item)
        if len(frames) == 15:
            break
    elapsed = time.monotonic() - start
    assert [f.pts for f in frames] == [Fraction(i, 30) for i in range(15)]
    assert frames[0].image.shape == (120, 160, 3) and source.fps == 30
    assert elapsed >= 14 / 30 - 0.02  # paced, not as fast as FFmpeg can generate
    walls = [f.captured_at for f in frames]
    assert walls == sorted(walls) and walls[-1] - walls[0] >= 14 / 30 - 0.02


def test_finite_lavfi_source_ends(tmp_path):
    source = open_source("lavfi:testsrc2=size=160x120:rate=25:duration=1", realtime=False)
    frames = list(source.frames(Sampler()))
    assert len(frames) == 25 and all(isinstance(f, Frame) for f in frames)


def test_hwaccel_unavailable_falls_back_with_one_warning(tiny_video, caplog):
    from streamer.decode import HW_FAILURES

    path, _ = tiny_video
    HW_FAILURES.clear()
    caplog.set_level(logging.INFO, logger="streamer.decode")
    soft = [f.image for f in VideoSource(str(path)).frames(Sampler())]
    import torch

    hard = [f.image for f in VideoSource(str(path), hwaccel="cuda").frames(Sampler())]
    again = [f.image for f in VideoSource(str(path), hwaccel="cuda").frames(Sampler())]
    assert len(soft) == len(hard) == len(again) == 40
    if not torch.cuda.is_available():
        warnings = [r for r in caplog.records if "decode.hwaccel cuda" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once per process
        assert "decoding in software" in warnings[0].getMessage()
        assert all(np.array_equal(a, b) for a, b in zip(soft, hard, strict=True))


# ---- RTSP


def test_rtsp_frames_carry_a_continuous_timeline(rtsp_server):
    server = rtsp_server(["cam"])
    source = open_source(server.url("cam"), timeout=5)
    assert isinstance(source, LiveSource) and source.id == f"127.0.0.1-{server.port}-cam"
    frames = []
    for item in source.frames(Sampler(every=2)):
        frames.append(item)
        if len(frames) == 20:
            break
    assert source.fps == 30 and frames[0].image.shape == (240, 320, 3)
    assert [f.index for f in frames] == list(range(0, 40, 2))
    steps = {f.pts - e.pts for e, f in zip(frames[1:], frames[2:], strict=False)}
    assert steps == {Fraction(1, 15)}  # 90 kHz RTP clock, two frames of 1/30 s apart
    assert all(f.captured_at > 0 for f in frames)


def test_reconnects_after_the_server_returns_again_and_again(rtsp_server, tmp_path):
    server = rtsp_server(["cam"])
    # The default backoff (1 s doubling to 30 s): the wait is cut short once the port listens.
    cfg = live_config(tmp_path, [{"uri": server.url("cam"), "id": "cam"}])
    pipeline = Pipeline(cfg, detector=BlobDetector())
    stream = pipeline.streams["cam"]
    thread, result = run_in_thread(pipeline)
    returns = []
    for cycle in range(3):
        frames = stream.summary.frames
        wait_for(lambda frames=frames: stream.summary.frames >= frames + 60, 20, f"frames before outage {cycle}")
        server.stop(kill=True)
        wait_for(lambda cycle=cycle: stream.summary.downs == cycle + 1, 15, f"source_down {cycle}")
        time.sleep(2.0)
        server.start()
        returns.append(server.ready_at)
        wait_for(lambda cycle=cycle: len(stream.summary.reconnects) == cycle + 1, 15, f"source_up {cycle}")
    frames = stream.summary.frames
    wait_for(lambda: stream.summary.frames >= frames + 60, 20, "frames after the last outage")
    pipeline.stop()
    thread.join(30)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    summary = result["summary"]

    events = read_events(tmp_path / "events.jsonl")
    schema = json.loads(SCHEMA_FILE.read_text())
    for e in events:
        jsonschema.validate(e, schema)
    gaps = [e for e in events if e["type"] in ("source_down", "source_up")]
    assert [e["type"] for e in gaps] == ["source_down", "source_up"] * 3
    assert len({e["id"] for e in gaps}) == 6
    for (down, up), back in zip(zip(gaps[::2], gaps[1::2], strict=True), returns, strict=True):
        assert up["wall_time"] >= back  # up only once the server is back
        # back within a port probe (0.25 s) and connecting (the server's 1 s keyframe
        # interval), not after the next backoff step (4 s after the outage began)
        assert up["wall_time"] - back <= 2.5, up["wall_time"] - back
        assert up["downtime"] >= 2.0 and up["attempts"] >= 1
        # tracks end at the outage and new ones start after it
        i, j = events.index(down), events.index(up)
        ended_before = {e["track_id"] for e in events[:i] if e["type"] == "track_ended"}
        started_before = {e["track_id"] for e in events[:i] if e["type"] == "track_started"}
        assert started_before == ended_before
        assert any(e["type"] == "track_started" and e["wall_time"] > up["wall_time"] for e in events[j:])
    started = [e["track_id"] for e in events if e["type"] == "track_started"]
    ended = [e["track_id"] for e in events if e["type"] == "track_ended"]
    assert sorted(started) == sorted(ended) and len(started) >= 8
    pts = [e["pts"] for e in events if e["type"] == "track_started"]
    assert pts == sorted(pts)  # one timeline across the outages
    s = summary.sources["cam"]
    assert s.downs == 3 and len(s.reconnects) == 3 and s.error is None
    assert frame_count(tmp_path / "cam.mp4") == s.frames  # the video survived the outages
    rows = np.loadtxt(tmp_path / "cam.txt", delimiter=",")
    assert set(rows[:, 1].astype(int)) == set(started)


def test_stalled_stream_is_down_after_the_timeout(rtsp_server):
    server = rtsp_server(["cam"])
    source = LiveSource(server.url("cam"), "cam", timeout=1.0, reconnect=Reconnect(0.2, 0.5))
    seen = []
    resumed = threading.Event()
    frozen_at = 0.0
    for item in source.frames(Sampler()):
        if isinstance(item, SourceStatus):
            seen.append(item)
            if item.state == "down":
                os.kill(server.proc.pid, signal.SIGCONT)
                resumed.set()
            else:
                break
        elif item.index == 30:
            os.kill(server.proc.pid, signal.SIGSTOP)  # connection open, no data
            frozen_at = time.time()
    assert [s.state for s in seen] == ["down", "up"]
    assert "no data for 1s" in seen[0].reason
    assert 1.0 <= seen[0].at - frozen_at <= 5.0


def test_unreachable_camera_gives_up_after_the_attempts_asked(tmp_path):
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam"
    source = LiveSource(url, "cam", timeout=1.0, reconnect=Reconnect(0.05, 0.1, attempts=2))
    items = []
    with pytest.raises(SourceError) as info:
        for item in source.frames(Sampler()):
            items.append(item)
    assert [i.state for i in items] == ["down"]
    message = str(info.value)
    assert "gave up after 3 failed connection attempt(s)" in message and "source.reconnect.attempts" in message
    assert "hunter2" not in message and "admin:***@" in message


def test_latency_stays_bounded_under_a_slow_detector(rtsp_server, tmp_path):
    """A detector slower than the camera (50 ms a frame: 20 frames/s against 30) for 60 s:
    latency and memory stay flat, the excess is dropped and counted."""
    server = rtsp_server(["cam"])
    cfg = live_config(tmp_path, [{"uri": server.url("cam"), "id": "cam"}], duration=62.0,
                      detector={"name": "yolo", "batch": 4})
    detector = BlobDetector(seconds_per_frame=0.05)
    pipeline = Pipeline(cfg, detector=detector)
    summary = pipeline.run()
    s = summary.sources["cam"]
    st = pipeline.streams["cam"]
    # Every frame the sampler kept was processed or dropped: nothing piles up.
    assert s.frames + s.dropped == st.sampler.kept
    assert 0.2 < s.drop_rate < 0.5, s.drop_rate  # ~1/3 of 30 frames/s
    # A frame waits behind at most the buffer's frames and two batches (the one running
    # and its own), each as slow as the slowest batch the pipeline measured.
    size, batch = st.buffer.size, cfg.detector.batch
    bound = (math.ceil(size / batch) + 2) * pipeline.batch_seconds_max + 0.25
    windows = list(pipeline.windows["cam"])
    assert len(windows) >= 55
    steady = windows[5:]
    assert all(w["p99"] is not None and w["p99"] <= bound for w in steady), (bound, [w["p99"] for w in steady])
    assert s.latency.quantile(0.99) <= bound
    first, last = np.median([w["p50"] for w in steady[:10]]), np.median([w["p50"] for w in steady[-10:]])
    assert last <= first * 1.5 + 0.05, (first, last)  # flat, not growing
    rss = [w["rss"] for w in steady]
    assert rss[-1] - rss[0] <= 32 * 2**20, (rss[0], rss[-1])  # flat memory
    # events carry the capture time of their frame
    events = read_events(tmp_path / "events.jsonl")
    assert events and all(e["wall_time"] is not None for e in events)


def test_three_sources_one_dies_the_others_finish(rtsp_server, tmp_path):
    cams = rtsp_server(["a", "b"])
    doomed = rtsp_server(["c"])
    sources = [
        {"uri": cams.url("a"), "id": "a"},
        {"uri": cams.url("b"), "id": "b"},
        {"uri": doomed.url("c"), "id": "c", "timeout": 1.0,
         "reconnect": {"initial": 0.2, "max": 0.5, "attempts": 3}},
    ]
    cfg = live_config(tmp_path, sources, duration=12.0)
    pipeline = Pipeline(cfg, detector=BlobDetector())
    thread, result = run_in_thread(pipeline)
    wait_for(lambda: pipeline.streams["c"].summary.frames >= 30, 15, "frames from c")
    doomed.stop(kill=True)
    thread.join(40)
    assert not thread.is_alive()
    error = result.get("error")
    assert isinstance(error, SourceError) and str(error).startswith("1 of 3 sources failed")
    summary = pipeline.summary
    assert summary.sources["c"].error and "gave up" in summary.sources["c"].error
    events = read_events(tmp_path / "events.jsonl")
    for sid in "abc":
        s = summary.sources[sid]
        assert s.frames > (30 if sid == "c" else 200), (sid, s.frames)
        assert frame_count(tmp_path / f"{sid}.mp4") == s.frames  # complete, valid videos, the dead one's too
        mine = [e for e in events if e["source_id"] == sid]
        started = sorted(e["track_id"] for e in mine if e["type"] == "track_started")
        assert started and started == sorted(e["track_id"] for e in mine if e["type"] == "track_ended")
        rows = np.loadtxt(tmp_path / f"{sid}.txt", delimiter=",")
        assert set(rows[:, 1].astype(int)) == set(started)
    assert [e["type"] for e in events if e["source_id"] == "c" and e["type"].startswith("source")] == ["source_down"]
    # a and b ran to the end: their last frames came after c gave up
    last_c = max(e["wall_time"] for e in events if e["source_id"] == "c")
    for sid in "ab":
        assert max(e["wall_time"] for e in events if e["source_id"] == sid) > last_c + 3
    # the detector saw batches mixing the streams
    assert pipeline.times.calls["detect"] > pipeline.detector.calls


def test_cli_on_rtsp_never_shows_credentials(rtsp_server, tmp_path):
    server = rtsp_server(["cam"])
    url = server.url("cam", credentials="admin:hunter2")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "-v", "run", url + "?token=abc123", "--weights", "yolov8n.yaml",
         "--imgsz", "160", "--device", "cpu", "--conf", "0.01", "--duration", "6", "--no-progress",
         "--events", str(out / "e.jsonl"), "--out-video", str(out / "v.mp4"), "--mot", str(out / "t.txt")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "frames" in proc.stdout and "latency p50" in proc.stdout
    texts = [proc.stdout, proc.stderr, *(p.read_text(errors="replace") for p in out.glob("*.jsonl"))]
    for text in texts:
        assert "hunter2" not in text and "abc123" not in text
    assert "admin:***@127.0.0.1" in proc.stdout
    assert frame_count(out / "v.mp4") > 30
    # a camera that is not there: retried (forever by default), the run ends at --duration
    proc = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "run", f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/x",
         "--weights", "yolov8n.yaml", "--imgsz", "160", "--device", "cpu", "--duration", "3", "--no-progress",
         "--events", str(out / "down.jsonl")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Connection refused; retrying in" in proc.stderr and "hunter2" not in proc.stderr + proc.stdout
    assert [e["type"] for e in read_events(out / "down.jsonl")] == ["source_down"]


def test_sigterm_ends_a_live_run_cleanly(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", "lavfi:testsrc2=size=320x240:rate=25", "--weights",
         "yolov8n.yaml", "--imgsz", "160", "--device", "cpu", "--no-progress", "--out-video", str(out / "v.mp4")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    time.sleep(8)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    frames = int(stdout.split("frames:")[1].split()[0])
    assert frames > 10 and frame_count(out / "v.mp4") == frames
