"""``streamer serve`` over real HTTP: streams put and deleted at runtime, kept across a
restart, bad requests refused, the token enforced. Cameras are ``lavfi:`` sources and
the real RTSP test server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import jsonschema
import requests
import pytest
from helpers import free_port
from serving import LAVFI, Serve, balanced, read_events, summary_frames, write_dets

from sinks.events import SCHEMA_FILE


def _config(tmp_path, sources=()) -> str:
    path = tmp_path / "serve.yaml"
    config = {
        "detector": {"name": "mot", "detections": str(write_dets(tmp_path / "dets.txt"))},
        "tracker": {"name": "sort"},
        "output": {"video": "{source_id}.mp4"},
        "sources": list(sources),
    }
    path.write_text(json.dumps(config))  # YAML is a superset of JSON
    return str(path)


def test_streams_added_removed_and_restored_after_a_restart(tmp_path, rtsp_server):
    server = rtsp_server(["c"])
    config = _config(tmp_path, [{"id": "a", "uri": LAVFI}])
    serve = Serve(tmp_path, "--config", config, "--events", "run1.jsonl")
    assert list(serve.streams()) == ["a"]
    assert serve.api("PUT", "/api/streams/b", {"uri": LAVFI}).status_code == 201
    response = serve.api("PUT", "/api/streams/c", {"uri": server.url("c"), "timeout": 5})
    assert response.status_code == 201 and response.json()["uri"] == server.url("c")
    assert serve.api("PUT", "/api/streams/c", {"uri": server.url("c"), "timeout": 5}).status_code == 200
    serve.wait_state("up", "abc")
    assert serve.api("DELETE", "/api/streams/b").json() == {"id": "b", "deleted": True}
    assert sorted(serve.streams()) == ["a", "c"]
    assert serve.api("PUT", "/api/streams/b", {"uri": LAVFI}).status_code == 201  # re-added
    # The line is crossed once every 140 frames (5.6 s): it counts on c from now on.
    line = {"lines": [{"name": "door", "points": [[150, 0], [150, 240]]}]}
    assert serve.api("PUT", "/api/streams/c/analytics", line).status_code == 200
    serve.wait_state("up", "abc")
    time.sleep(6.5)
    rc, out, err = serve.stop()
    assert rc == 0, err
    events = read_events(tmp_path / "run1.jsonl")
    schema = json.loads(Path(SCHEMA_FILE).read_text())
    for event in events:
        jsonschema.validate(event, schema)
    removed = [e for e in events if e["type"] == "source_removed"]
    assert [(e["source_id"], e["reason"]) for e in removed] == [("b", "deleted")]
    assert any(e["type"] == "line_crossed" and e["source_id"] == "c" for e in events)
    for sid in "abc":
        started, ended = balanced(events, sid)
        assert started and started == ended, sid

    # Restarted: the stored set (b re-added, c with its analytics) on top of the config's a.
    serve = Serve(tmp_path, "--config", config, "--events", "run2.jsonl")
    streams = serve.wait_state("up", "abc")
    assert sorted(streams) == ["a", "b", "c"]
    assert streams["c"]["uri"] == server.url("c") and streams["c"]["analytics"]["lines"][0]["name"] == "door"
    time.sleep(1.0)
    rc, out, err = serve.stop()
    assert rc == 0, err
    frames = summary_frames(out)
    events = read_events(tmp_path / "run2.jsonl")
    for sid in "abc":
        started, ended = balanced(events, sid)
        assert started and started == ended, sid
        with av.open(str(tmp_path / f"{sid}.mp4")) as container:  # SIGTERM left whole files
            assert sum(1 for _ in container.decode(video=0)) == frames[sid] > 0


def test_a_deleted_config_stream_stays_deleted_after_a_restart(tmp_path):
    config = _config(tmp_path, [{"id": "a", "uri": LAVFI}, {"id": "b", "uri": LAVFI}])
    serve = Serve(tmp_path, "--config", config)
    serve.wait_state("up", "ab")
    assert serve.api("DELETE", "/api/streams/a").status_code == 200
    assert serve.stop()[0] == 0
    serve = Serve(tmp_path, "--config", config)
    assert sorted(serve.streams()) == ["b"]
    assert serve.stop()[0] == 0


def test_bad_requests_get_clear_answers(tmp_path):
    serve = Serve(tmp_path, "--config", _config(tmp_path), token="s3cret")
    no_token = serve.api("GET", "/api/streams", token=None)
    wrong = serve.api("PUT", "/api/streams/x", {"uri": LAVFI}, token="guess")
    assert (no_token.status_code, no_token.content) == (401, b"")
    assert (wrong.status_code, wrong.content) == (401, b"")
    assert serve.api("GET", "/metrics", token=None).status_code == 401
    assert serve.api("GET", "/healthz", token=None).status_code == 200  # probes carry no secret
    assert serve.streams() == {}  # the refused PUT changed nothing

    cases = [
        ({"uri": LAVFI, "transport": "pigeon"}, "body: transport: Input should be 'tcp' or 'udp'"),
        ({"url": LAVFI}, "body: url: unknown key"),
        ({"uri": LAVFI, "timeout": 0}, "body: timeout: Input should be greater than 0"),
        ({"uri": str(tmp_path / "missing.mp4")}, "uri: "),
        ({"uri": LAVFI, "id": "other"}, "id: the body's id 'other' differs from the path's 'x'"),
        ([1, 2], "body: expected a JSON object"),
        ("{not json", "body: not JSON"),
    ]
    for body, message in cases:
        response = serve.api("PUT", "/api/streams/x", body)
        assert response.status_code == 422 and response.json()["error"].startswith(message), (body, response.text)
    response = serve.api("PUT", "/api/streams/..%2F..%2Fescaped", {"uri": LAVFI})
    assert response.status_code in (404, 422)
    assert serve.api("PUT", "/api/streams/a.b", {"uri": LAVFI, "id": "a.b"}).status_code == 201
    zone = {"name": "z", "points": [[0, 0], [9, 0], [9, 9]], "classes": ["cat"]}
    response = serve.api("PUT", "/api/streams/a.b/analytics", {"zones": [zone]})
    assert response.status_code == 422 and "analytics.zones[0].classes: unknown class 'cat'" in response.text
    for method, path in (("GET", "/api/streams/nope"), ("DELETE", "/api/streams/nope"),
                         ("PUT", "/api/streams/nope/analytics")):
        response = serve.api(method, path, {} if method == "PUT" else None)
        assert response.status_code == 404 and "no stream 'nope'" in response.json()["error"], (method, path)
    big = serve.api("PUT", "/api/streams/y", b"{" + b" " * 300_000 + b"}")
    assert big.status_code == 413 and "y" not in serve.streams()

    # Credentials never leave the service: not in the listing, the error, or the logs.
    secret = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/x?token=abc123"
    assert serve.api("PUT", "/api/streams/cam", {"uri": secret, "timeout": 1}).status_code == 201
    time.sleep(3)
    listing = serve.api("GET", "/api/streams").text
    assert "cam" in listing and "hunter2" not in listing and "abc123" not in listing
    rc, out, err = serve.stop()
    assert rc == 0
    assert "hunter2" not in out + err and "abc123" not in out + err


def test_busy_port_and_bad_address_are_one_line_errors(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--http", f"127.0.0.1:{port}",
                               "--detector", "mot", "--detections", "x"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"streamer: error: cannot listen on 127.0.0.1:{port}")
    proc = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--http", "localhost"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--http: 'localhost' is not HOST:PORT" in proc.stderr


@pytest.mark.parametrize(("section", "message"), [
    ({"id": "../x", "uri": LAVFI}, "sources.0.id: an id may not be empty or hold '/', '\\', '..'"),
    ({"id": "a b", "uri": LAVFI}, "sources[0].id: 'a b' is not a stream id"),
    ({"uri": LAVFI}, "sources[0].id: a served stream needs an id"),
])
def test_config_streams_need_plain_ids(tmp_path, section, message):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--http", f"127.0.0.1:{free_port()}",
                           "--config", _config(tmp_path, [section])], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_what_a_new_user_tried(tmp_path):
    """Chunked and deeply nested bodies, HEAD probes, a lower-case scheme, a PUT that leaves
    analytics out, restarts that keep outputs and give live streams new event ids."""
    config = _config(tmp_path, [{"id": "a", "uri": LAVFI}])
    serve = Serve(tmp_path, "--config", config, "--events", "events.jsonl", token="t0k")
    line = {"lines": [{"name": "door", "points": [[150, 0], [150, 240]]}]}

    def chunks():
        for _ in range(40):
            yield b" " * 10_000

    assert serve.api("PUT", "/api/streams/big", chunks()).status_code == 413  # no Content-Length: chunked
    assert serve.api("PUT", "/api/streams/deep", b"[" * 100_000 + b"]" * 100_000).status_code in (413, 422)
    deep = serve.api("PUT", "/api/streams/deep", b"[" * 50_000 + b"]" * 50_000)
    assert deep.status_code == 422 and "nested too deeply" in deep.json()["error"]
    assert requests.head(serve.url + "/healthz", timeout=5).status_code == 200
    lower = requests.get(serve.url + "/api/streams", headers={"Authorization": "bearer t0k"}, timeout=5)
    assert lower.status_code == 200
    assert serve.api("PUT", "/api/streams/a/analytics", line).status_code == 200
    again = serve.api("PUT", "/api/streams/a", {"uri": LAVFI})  # the same section: analytics kept, no restart
    assert again.status_code == 200 and again.json()["analytics"]["lines"][0]["name"] == "door"
    assert again.json()["source"] == {"uri": LAVFI}
    serve.wait_state("up", "a")
    time.sleep(1.5)
    assert serve.stop()[0] == 0
    first = read_events(tmp_path / "events.jsonl")
    assert not [e for e in first if e["type"] == "source_removed"]
    serve = Serve(tmp_path, "--config", config, "--events", "events.jsonl", token="t0k")
    serve.wait_state("up", "a")
    time.sleep(1.5)
    assert serve.stop()[0] == 0
    kept = [p for p in tmp_path.glob("events.*.jsonl")]
    assert len(kept) == 1 and read_events(kept[0]) == first  # moved aside, whole
    assert len(list(tmp_path.glob("a.*.mp4"))) == 1  # the first run's video, kept
    second = read_events(tmp_path / "events.jsonl")
    assert second and not {e["id"] for e in first} & {e["id"] for e in second}  # a camera's restart: new ids


def test_bad_service_settings_are_one_line_errors(tmp_path):
    import subprocess
    import sys

    (tmp_path / "state").write_text('{"version": 1, "streams": {"z": {"uri": "lavfi:x", "bogus": 1}}, "deleted": []}')
    serve = Serve(tmp_path, "--config", _config(tmp_path), "--state", str(tmp_path / "state"))
    z = serve.streams()["z"]
    assert z["state"] == "failed" and "bogus: unknown key" in z["last_error"]
    rc, out, err = serve.stop()
    assert rc == 0 and "z: stored stream z: bogus: unknown key" in err
    for flags, message in ((["--state", "/proc/nope/streams.json"], "--state: cannot write /proc/nope/streams.json"),
                           (["--watchdog", "0"], "argument --watchdog: '0' is not a number of seconds above 0")):
        proc = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--http", f"127.0.0.1:{free_port()}",
                               "--config", _config(tmp_path), *flags], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
