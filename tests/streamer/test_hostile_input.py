"""Inputs that used to destroy data, leak secrets or end in a traceback: each class has a
table of cases with its one-line error and exit code, and the files involved unharmed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest
from helpers import OBJECTS, clip_with_detections, free_port
from hypothesis import given
from hypothesis import strategies as st

from streamer.cli import main
from streamer.urls import is_secret_name, redact


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize(("args", "message"), [
    (["--out-video", "{clip}"], "output.video: {clip} is the input source 'clip'; it would be overwritten"),
    (["--out-video", "sub/../{clip}"], "output.video: sub/../{clip} is the input source 'clip'"),
    (["--out-video", "link.mp4"], "output.video: link.mp4 is the input source 'clip'"),
    (["--events", "{clip}"], "output.events: {clip} is the input source 'clip'"),
    (["--mot", "{det}"], "output.mot: {det} is the input detector.detections"),
    (["--events", "cfg.yaml", "--config", "cfg.yaml"], "output.events: cfg.yaml is the input --config"),
    (["--events", "same.txt", "--mot", "same.txt"], "output.events and output.mot are the same file (same.txt)"),
    (["--out-video", "same.mp4", "--mot", "./same.mp4"], "output.video and output.mot are the same file"),
])
def test_an_output_never_overwrites_an_input_or_another_output(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="clip.mp4")
    os.symlink("clip.mp4", "link.mp4")
    (tmp_path / "cfg.yaml").write_text("tracker: {name: sort}\n")
    before = {p: _digest(p) for p in ("clip.mp4", det.name, "cfg.yaml")}
    subs = {"{clip}": "clip.mp4", "{det}": det.name}
    argv = [a.replace("{clip}", subs["{clip}"]).replace("{det}", subs["{det}"]) for a in args]
    rc = main(["run", "clip.mp4", "--detector", "mot", "--detections",
               det.name, "--no-progress", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    expected = message.replace("{clip}", "clip.mp4").replace("{det}", det.name)
    assert rc == 2 and err[-1].startswith(f"streamer: config error: {expected}"), err
    assert before == {p: _digest(p) for p in before}
    assert not (tmp_path / "same.txt").exists() and not (tmp_path / "same.mp4").exists()


@pytest.mark.parametrize(("sinks", "args", "message"), [
    (["clip.mp4"], [], "output.event_sinks[0] (jsonl): clip.mp4 is the input source 'clip'; it would be overwritten"),
    (["link.mp4"], [], "output.event_sinks[0] (jsonl): link.mp4 is the input source 'clip'"),
    (["{det}"], [], "output.event_sinks[0] (jsonl): {det} is the input detector.detections"),
    (["out/v.mp4"], ["--out-video", "out/v.mp4"], "output.video and output.event_sinks[0] (jsonl) are the same file"),
    (["out/e.jsonl", "out/../out/e.jsonl"], [],
     "output.event_sinks[0] (a) and output.event_sinks[1] (b) are the same file (out/e.jsonl)"),
])
def test_a_jsonl_event_sink_never_overwrites_an_input_or_another_output(sinks, args, message, tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="clip.mp4")
    os.symlink("clip.mp4", "link.mp4")
    names = ["a", "b"] if len(sinks) > 1 else [None]
    entries = [{"type": "jsonl", "path": p.replace("{det}", det.name), **({"name": n} if n else {})}
               for p, n in zip(sinks, names, strict=True)]
    (tmp_path / "cfg.yaml").write_text(json.dumps({"output": {"event_sinks": entries}}))
    before = {p: _digest(p) for p in ("clip.mp4", det.name)}
    rc = main(["run", "clip.mp4", "--detector", "mot", "--detections", det.name, "--no-progress", "--config",
               "cfg.yaml", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith(f"streamer: config error: {message.replace('{det}', det.name)}"), err
    assert before == {p: _digest(p) for p in before} and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--source-id", "../../escaped", "--events", "out/{source_id}.jsonl"], "source.id: an id may not"),
    (["--source-id", "a/b", "--mot", "out/{source_id}.txt"], "source.id: an id may not"),
    (["--source-id", "..", "--mot", "out/{source_id}.txt"], "source.id: an id may not"),
    (["--source-id", "", "--mot", "out/x.txt"], "source.id: an id may not be empty"),
    (["--events", "out/{v2}.jsonl"], "output.events: unknown placeholder {v2}: the only one is {source_id}"),
    (["--out-video", "out/{}.mp4"], "output.video: unknown placeholder {}"),
    (["--mot", "out/{source_id.txt"], "output.mot: not a path template"),
    (["--mot", "out/{source_id!r:>300}.txt"], "output.mot: write the placeholder as {source_id}, without a conversion"),
    (["--events", "out/{source_id:.2}.jsonl"], "output.events: write the placeholder as {source_id}"),
])
def test_ids_and_templates_cannot_lead_outside_the_output_folder(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="clip.mp4")
    rc = main(["run", "clip.mp4", "--detector", "mot", "--detections", det.name, "--no-progress", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and message in err[-1], err
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escaped.jsonl").exists()


SECRET_URLS = [
    ("srt://cam:9000?passphrase=S3CRET&latency=20", "latency=20"),
    ("https://h/live.m3u8?api_key=S3CRET", None),
    ("https://bucket.s3/x.mp4?X-Amz-Signature=S3CRET&X-Amz-Date=1", "X-Amz-Date=1"),
    ("rtsp://h/x?apikey=S3CRET", None), ("rtsp://h/x?pw=S3CRET", None), ("rtsp://h/x?passwd=S3CRET", None),
    ("rtsp://h/x?access-token=S3CRET", None), ("rtsp://h/x?accessToken=S3CRET", None),
    ("rtsp://h/x?TOKEN=S3CRET", None), ("rtsp://user:S3CRET@h:99999/", "h:99999"),
    ("rtsp://user:S3CRET@h:abc/x", "h:abc"), ("rtsp://user:S3CRET@[::1]:554/x", "[::1]:554"),
    ("rtsp://S3CRET@127.0.0.1:1/live", "@127.0.0.1:1/live"),  # a user alone: most often a token
    ("https://h/cb#access_token=S3CRET&state=7", "state=7"), ("rtsp://S3CRET@h/live#token=S3CRET", "h/live"),
]


@pytest.mark.parametrize(("url", "kept"), SECRET_URLS)
def test_secret_values_are_redacted_and_bad_ports_do_not_crash(url, kept):
    shown = redact(url)
    assert "S3CRET" not in shown and "***" in shown
    if kept:
        assert kept in shown


@given(name=st.sampled_from(["token", "api_key", "API-KEY", "passphrase", "X-Amz-Signature", "password", "pw",
                             "session_id", "auth", "client_secret", "accessToken", "sig"]),
       value=st.text(alphabet=st.characters(blacklist_characters="&#;@",  # a URL holds no white space
                                            blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=4),
       prefix=st.sampled_from(["rtsp://h/x?", "https://h/a?b=1&", "srt://h:1?latency=2&"]))
def test_redaction_hides_any_secret_value(name, value, prefix):
    shown = redact(f"{prefix}{name}={value}&keyint=60")
    assert shown.endswith(f"{name}=***&keyint=60")
    assert is_secret_name(name) and not is_secret_name("keyint") and not is_secret_name("latency")


@given(url=st.text(max_size=80))
def test_redaction_never_raises(url):
    assert isinstance(redact(url), str)


def test_a_closed_stdout_ends_the_run_quietly(tmp_path):
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 60, name="clip.mp4")
    writer = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", str(clip), "--detector", "mot", "--detections", str(det),
         "--events", "-", "--out-video", str(tmp_path / "out.mp4"), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    first = writer.stdout.readline()  # `| head -1`
    writer.stdout.close()
    err = writer.stderr.read().decode()
    assert writer.wait(30) in (0, 141) and first.startswith(b'{"v":1')
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    with av.open(str(tmp_path / "out.mp4")) as container:  # what was written is a whole file
        assert sum(1 for _ in container.decode(video=0)) >= 1


def test_model_loading_never_writes_to_stdout():
    """stdout may carry the events (--events -): what ultralytics and the runtimes print as
    a model loads or exports (Python prints, ultralytics' logger, native writes) goes to stderr."""
    code = (
        "import os, logging, ultralytics\n"
        "from streamer.detectors.yolo import stdout_to_stderr\n"
        "with stdout_to_stderr():\n"
        "    print('python print')\n"
        "    logging.getLogger('ultralytics').info('ultralytics logger')\n"
        "    os.write(1, b'native write\\n')\n"
        "print('{\"v\":1}')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == '{"v":1}\n'
    assert all(s in proc.stderr for s in ("python print", "ultralytics logger", "native write")), proc.stderr


@pytest.mark.parametrize(("args", "files", "code", "message"), [
    (["--detector", "yolo", "--device", "tpu"], {}, 2, "detector.device: String should match pattern"),
    (["--detector", "yolo", "--device", ""], {}, 2, "detector.device: String should match pattern"),
    (["--detector", "yolo", "--weights", "yolov8n.yaml", "--device", "mps"], {}, 1,
     "device 'mps' asked for, but there is no Apple GPU (MPS) here; use device: cpu"),
    (["--imgsz", "320"], {}, 2, "detector.imgsz: a setting of yolo only, not of mot"),
    (["--config", "bt.yaml"], {"bt.yaml": "tracker: {name: sort, params: {match_thresh: 0.5}}\n"}, 2,
     "tracker.params.match_thresh: a setting of bytetrack only, not of sort"),
    (["--detector", "yolo", "--imgsz", "100000"], {}, 2, "detector.imgsz: Input should be less than or equal to 4096"),
    (["--batch", "100000"], {}, 2, "detector.batch: Input should be less than or equal to 256"),
    (["--config", "inf.yaml"], {"inf.yaml": "sampler: {target_fps: .inf}\n"}, 2, "sampler.target_fps: Input should"),
    (["--target-fps", "0.000001"], {}, 2, "sampler.target_fps: Input should be greater than or equal to 0.01"),
    (["--config", "latin1.yaml"], {"latin1.yaml": b"source: {id: caf\xe9}\n"}, 2, "latin1.yaml: not UTF-8 text"),
    (["--detections", "nan.txt"], {"nan.txt": "1,-1,1,1,5,5,0.9\n2,-1,NaN,1,5,5,0.9\n"}, 1,
     "nan.txt:2: a value is NaN or infinite"),
    (["--detections", "inf.txt"], {"inf.txt": "1,-1,1,1,5,5,0.9\n1,-1,1,1,inf,5,0.9\n"}, 1,
     "inf.txt:2: a value is NaN or infinite"),
    (["--detections", "zero.txt"], {"zero.txt": "0,-1,1,1,5,5,0.9\n"}, 1, "frame numbers must be whole numbers from 1"),
])
def test_bad_values_are_one_line_errors(args, files, code, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="clip.mp4")
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    if "--detections" not in args and "yolo" not in args:
        args = [*args, "--detections", det.name]
    rc = main(["run", "clip.mp4", "--detector", "mot", "--no-progress", "--mot", "out.txt", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code and message in err[-1], err


@pytest.mark.parametrize(("text", "message"), [
    ("[Sequence]\nframeRate=abc\n", "framerate='abc' is not a positive number"),
    ("[Sequence]\nframeRate=-25\n", "framerate='-25' is not a positive number"),
    ("frameRate=25\n", "not a seqinfo.ini"),
])
def test_a_bad_seqinfo_is_a_one_line_error(text, message, tmp_path, capsys):
    from streamer.synthetic import render

    import cv2

    (tmp_path / "seq" / "img1").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(tmp_path / "seq" / "img1" / f"{i + 1:06d}.jpg"), render(OBJECTS, i, 120, 160)[0])
    (tmp_path / "seq" / "seqinfo.ini").write_text(text)
    det = tmp_path / "det.txt"
    det.write_text("1,-1,1,1,5,5,0.9\n")
    rc = main(["run", str(tmp_path / "seq"), "--detector", "mot", "--detections", str(det), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and message in err[-1], err


def test_the_mot_detector_applies_classes_and_max_det(tmp_path):
    from streamer.detectors.mot import MotDetector
    from streamer.types import Frame

    det = tmp_path / "det.txt"
    det.write_text("".join(f"1,-1,{10 * i},0,5,5,{s},-1,-1,-1\n" for i, s in enumerate((0.3, 0.9, 0.5, 0.7))))
    frame = [Frame("s", 0, 0, np.zeros((10, 10, 3), np.uint8))]
    (best,) = MotDetector(det, max_det=2)(frame)
    assert best.confidence.tolist() == pytest.approx([0.9, 0.7]) and best.xyxy[:, 0].tolist() == [10, 30]
    assert len(MotDetector(det, classes=[2])(frame)[0]) == 0 and len(MotDetector(det, classes=[0])(frame)[0]) == 4


@pytest.mark.parametrize(("args", "message"), [
    (["--events", "{ro}/e.jsonl"], "{ro}"),
    (["--mot", "{ro}/t.txt"], "{ro}"),
    (["--out-video", "{ro}/v.mp4"], "{ro}"),
    (["--events", "{dir}"], "Is a directory"),
    (["--mot", "/dev/full"], "No space left on device"),
])
def test_outputs_that_cannot_be_written_are_one_line_errors(args, message, tmp_path, capsys, monkeypatch):
    if os.geteuid() == 0 and "{ro}" in " ".join(args):
        ro = "/proc/streamer-test"  # root writes anywhere else; nothing can be created under /proc
    else:
        ro = str(tmp_path / "ro")
        os.mkdir(ro, 0o555)
    monkeypatch.chdir(tmp_path)
    clip, det, _ = clip_with_detections(tmp_path, OBJECTS, 10, name="clip.mp4")
    (tmp_path / "adir").mkdir()
    argv = [a.replace("{ro}", ro).replace("{dir}", "adir") for a in args]
    rc = main(["run", "clip.mp4", "--detector", "mot", "--detections", det.name, "--no-progress", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc in (1, 2) and err[-1].startswith("streamer: ") and message.replace("{ro}", ro) in err[-1], err
    assert "Traceback" not in "\n".join(err)


def test_an_outbox_that_is_not_one_is_moved_aside(tmp_path, caplog):
    from sinks.outbox import Outbox

    for name, bad in (("garbage.sqlite3", b"not a database, " * 100), ("folder.sqlite3", None)):
        path = tmp_path / name
        if bad is None:
            path.mkdir()
        else:
            path.write_bytes(bad)
        box = Outbox(path)
        box.append([("k", "{}")])
        assert len(box) == 1
        box.close()
        (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith(f"{name}.bad-")]
        assert bad is None or aside.read_bytes() == bad
    assert "not an outbox" in caplog.text


@pytest.mark.parametrize(("args", "message"), [
    (["--frames", "0"], "--frames: 0 writes no video"),
    (["--out", "afile"], "--out: afile is a file; give a folder"),
])
def test_sample_refuses_what_it_cannot_do(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    assert main(["sample", *args]) == 2 and message in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "keep me"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_stopped_sample_is_a_whole_video_and_its_detections(sig, code, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "streamer.cli", "sample", "--out", "s", "--frames", "1000000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    frames = int(re.search(r"\((\d+) frames\)", out).group(1))
    assert out.strip().endswith("sample-det.txt (stopped early)") and 0 < frames < 1000000
    with av.open(str(tmp_path / "s" / "sample.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == frames
    rows = np.loadtxt(tmp_path / "s" / "sample-det.txt", delimiter=",")
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= frames and len(rows) > 100  # the objects of every frame


def test_a_token_in_a_fragment_or_a_user_stays_out_of_the_default_id_and_every_line(tmp_path, capsys, caplog,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    uri = f"rtsp://S3CRET@127.0.0.1:{free_port()}/live#access_token=S3CRET"
    rc = main(["run", uri, "--detector", "mot", "--detections", "empty.txt", "--no-progress", "--duration", "2",
               "--events", "e.jsonl"])
    out, err = capsys.readouterr()
    events = (tmp_path / "e.jsonl").read_text()
    assert rc == 0 and "S3CRET" not in out + err + caplog.text + events
    assert json.loads(events.splitlines()[0])["source_id"] == f"127.0.0.1-{uri.split(':')[2].split('/')[0]}-live"


def test_long_values_are_cut_short_in_every_line(tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    try:
        code = main(["run", "x.mp4", "--conf", "9" * 120_000])
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    assert code == 2 and 0 < len(capsys.readouterr().err.strip().splitlines()[-1]) < 400
    uri = f"rtsp://127.0.0.1:{free_port()}/" + "a" * 120_000  # refused: retried, each retry logged
    rc = main(["run", uri, "--detector", "mot", "--detections", "empty.txt", "--no-progress", "--duration", "3",
               "--events", "e.jsonl"])
    out, err = capsys.readouterr()
    lines = (out + err).splitlines() + [r.getMessage() for r in caplog.records]
    assert rc == 0 and any("retrying" in line for line in lines), lines
    assert max(len(line) for line in lines) < 400
