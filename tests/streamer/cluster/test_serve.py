"""``streamer serve --ray ADDRESS`` end to end (the HTTP API over the controller, /metrics
from its view, the summary), and the one-line errors: no Ray, a cluster that cannot be
reached, a camera that cannot be opened (failed; the others run on)."""

from __future__ import annotations

import subprocess
import sys

import requests
import yaml
from serving import Serve, read_events

from streamer.cli import main

from .test_cameras import CAMERA, _dets
from helpers import free_port


def test_serve_on_the_cluster(ray_cluster, tmp_path):
    det = _dets(tmp_path / "det.txt")
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump({
        "detector": {"name": "mot", "detections": str(det)}, "tracker": {"name": "sort"},
        "sources": [{"id": "c0", "uri": CAMERA}, {"id": "gone", "uri": "lavfi:nosuchfilter",
                                                        "reconnect": {"initial": 0.2, "attempts": 1}}],
        "output": {"events": "events.jsonl"}, "stats_interval": 0}))
    serve = Serve(tmp_path, f"--ray={ray_cluster}", "--config", "serve.yaml", "--workers", "2", "--worker-cpus", "1")
    try:
        serve.wait_state("up", ["c0"], timeout=60)
        streams = serve.wait_state("failed", ["gone"], timeout=30)  # the camera gave up; c0 runs on
        assert "nosuchfilter" in streams["gone"]["last_error"] and streams["c0"]["state"] == "up", streams
        created = serve.api("PUT", "/api/streams/c1", {"uri": CAMERA})
        assert created.status_code == 201, created.text
        placed = {sid: s["source"]["worker"] for sid, s in serve.wait_state("up", ["c0", "c1"]).items()}
        assert placed["c0"] != placed["c1"]  # the second camera went to the other, emptier worker
        bad = serve.api("PUT", "/api/streams/c2", {"uri": str(tmp_path / "missing.mp4")})
        assert bad.status_code == 422 and "missing.mp4" in bad.json()["error"], bad.text
        assert serve.api("GET", "/api/streams/c2").status_code == 404  # nothing changed
        metrics = serve.api("GET", "/metrics").text
        for line in ('streamer_cluster_worker_up{worker="w0"} 1.0', 'streamer_cluster_worker_up{worker="w1"} 1.0',
                     f'streamer_cluster_streams{{worker="{placed["c0"]}"}} 1.0',
                     "streamer_cluster_reassignments_total 0.0",
                     'streamer_streams{state="failed"} 1.0'):
            assert line in metrics, line
        assert serve.api("DELETE", "/api/streams/c1").status_code == 200
        assert requests.get(serve.url + "/readyz", timeout=10).status_code == 200
    finally:
        code, out, err = serve.stop()
    assert code == 0, err
    assert "cluster: 2 worker(s), 2 stream(s), 0 reassignment(s), 0 worker(s) lost" in out, out
    assert "  gone: FAILED:" in out
    files = {p.name: read_events(p) for p in tmp_path.glob("events.w*.jsonl")}
    assert sorted(files) == ["events.w0.jsonl", "events.w1.jsonl"]  # one file per worker
    c0 = [e for e in files[f"events.{placed['c0']}.jsonl"] if e["source_id"] == "c0"]
    # stopped: its open tracks end
    assert [e["type"] for e in c0][:1] == ["track_started"] and c0[-1]["type"] == "track_ended"
    c1 = [e for e in files[f"events.{placed['c1']}.jsonl"] if e["source_id"] == "c1"]
    assert c1[-1]["type"] == "source_removed" and c1[-1]["reason"] == "deleted"


def test_no_ray_is_one_line_naming_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where it is not installed
    for argv in (["run", str(tmp_path), "--ray", "--out", str(tmp_path / "out")], ["serve", "--ray"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["streamer: config error: --ray needs Ray, which is not installed: pip install "
                       "'streamer[cluster]'"]


def test_an_unreachable_cluster_is_one_line(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    address = f"127.0.0.1:{free_port()}"
    run = subprocess.run([sys.executable, "-m", "streamer.cli", "run", str(tmp_path), f"--ray={address}", "--out",
                          str(tmp_path / "out"), "--detector", "mot", "--detections",
                          str(_dets(tmp_path / "d.txt", 5))],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"streamer: error: cannot reach the Ray cluster at {address} (Connection refused); start it with "
        f"`ray start --head` there, or check the address"]
    assert not (tmp_path / "out").exists()


def test_run_ray_needs_out_and_footage(capsys, tmp_path):
    assert main(["run", "--ray", str(tmp_path)]) == 2
    assert "--ray needs --out DIR" in capsys.readouterr().err
    assert main(["run", str(tmp_path), "--ray", "--out", str(tmp_path / "o")]) == 2
    assert "no video files there" in capsys.readouterr().err
