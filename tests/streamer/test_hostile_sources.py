"""Hostile sources (issue 16, the rest): URL schemes this build lacks, HTTP cameras off at
start, phone video with a rotation matrix, cameras that accept TCP and never answer, and
what the summary and the log say about them."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import OBJECTS, BlobDetector, clip_with_detections, free_port, run_in_thread, wait_for

from streamer.cli import main
from streamer.config import load_config
from streamer.decode import upright
from streamer.pipeline import Pipeline, left_running


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@contextlib.contextmanager
def black_hole():
    """A TCP server that accepts every connection and never answers (a wedged camera)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize(("uri", "code", "message"), [
    ("srt://127.0.0.1:9000?passphrase=S3CRET", 1,
     "srt://127.0.0.1:9000?passphrase=***: this FFmpeg build (PyAV {av}) has no srt:// support"),
    ("foo://host/x.mp4", 1, "foo://host/x.mp4: this FFmpeg build (PyAV {av}) has no foo:// support"),
    ("ftp://127.0.0.1:{port}/x.mp4", 1, "ftp://127.0.0.1:{port}/x.mp4: cannot be opened (Connection refused)"),
    ("file:///no/such/clip.mp4", 1, "/no/such/clip.mp4: no such file; check the path"),
    ("file://elsewhere/clip.mp4", 2, "source.uri: file://elsewhere/clip.mp4: a file: URI names a file on this "
                                     "machine (file:///path); got host 'elsewhere'"),
    ("rtsp://u:S3CRET@127.0.0.1:99999/x", 2, "rtsp://u:***@127.0.0.1:99999/x: not a valid URL (Port out of range"),
    ("rtsp://127.0.0.1:abc/x", 2, "not a valid URL (Port could not be cast to integer value as 'abc')"),
    ("rtsp://127.0.0.1:0/x", 2, "rtsp://127.0.0.1:0/x: port 0 is outside 1-65535"),
    ("rtsp://[zz]:554/x", 2, "rtsp://[zz]:554/x: not a valid URL ('zz' does not appear to be an IPv4 or IPv6"),
    ("http://[::1/live.m3u8", 2, "http://[::1/live.m3u8: not a valid URL (Invalid IPv6 URL)"),
    ("rtmp:///live", 2, "rtmp:///live: no host in the URL; give scheme://host[:port]/path"),
    ("HTTP://127.0.0.1:{port}/x.mp4", 1, "HTTP://127.0.0.1:{port}/x.mp4: cannot be opened (Connection refused)"),
])
def test_a_scheme_that_cannot_work_is_one_line_at_once(uri, code, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    port = free_port()
    started = time.monotonic()
    rc = main(["run", uri.format(port=port), "--detector", "mot", "--detections", "empty.txt", "--no-progress",
               "--events", "e.jsonl"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code and message.format(av=av.__version__, port=port) in err[-1], err
    assert "S3CRET" not in "\n".join(err)
    assert time.monotonic() - started < 5  # said at once, never retried


def test_a_file_uri_is_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip, det, truth = clip_with_detections(tmp_path, OBJECTS, 12, name="clip.mp4")
    rc = main(["run", clip.as_uri(), "--detector", "mot", "--detections", det.name, "--no-progress",
               "--mot", "t.txt"])
    assert rc == 0 and "frames:  12 processed" in capsys.readouterr().out
    # and it is an input like any other: no output may be written over it
    before = clip.read_bytes()
    rc = main(["run", clip.as_uri(), "--detector", "mot", "--detections", det.name, "--no-progress",
               "--out-video", "clip.mp4"])
    assert rc == 2 and "output.video: clip.mp4 is the input source 'clip'" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_an_http_camera_off_at_start_is_waited_for(tmp_path):
    clip, _, _ = clip_with_detections(tmp_path, OBJECTS, 30, name="clip.mp4")
    port = free_port()
    cfg = load_config(None, {
        "source": {"uri": f"http://127.0.0.1:{port}/clip.mp4", "id": "cam", "reconnect": {"initial": 0.2, "max": 0.2}},
        "output": {"events": str(tmp_path / "e.jsonl")}, "progress": False, "stats_interval": 0,
    })
    pipeline = Pipeline(cfg, detector=BlobDetector())
    assert pipeline.streams["cam"].source.live
    thread, result = run_in_thread(pipeline)
    time.sleep(1.0)  # down: connection refused, retried
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        wait_for(lambda: pipeline.streams["cam"].summary.frames >= 30, 30, "the camera's frames")
        pipeline.stop()
        thread.join(30)
    finally:
        server.shutdown()
        server.server_close()
    assert "error" not in result, result
    types = [e["type"] for e in events(tmp_path / "e.jsonl")]
    assert types[0] == "source_down" and "source_up" in types and types.index("source_up") > 0
    assert events(tmp_path / "e.jsonl")[0]["reason"] == "cannot connect: Connection refused"


def rotated_clip(path: Path, rotation: int) -> Path:
    """A 64x32 clip whose display matrix rotates it by ``rotation`` degrees (as phones
    write portrait video), with a white square in the stored picture's top-left corner."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(rotation)
        for _ in range(5):
            image = np.zeros((32, 64, 3), np.uint8)
            image[:8, :8] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize(("rotation", "shape", "corner"), [
    (90, (64, 32), "bottom-left"),   # turned counterclockwise, as players show it
    (-90, (64, 32), "top-right"),    # a phone held upright
    (180, (32, 64), "bottom-right"),
    (0, (32, 64), "top-left"),
])
def test_a_rotated_video_is_processed_upright(rotation, shape, corner, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rotated_clip(tmp_path / "phone.mp4", rotation)
    (tmp_path / "empty.txt").write_text("")
    rc = main(["run", "phone.mp4", "--detector", "mot", "--detections", "empty.txt", "--no-progress",
               "--out-video", "out.mp4"])
    assert rc == 0, capsys.readouterr().err
    with av.open("out.mp4") as c:
        images = [f.to_ndarray(format="rgb24").mean(2) for f in c.decode(video=0)]
    assert len(images) == 5 and images[0].shape == shape
    h, w = shape
    corners = {"top-left": (4, 4), "top-right": (4, w - 5), "bottom-left": (h - 5, 4), "bottom-right": (h - 5, w - 5)}
    white = sorted(name for name, (y, x) in corners.items() if images[0][y, x] > 128)
    assert white == [corner]


def test_upright_turns_by_the_display_matrix():
    image = np.arange(6).reshape(2, 3)
    assert upright(image, 0) is image
    assert upright(image, 90).tolist() == [[2, 5], [1, 4], [0, 3]]
    assert upright(image, -90).tolist() == [[3, 0], [4, 1], [5, 2]]
    assert upright(image, -180).tolist() == upright(image, 180).tolist() == [[5, 4, 3], [2, 1, 0]]


@pytest.mark.parametrize("how", ["sigterm", "duration"])
def test_a_camera_that_never_answers_stops_within_5_s(how, tmp_path):
    """The camera's connect waits 10 s (source.timeout) for an answer; a stop does not."""
    with black_hole() as port:
        (tmp_path / "empty.txt").write_text("")
        argv = [sys.executable, "-m", "streamer.cli", "run", f"rtsp://127.0.0.1:{port}/x", "--detector", "mot",
                "--detections", "empty.txt", "--no-progress", "--events", "e.jsonl"]
        if how == "duration":
            argv += ["--duration", "2"]
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if how == "sigterm":
            time.sleep(4)  # inside the connect's 10 s: the decode thread waits on the camera
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - started - (4 if how == "sigterm" else 2)
    assert proc.returncode == 0, err
    # after the stop: the run's start-up (imports, under 3 s) for --duration, and under 5 s to stop
    assert took < (5 if how == "sigterm" else 8), f"ended {took:.1f} s after the stop"
    assert "stopped while waiting on the camera" in err and "frames:  0 processed" in out
    assert (tmp_path / "e.jsonl").read_text() == ""


def test_the_summary_names_each_file_and_a_camera_never_up(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="clip.mp4")
    camera = f"rtsp://127.0.0.1:{free_port()}/x"
    (tmp_path / "two.yaml").write_text(
        f"sources:\n  - {{uri: clip.mp4, id: a}}\n  - {{uri: '{camera}', id: cam, reconnect: {{initial: 0.2, "
        f"max: 0.2}}}}\ndetector: {{name: mot, detections: {det.name}}}\noutput: {{mot: 'out/{{source_id}}.txt'}}\n"
        f"duration: 2\n")
    rc = main(["run", "--config", "two.yaml", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "mot:     out/a.txt, out/cam.txt" in out and "{source_id}" not in out
    line = next(x for x in out.splitlines() if x.startswith("  cam:"))
    assert re.search(r"down 1x for (1\.[5-9]|2\.\d)s \(never connected\)$", line), line


def test_a_failed_source_is_named_once(tmp_path, capsys, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="clip.mp4")
    camera = f"rtsp://127.0.0.1:{free_port()}/x"
    (tmp_path / "two.yaml").write_text(
        f"sources:\n  - {{uri: clip.mp4, id: a}}\n  - {{uri: '{camera}', id: cam, reconnect: {{attempts: 1, "
        f"initial: 0.1}}}}\ndetector: {{name: mot, detections: {det.name}}}\n")
    rc = main(["run", "--config", "two.yaml", "--no-progress"])
    err = capsys.readouterr().err
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert rc == 1 and logged == [f"{camera}: gave up after 2 failed connection attempt(s) (cannot connect: "
                                  f"Connection refused); check the address and that the camera is on, or raise "
                                  f"source.reconnect.attempts (the other sources go on)"]
    assert f"{camera}: {camera}" not in err


def test_log_lines_never_break_the_progress_bar(tmp_path):
    # A paced test source keeps the bar going while a camera that is not there logs retries.
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "two.yaml").write_text(
        "sources:\n  - {uri: 'lavfi:testsrc2=size=160x120:rate=25', id: test}\n"
        f"  - {{uri: 'rtsp://127.0.0.1:{free_port()}/x', id: cam, reconnect: {{initial: 0.3, max: 0.3}}}}\n"
        "detector: {name: mot, detections: empty.txt}\nduration: 3\nstats_interval: 0\n")
    proc = subprocess.run([sys.executable, "-m", "streamer.cli", "run", "--config", "two.yaml"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    segments = [seg for line in proc.stderr.split("\n") for seg in line.split("\r")]
    logged = [seg for seg in segments if "streamer: WARNING" in seg]
    bars = [seg for seg in segments if "frame/s" in seg]
    assert len(logged) >= 5 and bars  # retries logged while the bar ran
    assert all(seg.startswith("streamer: WARNING") for seg in logged), [s for s in logged if not s.startswith("s")]


STOPPED_EARLY = "streamer: stopped while starting (loading the model, opening the sources); nothing was written"


@pytest.mark.parametrize("command", ["run", "serve"])
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_stop_while_an_http_camera_is_first_asked_ends_at_once(command, sig, code, tmp_path):
    """The first open of an HTTP camera asks the server whether the stream has an end
    (10 s for a server that never answers); PyAV's open, interrupted, used to swallow the
    stop, and the run went on waiting for the camera, signals and all."""
    (tmp_path / "empty.txt").write_text("")
    with black_hole() as port:
        uri = f"http://127.0.0.1:{port}/live.m3u8"
        (tmp_path / "cfg.yaml").write_text(json.dumps({"sources": [{"id": "cam", "uri": uri}]}))
        argv = [sys.executable, "-m", "streamer.cli", command, "--detector", "mot", "--detections", "empty.txt",
                "--events", "e.jsonl"]
        argv += [uri, "--no-progress"] if command == "run" else ["--config", "cfg.yaml", "--http",
                                                                 f"127.0.0.1:{free_port()}"]
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)  # inside the 10 s open
        asked = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert time.monotonic() - asked < 5
    assert err.strip().splitlines()[-1] == STOPPED_EARLY and not (tmp_path / "e.jsonl").exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_stop_while_the_model_loads_ends_at_once(sig, code, tmp_path):
    clip_with_detections(tmp_path, OBJECTS, 5, name="clip.mp4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", "clip.mp4", "--weights", "yolov8n.yaml", "--device", "cpu",
         "--imgsz", "160", "--no-progress", "--events", "e.jsonl"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(2.0)  # importing torch and building the model take longer than this
    asked = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert time.monotonic() - asked < 5
    assert err.strip().splitlines()[-1] == STOPPED_EARLY
    assert not (tmp_path / "e.jsonl").exists() and out == ""


class GridDetector:
    """A detector that finds a grid of ``n`` separate boxes in every frame (a crowd),
    scored by position: what max_det must hold for any detector handed to the pipeline."""

    names = {0: "box"}
    backend = "grid (test)"

    def __init__(self, n: int) -> None:
        k = np.arange(n)
        self.xyxy = np.c_[10 * (k % 30), 10 * (k // 30), 10 * (k % 30) + 8, 10 * (k // 30) + 8].astype(np.float32)
        self.score = (1 + k) / (n + 1)

    def __call__(self, frames):
        from streamer.types import Detections

        return [Detections(self.xyxy.copy(), self.score.copy()) for _ in frames]

    def stage_seconds(self):
        return {}


def test_max_det_holds_for_any_detector(tmp_path):
    clip, _, _ = clip_with_detections(tmp_path, OBJECTS, 6, name="clip.mp4")
    cfg = load_config(None, {"source": {"uri": str(clip)}, "detector": {"max_det": 7}, "tracker": {"name": "sort",
                             "params": {"min_hits": 0}}, "output": {"mot": str(tmp_path / "t.txt")},
                             "progress": False})
    Pipeline(cfg, detector=GridDetector(500)).run()
    rows = np.loadtxt(tmp_path / "t.txt", delimiter=",", ndmin=2)
    per_frame = np.bincount(rows[:, 0].astype(int))[1:]
    assert per_frame.tolist() == [7] * 6
    # the 7 best scoring: the last 7 of the grid
    np.testing.assert_allclose(np.unique(rows[:, 2]), sorted({10.0 * (k % 30) for k in range(493, 500)}))


def test_a_stop_with_a_slow_detector_ends_within_5_s(tmp_path, caplog):
    """YOLOv8n at 1280 on a CPU, 16 frames a call: one call takes seconds (longer on 2
    cores than STOP_DETECT_WAIT), so a stop must not wait for the frames still read."""
    clip, _, _ = clip_with_detections(tmp_path, OBJECTS, 60, name="clip.mp4")
    cfg = load_config(None, {
        "source": {"uri": str(clip)},
        "detector": {"weights": "yolov8n.yaml", "device": "cpu", "imgsz": 1280, "batch": 16, "max_wait_ms": 2000},
        "output": {"video": str(tmp_path / "out.mp4"), "events": str(tmp_path / "e.jsonl")}, "progress": False,
    })
    pipeline = Pipeline(cfg)
    thread, result = run_in_thread(pipeline)
    wait_for(lambda: pipeline.batch_sizes, 120, "the first detector call's end")  # frames in the outputs
    wait_for(lambda: "inference" in pipeline.busy, 120, "the second call")
    asked = time.monotonic()
    pipeline.stop()
    thread.join(30)
    took = time.monotonic() - asked
    assert "error" not in result and took < 5, f"ended {took:.1f} s after the stop"
    summary = result["summary"]
    assert 0 < summary.frames < 60 and pipeline.left_at_stop >= 16  # the call left, and what waited
    assert summary.frames + pipeline.left_at_stop == pipeline.streams["clip"].decoded
    assert "left the detector's call running" in caplog.text
    with av.open(str(tmp_path / "out.mp4")) as video:  # a whole file, every processed frame in it
        assert sum(1 for _ in video.decode(video=0)) == summary.frames
    kinds = [e["type"] for e in events(tmp_path / "e.jsonl")]
    assert kinds.count("track_started") == kinds.count("track_ended")
    assert left_running()  # the call the stop left; it ends on its own
    wait_for(lambda: not left_running(), 60, "the call left running")


@pytest.mark.parametrize(("presses", "said"), [
    (1, "streamer: interrupted; tracks were ended and the outputs finished"),
    (2, "streamer: interrupted; outputs written so far were closed and are valid"),
])
def test_ctrl_c_with_a_slow_detector_exits_130_within_5_s(presses, said, tmp_path):
    """The process ends once its outputs are finished, with the detector's call still
    running (the interpreter's exit would abort inside torch's thread pool); a second
    Ctrl-C does not wait for the call either."""
    clip_with_detections(tmp_path, OBJECTS, 60, name="clip.mp4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", "clip.mp4", "--weights", "yolov8n.yaml", "--device", "cpu",
         "--imgsz", "1280", "--batch", "16", "--out-video", "out.mp4", "--events", "e.jsonl"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    # the progress bar past 0: the first call's frames are in the outputs, the next call runs
    wait_for(lambda: re.search(r"\b[1-9]\d*/60\b", "".join(stderr)), 120, "the first frames processed")
    asked = time.monotonic()
    proc.send_signal(signal.SIGINT)
    if presses == 2:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    proc.wait(60)
    reader.join(10)
    err = "".join(stderr)
    took = time.monotonic() - asked
    assert proc.returncode == 130, err
    assert took < 5, f"ended {took:.1f} s after Ctrl-C"
    assert "terminate called" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == said
    frames = int(re.search(r"frames:\s+(\d+) processed", out).group(1))
    with av.open(str(tmp_path / "out.mp4")) as video:
        assert 0 < sum(1 for _ in video.decode(video=0)) == frames < 60


def test_a_second_ctrl_c_still_prints_real_figures(data, tmp_path):
    video = data / "video" / "pets09-s2l1-vtest.avi"
    det = data / "mot15" / "PETS09-S2L1" / "det" / "det.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", str(video), "--detector", "mot", "--detections", str(det),
         "--out-video", "v.mp4", "--events", "e.jsonl", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "e.jsonl").exists() and (tmp_path / "e.jsonl").stat().st_size > 2000, 60,
             "the first events")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "streamer: interrupted; outputs written so far were closed and are valid"
    seconds = float(re.search(r"processed \(\d+ detected\) in ([\d.]+)s", out).group(1))
    assert seconds > 0 and re.search(r"stages:\s+ms/frame decode [\d.]+, detect [\d.]+, track [\d.]+", out), out
    assert "\nvideo:   v.mp4\nevents:  e.jsonl" in out
    with av.open(str(tmp_path / "v.mp4")) as v:
        assert sum(1 for _ in v.decode(video=0)) > 0
