"""Event delivery with real endpoints: Mosquitto, Redis, an HTTP server; outages and
kill -9 lose nothing."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import redis

from helpers import Server, binary, clip_with_detections, free_port, http_server

from sinks.delivery import DeliverySink
from sinks.outbox import Outbox
from streamer.cli import main
from streamer.synthetic import MovingBox
from streamer.types import Event


def busy_video(tmp_path: Path, frames: int, name: str = "busy") -> tuple[Path, Path]:
    """A small clip where objects keep appearing and leaving, with its detections."""
    rng = np.random.default_rng(7)
    objects = []
    for k in range(frames // 12):
        start = 12 * k
        objects.append(MovingBox(float(rng.uniform(10, 200)), float(rng.uniform(10, 60)), 20, 30, 1.0, 0.5,
                                 (int(rng.integers(60, 255)), 40, 40), start=start, end=start + 30))
    path, det, _ = clip_with_detections(tmp_path, objects, frames, (120, 240), f"{name}.mp4")
    return path, det


def only(folder: Path, kind: str) -> Path:
    """The one outbox of an unnamed ``kind`` sink in ``folder`` (named by its endpoint)."""
    (path,) = folder.glob(f"{kind}-127.0.0.1-*.sqlite3")
    return path


def jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


class Subscriber:
    """A persistent-session QoS 1 subscriber that keeps every message it gets."""

    def __init__(self, port: int, topic: str = "streamer/#") -> None:
        self.messages: list[dict] = []
        self.topics: list[str] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber", clean_session=False)
        self.client.on_message = self._received
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        deadline = time.monotonic() + 5
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the SUBACK

    def _received(self, client, userdata, message) -> None:
        self.topics.append(message.topic)
        self.messages.append(json.loads(message.payload))

    def ids(self) -> list[str]:
        return [m["id"] for m in self.messages]

    def wait_for(self, expected: set[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not expected <= set(self.ids()) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def first_occurrences(ids: list[str]) -> list[str]:
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def test_outbox_keeps_order_across_reopen(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    box.append([("t", "a"), ("t", "b"), ("u", "c")])
    box.append([("t", "d")])
    assert [(k, p) for _, k, p in box.peek(2)] == [("t", "a"), ("t", "b")]
    box.ack(box.peek(2)[-1][0])
    box.close()
    again = Outbox(tmp_path / "o.sqlite3")
    assert len(again) == 2 and [(k, p) for _, k, p in again.peek(10)] == [("u", "c"), ("t", "d")]


def test_mqtt_every_event_once_in_order(mosquitto, tmp_path):
    video, det = busy_video(tmp_path, 240)
    sub = Subscriber(mosquitto.port)
    try:
        rc = main(["run", str(video), "--detector", "mot", "--detections", str(det), "--no-progress",
                   "--events", str(tmp_path / "e.jsonl"), "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}"])
        assert rc == 0
        expected = jsonl_ids(tmp_path / "e.jsonl")
        assert len(expected) >= 16
        sub.wait_for(set(expected))
        assert sub.ids() == expected  # once each, in order
        types = {m["type"] for m in sub.messages}
        assert types == {"track_started", "track_ended"}
    finally:
        sub.close()


def test_redis_stream_every_event_once_in_order(redis_server, tmp_path):
    video, det = busy_video(tmp_path, 240)
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    rc = main(["run", str(video), "--detector", "mot", "--detections", str(det), "--no-progress",
               "--events", str(tmp_path / "e.jsonl"), "--redis", url])
    assert rc == 0
    entries = redis.Redis.from_url(url).xrange("streamer:busy")
    got = [json.loads(fields[b"event"])["id"] for _, fields in entries]
    assert got == jsonl_ids(tmp_path / "e.jsonl")


def test_redis_maxlen_trims(redis_server, tmp_path):
    video, det = busy_video(tmp_path, 240)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output:\n  event_sinks:\n    - type: redis\n      url: redis://127.0.0.1:{redis_server.port}/0\n"
                   "      stream: events\n      maxlen: 10\n      batch: 5\n")
    assert main(["run", str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det),
                 "--no-progress"]) == 0
    # approximate trimming keeps at most a node's worth beyond maxlen; never everything
    n = redis.Redis(port=redis_server.port).xlen("events")
    assert 10 <= n < 60


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first requests, then 200; records the batches accepted."""

    failures_left = 2
    batches: list[list[dict]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if FlakyHandler.failures_left > 0:
            FlakyHandler.failures_left -= 1
            self.send_response(503)
        else:
            FlakyHandler.batches.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_retries_and_batches(tmp_path):
    FlakyHandler.failures_left, FlakyHandler.batches = 2, []
    with http_server(FlakyHandler) as url:
        video, det = busy_video(tmp_path, 120)
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"output:\n  outbox: {tmp_path / 'ob'}\n  event_sinks:\n    - type: webhook\n"
                       f"      url: {url}/events\n      batch: 7\n")
        assert main(["run", str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det),
                     "--no-progress", "--events", str(tmp_path / "e.jsonl")]) == 0
    got = [e["id"] for batch in FlakyHandler.batches for e in batch]
    assert got == jsonl_ids(tmp_path / "e.jsonl")
    assert max(len(b) for b in FlakyHandler.batches) <= 7


def test_unreachable_broker_warns_and_keeps_events(tmp_path, caplog):
    from helpers import free_port

    video, det = busy_video(tmp_path, 120)
    cfg = tmp_path / "c.yaml"
    port = free_port()
    cfg.write_text(f"output:\n  outbox: {tmp_path / 'ob'}\n  event_sinks:\n    - type: mqtt\n"
                   f"      url: mqtt://user:secret@127.0.0.1:{port}\n      drain_timeout: 0.5\n      timeout: 0.5\n")
    with caplog.at_level("WARNING"):
        assert main(["run", str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det),
                     "--no-progress", "--events", str(tmp_path / "e.jsonl")]) == 0
    text = caplog.text
    assert "not reachable now" in text and "stay in" in text
    assert "secret" not in text and "user:***@127.0.0.1" in text
    assert len(Outbox(only(tmp_path / "ob", "mqtt"))) == len(jsonl_ids(tmp_path / "e.jsonl")) > 0


@pytest.mark.parametrize("url, message", [("http://x", "--mqtt: URL 'http://x' must start with mqtt://"),
                                          ("mqtt://u:pw@h:1", "--redis: URL 'mqtt://u:***@h:1'")])
def test_bad_sink_urls(tmp_path, tiny_video, url, message, capsys):
    kind = "mqtt" if "http" in url else "redis"
    rc = main(["run", str(tiny_video[0]), f"--{kind}", url, "--no-progress", "--weights", "yolov8n.yaml",
               "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "pw" not in err


def _run_streamer(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streamer", "run", *args, "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_broker_outage_during_a_run_loses_nothing(mosquitto, tmp_path):
    video, det = busy_video(tmp_path, 2400)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output:\n  outbox: {tmp_path / 'ob'}\n  events: {tmp_path / 'e.jsonl'}\n  event_sinks:\n"
                   f"    - type: mqtt\n      url: mqtt://127.0.0.1:{mosquitto.port}\n"
                   "      topic: streamer/{source_id}\n"
                   "      timeout: 1\n      drain_timeout: 30\n")
    sub = Subscriber(mosquitto.port, "streamer/busy")
    try:
        proc = _run_streamer([str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det)])
        deadline = time.monotonic() + 30
        while len(sub.messages) < 5:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        mosquitto.stop()
        down_at = len(sub.messages)
        time.sleep(2.0)
        assert proc.poll() is None, "the run must go on while the broker is down"
        mosquitto.start()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        expected = jsonl_ids(tmp_path / "e.jsonl")
        assert down_at < len(expected)
        sub.wait_for(set(expected))
        assert first_occurrences(sub.ids()) == expected  # every event, in order (duplicates allowed)
        assert len(Outbox(only(tmp_path / "ob", "mqtt"))) == 0
    finally:
        sub.close()


def test_kill_9_while_broker_down_then_outbox_drained_next_start(mosquitto, tmp_path):
    video, det = busy_video(tmp_path, 2400)
    cfg = tmp_path / "c.yaml"
    # the outbox comes before the JSONL file: whatever the file holds, the outbox held first
    cfg.write_text(f"output:\n  outbox: {tmp_path / 'ob'}\n  event_sinks:\n"
                   f"    - type: mqtt\n      url: mqtt://127.0.0.1:{mosquitto.port}\n      timeout: 0.5\n"
                   f"    - type: jsonl\n      path: {tmp_path / 'killed.jsonl'}\n")
    mosquitto.stop()
    proc = _run_streamer([str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det)])
    deadline = time.monotonic() + 30
    while not (tmp_path / "killed.jsonl").exists() or len(jsonl_ids(tmp_path / "killed.jsonl")) < 20:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    killed = jsonl_ids(tmp_path / "killed.jsonl")
    assert len(Outbox(only(tmp_path / "ob", "mqtt"))) >= len(killed)

    mosquitto.start()
    sub = Subscriber(mosquitto.port)
    try:
        short, short_det = busy_video(tmp_path, 60, "short")
        cfg.write_text(cfg.read_text().replace("killed.jsonl", "second.jsonl"))
        assert main(["run", str(short), "--config", str(cfg), "--detector", "mot", "--detections", str(short_det),
                     "--no-progress"]) == 0
        second = jsonl_ids(tmp_path / "second.jsonl")
        sub.wait_for(set(killed) | set(second))
        got = sub.ids()
        assert set(killed) <= set(got) and set(second) <= set(got)
        # the earlier run's events go out first, in their order
        order = first_occurrences(got)
        assert order[: len(killed)] == killed
        assert len(Outbox(only(tmp_path / "ob", "mqtt"))) == 0
    finally:
        sub.close()


def test_outbox_of_another_layout_is_refused(tmp_path):
    import sqlite3

    from streamer.errors import SinkError

    db = sqlite3.connect(tmp_path / "old.sqlite3")
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload TEXT)")
    db.commit()
    db.close()
    with pytest.raises(SinkError, match="old.sqlite3: an outbox of another layout"):
        Outbox(tmp_path / "old.sqlite3")


class AuthHandler(http.server.BaseHTTPRequestHandler):
    """Accepts a batch only with the expected Basic credentials; records the headers seen."""

    seen: list[str | None] = []
    batches: list[list[dict]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        AuthHandler.seen.append(self.headers.get("Authorization"))
        ok = self.headers.get("Authorization") == "Basic dXNlcjpwQHNz"  # user:p@ss
        if ok:
            AuthHandler.batches.append(json.loads(body))
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_credentials_in_the_url_are_basic_auth(tmp_path):
    AuthHandler.seen, AuthHandler.batches = [], []
    with http_server(AuthHandler) as url:
        video, det = busy_video(tmp_path, 60)
        hook = url.replace("http://", "http://user:p%40ss@") + "/events"
        assert main(["run", str(video), "--detector", "mot", "--detections", str(det), "--no-progress",
                     "--events", str(tmp_path / "e.jsonl"), "--webhook", hook]) == 0
    assert set(AuthHandler.seen) == {"Basic dXNlcjpwQHNz"}
    assert [e["id"] for batch in AuthHandler.batches for e in batch] == jsonl_ids(tmp_path / "e.jsonl")


def test_mqtt_topic_from_the_url_path(mosquitto, tmp_path):
    video, det = busy_video(tmp_path, 60)
    sub = Subscriber(mosquitto.port, topic="site/#")
    try:
        url = f"mqtt://127.0.0.1:{mosquitto.port}/site/{{source_id}}"
        assert main(["run", str(video), "--detector", "mot", "--detections", str(det), "--no-progress",
                     "--events", str(tmp_path / "e.jsonl"), "--mqtt", url]) == 0
        expected = jsonl_ids(tmp_path / "e.jsonl")
        sub.wait_for(set(expected))
        assert sub.ids() == expected and set(sub.topics) == {f"site/{video.stem}"}
    finally:
        sub.close()


def test_two_sinks_of_one_name_are_refused(tmp_path, tiny_video, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  event_sinks:\n    - {type: mqtt, name: a, url: 'mqtt://127.0.0.1:1'}\n"
                   "    - {type: redis, name: a, url: 'redis://127.0.0.1:2'}\n")
    assert main(["run", str(tiny_video[0]), "--config", str(cfg), "--detector", "mot", "--detections", "x",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "2 sinks are named 'a', so they would share one outbox (streamer-outbox/a.sqlite3)" in err
    assert not (tmp_path / "streamer-outbox").exists()


class PoisonHandler(http.server.BaseHTTPRequestHandler):
    """Refuses (HTTP 400) any batch holding the poison event's id; accepts the rest."""

    poison = ""
    accepted: list[str] = []
    requests = 0

    def do_POST(self):  # noqa: N802
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        PoisonHandler.requests += 1
        ids = [e["id"] for e in batch]
        if PoisonHandler.poison in ids:
            self.send_response(400)
        else:
            PoisonHandler.accepted.extend(ids)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_refused_event_is_set_aside_and_delivery_goes_on(tmp_path, capsys):
    video, det = busy_video(tmp_path, 120)
    assert main(["run", str(video), "--detector", "mot", "--detections", str(det), "--no-progress",
                 "--events", str(tmp_path / "e.jsonl")]) == 0
    expected = jsonl_ids(tmp_path / "e.jsonl")
    capsys.readouterr()
    PoisonHandler.poison, PoisonHandler.accepted, PoisonHandler.requests = expected[5], [], 0
    with http_server(PoisonHandler) as url:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"output:\n  outbox: {tmp_path / 'ob'}\n  event_sinks:\n    - type: webhook\n"
                       f"      url: {url}/events\n      batch: 8\n")
        assert main(["run", str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det),
                     "--no-progress", "--events", str(tmp_path / "e2.jsonl")]) == 0
    assert PoisonHandler.accepted == [i for i in expected if i != expected[5]]  # the rest, once, in order
    out = capsys.readouterr().out
    assert f"{len(expected) - 1} delivered, 0 waiting, 1 refused for good" in out
    dead = Outbox(only(tmp_path / "ob", "webhook")).dead_letters()
    assert [(json.loads(p)["id"], why) for p, why in dead] == [(expected[5], "HTTP 400 Bad Request")]
    assert len(Outbox(only(tmp_path / "ob", "webhook"))) == 0  # a later run is not blocked


# Errors that retrying cannot fix, per sink kind: the refused events go to the outbox's dead
# letters with the reason, and delivery of the others (every other source) goes on.


def two_sources(tmp_path, first: str, second: str = "good", frames: int = 120) -> tuple[str, list[str], list[str]]:
    """A config of two copies of one clip, ids ``first`` and ``second``, with its events file;
    returns the config's text up to its event sinks and the event ids of each source."""
    video, det = busy_video(tmp_path, frames)
    for sid in (first, second):
        shutil.copy(video, tmp_path / f"{sid}.mp4")
    assert main(["run", str(video), "--detector", "mot", "--detections", str(det), "--no-progress",
                 "--events", str(tmp_path / "alone.jsonl")]) == 0
    ids = jsonl_ids(tmp_path / "alone.jsonl")
    assert len(ids) >= 10
    text = (f"sources:\n  - {{uri: '{tmp_path / (first + '.mp4')}', id: '{first}'}}\n"
            f"  - {{uri: '{tmp_path / (second + '.mp4')}', id: '{second}'}}\n"
            f"detector: {{name: mot, detections: '{det}'}}\n"
            f"output:\n  outbox: {tmp_path / 'ob'}\n  events: {tmp_path / 'e.jsonl'}\n  event_sinks:\n")
    return text, ids, ids


def events_of(path, source_id: str) -> list[str]:
    return [e["id"] for e in map(json.loads, path.read_text().splitlines()) if e["source_id"] == source_id]


def test_redis_wrongtype_key_is_refused_for_its_events_alone(redis_server, tmp_path, capsys):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    r = redis.Redis.from_url(url)
    r.set("streamer:demo", "notastream")
    for batch in (1, 100):  # one event a send, and batches mixing both sources
        r.delete("streamer:good")
        text, _, _ = two_sources(tmp_path, "demo")
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text + f"    - {{type: redis, url: '{url}', batch: {batch}, name: r{batch}}}\n")
        capsys.readouterr()
        assert main(["run", "--config", str(cfg), "--no-progress"]) == 0
        good, demo = events_of(tmp_path / "e.jsonl", "good"), events_of(tmp_path / "e.jsonl", "demo")
        got = [json.loads(f[b"event"])["id"] for _, f in r.xrange("streamer:good")]
        assert got == good  # every one of the other source's events, once, in order
        box = Outbox(tmp_path / "ob" / f"r{batch}.sqlite3")
        dead = box.dead_letters()
        assert [json.loads(p)["id"] for p, _ in dead] == demo
        assert {why for _, why in dead} == {"WRONGTYPE Operation against a key holding the wrong kind of value"}
        assert len(box) == 0
        out = capsys.readouterr().out
        assert f"{len(good)} delivered, 0 waiting, {len(demo)} refused for good" in out
        assert r.get("streamer:demo") == b"notastream"


def _event(n: int, source: str = "cam") -> Event:
    return Event(id=f"e{n}", type="track_started", source_id=source, frame=n, pts=n / 25, wall_time=None)


def _wait(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_redis_out_of_memory_waits_and_is_delivered_later(redis_server, tmp_path):
    """OOM is not permanent (trimming or consumers free memory): the events wait, none is buried."""
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    r = redis.Redis.from_url(url)
    r.config_set("maxmemory", "1")  # every write is now refused with OOM
    sink = DeliverySink("redis", url, tmp_path / "o.sqlite3", batch=2, backoff=0.05, max_backoff=0.2)
    sink.open()
    try:
        sink.write_events([_event(n) for n in range(5)])
        _wait(lambda: sink.failures >= 3)
        stats = sink.delivery()
        assert stats.pending == 5 and stats.dead == 0 and stats.delivered == 0
        assert stats.error == "command not allowed when used memory > 'maxmemory'."
        r.config_set("maxmemory", "0")
        _wait(lambda: sink.delivery().pending == 0)
    finally:
        sink.close()
    assert [json.loads(f[b"event"])["id"] for _, f in r.xrange("streamer:cam")] == [f"e{n}" for n in range(5)]
    assert sink.delivery().dead == 0 and sink.delivery().error == ""


def test_mqtt_unpublishable_topic_is_refused_and_the_other_source_goes_on(mosquitto, tmp_path, capsys):
    """A source id with '+' makes a topic no broker takes (paho raises at publish): before,
    the queue retried it for ever."""
    text, _, _ = two_sources(tmp_path, "cam+1")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text + f"    - {{type: mqtt, url: 'mqtt://127.0.0.1:{mosquitto.port}', batch: 4}}\n")
    sub = Subscriber(mosquitto.port, "streamer/#")
    try:
        assert main(["run", "--config", str(cfg), "--no-progress"]) == 0
        good, bad = events_of(tmp_path / "e.jsonl", "good"), events_of(tmp_path / "e.jsonl", "cam+1")
        sub.wait_for(set(good))
        assert sub.ids() == good
    finally:
        sub.close()
    (box,) = (tmp_path / "ob").glob("mqtt-127.0.0.1-*.sqlite3")
    dead = Outbox(box).dead_letters()
    assert [json.loads(p)["id"] for p, _ in dead] == bad
    assert dead[0][1] == ("topic 'streamer/cam+1/track_started' cannot be published to "
                          "(empty, over 65535 bytes, or holding +, # or NUL)")
    assert f"{len(good)} delivered, 0 waiting, {len(bad)} refused for good" in capsys.readouterr().out


def _mosquitto_with_password(tmp_path, user: str, password: str) -> Server:
    port = free_port()
    passwd = tmp_path / "passwd"
    subprocess.run([binary("mosquitto_passwd", "mosquitto"), "-b", "-c", str(passwd), user, password], check=True,
                   capture_output=True)
    conf = tmp_path / "auth.conf"
    # run as root, mosquitto would switch to its own user, who cannot read the test's private folder
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    return Server([binary("mosquitto"), "-c", str(conf)], port).start()


def test_mqtt_userinfo_is_percent_decoded_and_a_refusal_says_why(tmp_path, capsys, caplog):
    broker = _mosquitto_with_password(tmp_path, "bob", "B0b:pw@x")
    video, det = busy_video(tmp_path, 60)
    try:
        good = f"mqtt://bob:B0b%3Apw%40x@127.0.0.1:{broker.port}/site/{{source_id}}"
        sub = _AuthSubscriber(broker.port)
        try:
            assert main(["run", str(video), "--detector", "mot", "--detections", str(det), "--no-progress",
                         "--events", str(tmp_path / "e.jsonl"), "--mqtt", good]) == 0
            expected = jsonl_ids(tmp_path / "e.jsonl")
            sub.wait_for(set(expected))
            assert sub.ids() == expected
        finally:
            sub.close()
        capsys.readouterr()
        wrong = f"mqtt://bob:wrong@127.0.0.1:{broker.port}/site/{{source_id}}"
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"output:\n  event_sinks:\n    - {{type: mqtt, url: '{wrong}', timeout: 0.5, "
                       f"drain_timeout: 1}}\n")
        with caplog.at_level("WARNING"):
            assert main(["run", str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det),
                         "--no-progress"]) == 0
        out = capsys.readouterr().out
        reason = "the broker refused the connection: Not authorized"
        assert f"not reachable now ({reason})" in caplog.text
        assert f"0 delivered, {len(expected)} waiting (last failure: {reason})" in out
        assert "wrong" not in caplog.text + out
    finally:
        broker.stop()


class _AuthSubscriber(Subscriber):
    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages, self.topics = [], []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="auth-sub", clean_session=False)
        self.client.username_pw_set("bob", "B0b:pw@x")
        self.client.on_message = self._received
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("site/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        deadline = time.monotonic() + 5
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)


# Outbox identity: an unnamed sink's outbox is named by its endpoint, so another endpoint
# never receives its backlog; a named sink's by its name.

class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Accepts every batch; records the event ids by path."""

    got: dict[str, list[str]] = {}

    def do_POST(self):  # noqa: N802
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RecordingHandler.got.setdefault(self.path, []).extend(e["id"] for e in batch)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_backlog_goes_only_to_its_own_endpoint(tmp_path, caplog):
    video, det = busy_video(tmp_path, 60)
    args = ["--detector", "mot", "--detections", str(det), "--no-progress"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  event_sinks:\n    - {type: webhook, url: 'http://127.0.0.1:2/b', timeout: 0.3, "
                   "drain_timeout: 0.3}\n")
    assert main(["run", str(video), "--config", str(cfg), *args, "--events", str(tmp_path / "e1.jsonl")]) == 0
    first = jsonl_ids(tmp_path / "e1.jsonl")
    (down,) = Path("streamer-outbox").glob("webhook-*.sqlite3")
    assert down.name.startswith("webhook-127.0.0.1-2-") and len(Outbox(down)) == len(first)
    RecordingHandler.got = {}
    with http_server(RecordingHandler) as url:
        assert main(["run", str(video), *args, "--events", str(tmp_path / "e2.jsonl"), "--webhook", f"{url}/a"]) == 0
        second = jsonl_ids(tmp_path / "e2.jsonl")
        assert RecordingHandler.got == {"/a": second}  # not the other endpoint's backlog
        assert len(Outbox(down)) == len(first)  # still waiting for its own endpoint
        # an outbox of an earlier version (webhook.sqlite3, no endpoint recorded) is named, not sent
        shutil.copy(down, "streamer-outbox/webhook.sqlite3")
        RecordingHandler.got = {}
        with caplog.at_level("WARNING"):
            assert main(["run", str(video), *args, "--webhook", f"{url}/a"]) == 0
        assert RecordingHandler.got == {"/a": second}
        assert ("streamer-outbox/webhook.sqlite3: an outbox of an earlier version (before outboxes were kept per "
                f"endpoint) is left as it is: its endpoint is not recorded, so its events are not sent to {url}/a. "
                "To deliver them there, give this sink name: webhook") in caplog.text
        # ... and a sink named as the old file delivers it
        RecordingHandler.got = {}
        cfg.write_text(f"output:\n  event_sinks:\n    - {{type: webhook, name: webhook, url: '{url}/old'}}\n")
        assert main(["run", str(video), "--config", str(cfg), *args]) == 0
        assert RecordingHandler.got == {"/old": first + second}
        assert len(Outbox("streamer-outbox/webhook.sqlite3")) == 0


@pytest.mark.parametrize("a, b, same", [
    ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b", False),
    ("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a", False),
    ("http://u:one@127.0.0.1/a?token=x", "http://u:two@127.0.0.1:80/a?token=y", True),  # credentials change
    ("http://HOST/a", "http://host/a", True),
    ("https://host/a", "http://host/a", False),
])
def test_outbox_identity_is_the_endpoint_without_credentials(a, b, same):
    from streamer.config import event_sink_config

    ia, ib = (event_sink_config(type="webhook", url=u).identity for u in (a, b))
    assert (ia == ib) is same
    assert all(secret not in ia + ib for secret in ("one", "two", "u:", "token"))


def test_mqtt_and_redis_identity_includes_the_topic_or_stream():
    from streamer.config import event_sink_config

    mq = [event_sink_config(type="mqtt", url="mqtt://h", topic=t).identity for t in ("a/{source_id}", "b/x")]
    rd = [event_sink_config(type="redis", url="redis://h/0", stream=s).identity for s in ("a:{source_id}", "b")]
    assert mq[0] != mq[1] and rd[0] != rd[1]
    assert mq[0].startswith("mqtt-h-1883-") and rd[0].startswith("redis-h-6379-")
    assert event_sink_config(type="mqtt", url="mqtt://h/a/{source_id}").identity == mq[0]  # topic in the path


def test_repeated_and_config_plus_flag_sinks_are_all_used(tmp_path, capsys):
    video, det = busy_video(tmp_path, 60)
    RecordingHandler.got = {}
    with http_server(RecordingHandler) as url:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"output:\n  event_sinks:\n    - {{type: webhook, url: '{url}/c'}}\n")
        assert main(["run", str(video), "--config", str(cfg), "--detector", "mot", "--detections", str(det),
                     "--no-progress", "--events", str(tmp_path / "e.jsonl"),
                     "--webhook", f"{url}/a", "--webhook", f"{url}/b"]) == 0
    expected = jsonl_ids(tmp_path / "e.jsonl")
    assert RecordingHandler.got == {"/a": expected, "/b": expected, "/c": expected}
    out = capsys.readouterr().out
    for path in ("a", "b", "c"):  # the summary lists each sink
        assert f"sink:    webhook {url}/{path}: {len(expected)} delivered, 0 waiting" in out
    assert len(list(Path("streamer-outbox").glob("webhook-127.0.0.1-*.sqlite3"))) == 3


@pytest.mark.parametrize("command", ["run", "serve"])
@pytest.mark.parametrize("kind, url", [("webhook", "http://u:pw@127.0.0.1:9/a"), ("mqtt", "mqtt://127.0.0.1:9/t")])
def test_a_flag_sink_the_same_as_the_configs_is_one_line(command, kind, url, tmp_path, tiny_video, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output:\n  event_sinks:\n    - {{type: {kind}, url: '{url}'}}\n")
    rc = main([command, *([str(tiny_video[0])] if command == "run" else []), "--config", str(cfg),
               f"--{kind}", url, "--detector", "mot", "--detections", "x.txt"])
    shown = url.replace(":pw@", ":***@")
    assert rc == 2
    assert capsys.readouterr().err == (f"streamer: config error: event_sinks: 2 {kind} sinks go to {shown}, so each "
                                       f"event would be sent twice; keep one (a --{kind} flag adds one to the "
                                       f"config's)\n")
    assert not Path("streamer-outbox").exists()


@pytest.mark.parametrize("name", ["../../../esc4", "a/b", "a\\b", ".hidden", "..", "-x", "a\x00b", "a\nb", "",
                                  "x" * 65])
def test_a_sink_name_that_is_not_a_plain_file_name_is_refused(name, tmp_path, tiny_video, capsys):
    cfg = tmp_path / "sub" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text("output:\n  event_sinks:\n    - " + json.dumps({"type": "webhook", "name": name,
                                                                   "url": "http://127.0.0.1:9/a"}) + "\n")
    assert main(["run", str(tiny_video[0]), "--config", str(cfg), "--detector", "mot", "--detections", "x.txt",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    said = "holds a NUL byte" if "\x00" in name else ("a sink name names its outbox file: use 1-64 letters, digits, "
                                                       "'.', '_' or '-', not starting with '.' or '-'")
    assert err.startswith(f"streamer: config error: {cfg}: output.event_sinks.0.name: {said}"), err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*.sqlite3")) == []


@pytest.mark.parametrize("flag, url, message", [
    ("--redis", "redis://127.0.0.1:70000/0",
     "URL 'redis://127.0.0.1:70000/0' cannot be read (Port out of range 0-65535)"),
    ("--webhook", "http://[::1/x", "URL 'http://[::1/x' cannot be read (Invalid IPv6 URL)"),
    ("--webhook", "http://127.0.0.1:-5/x", "URL 'http://127.0.0.1:-5/x' cannot be read (Port could not be cast"),
    ("--mqtt", "mqtt://127.0.0.1:0/t", "URL 'mqtt://127.0.0.1:0/t': port 0 is not 1-65535"),
    ("--mqtt", "mqtt://u:S3CRET@127.0.0.1:0/t", "URL 'mqtt://u:***@127.0.0.1:0/t': port 0 is not 1-65535"),
    ("--webhook", "http://[zz::1]/x",
     "URL 'http://[zz::1]/x' cannot be read ('zz::1' does not appear to be an IPv4 or IPv6 address)"),
    ("--webhook", "http:///x", "URL 'http:///x' has no host"),
    ("--webhook", "http://exa%20mple/x", "URL 'http://exa%20mple/x': 'exa%20mple' is not a host name or address"),
    ("--redis", "redis://u:S3CRET@127.0.0.1:99999/0?token=S3CRET", "URL 'redis://u:***@127.0.0.1:99999/0?token=***'"),
    ("--webhook", "ftp://127.0.0.1/x", "URL 'ftp://127.0.0.1/x' must start with http:// or https://"),
    # what redis-py would read wrongly (the database) or fail on later (its options)
    ("--redis", "redis://127.0.0.1/x", "URL 'redis://127.0.0.1/x': the path is the database number "
                                       "(redis://host:6379/0), not 'x'"),
    ("--redis", "redis://u:S3CRET@127.0.0.1/0?socket_timeout=abc",
     "URL 'redis://u:***@127.0.0.1/0?socket_timeout=abc': Invalid value for 'socket_timeout' in connection URL."),
    ("--redis", "redis://127.0.0.1/0?ssl_cert_reqs=none",
     "URL 'redis://127.0.0.1/0?ssl_cert_reqs=none': unexpected keyword argument 'ssl_cert_reqs'"),
    # topics and streams: filled per event, published as they are
    ("--mqtt", "mqtt://127.0.0.1/a/+/b", "topic 'a/+/b': '+' and '#' are for subscribing"),
    ("--mqtt", "mqtt://127.0.0.1/a/#", "topic 'a/#': '+' and '#' are for subscribing"),
    ("--mqtt", "mqtt://127.0.0.1/a/{camera}", "topic 'a/{camera}': unknown placeholder {camera}; the placeholders "
                                              "are {source_id} and {type} (braces as {{ and }})"),
    ("--mqtt", "mqtt://127.0.0.1/a/{source_id", "topic 'a/{source_id': not a template (expected '}' before end"),
])
def test_sink_urls_are_checked_at_config_time(flag, url, message, tmp_path, tiny_video, capsys):
    """Before, some of these ended in a traceback (a bad port, an unknown placeholder on the
    first event), and others were taken (port 0, a database path redis-py ignores)."""
    rc = main(["run", str(tiny_video[0]), flag, url, "--detector", "mot", "--detections", "x.txt", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"streamer: config error: {flag}: {message}")
    assert err.count("\n") == 1 and "S3CRET" not in err
    cfg = tmp_path / "c.yaml"  # the same check in a config file
    cfg.write_text("output:\n  event_sinks:\n    - " + json.dumps({"type": flag[2:], "url": url}) + "\n")
    assert main(["run", str(tiny_video[0]), "--config", str(cfg), "--detector", "mot", "--detections", "x.txt",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"output.event_sinks.0: {message}" in err and "S3CRET" not in err and err.count("\n") == 1


def test_mqtt_event_the_broker_drops_the_connection_for_is_set_aside(tmp_path):
    """Mosquitto closes an MQTT 3.1.1 connection on a packet over its max_packet_size (and
    paho would send it again on reconnecting): before, the queue stopped there for ever."""
    port = free_port()
    conf = tmp_path / "small.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 600\n")
    broker = Server([binary("mosquitto"), "-c", str(conf)], port).start()
    sub = Subscriber(port, "streamer/#")
    events = [_event(n) for n in range(12)]
    events[5].data["blob"] = "x" * 1000  # this one is over the broker's limit
    sink = DeliverySink("mqtt", f"mqtt://127.0.0.1:{port}", tmp_path / "o.sqlite3", batch=4, backoff=0.05,
                        max_backoff=0.2, timeout=2.0)
    try:
        sink.open()
        sink.write_events(events[:8])
        sink.write_events(events[8:])
        _wait(lambda: sink.delivery().pending == 0, 60)
        sink.close()
        expected = [e.id for e in events if e.id != "e5"]
        sub.wait_for(set(expected))
        assert first_occurrences(sub.ids()) == expected
        stats = sink.delivery()
        assert (stats.delivered, stats.pending, stats.dead) == (11, 0, 1)
        dead = Outbox(tmp_path / "o.sqlite3").dead_letters()
        assert [(json.loads(p)["id"], why) for p, why in dead] == [
            ("e5", "the broker closed the connection while the batch was in flight 3 times in a row with this "
                   "event (over the broker's maximum packet size?)")]
    finally:
        sink.close()
        sub.close()
        broker.stop()


def test_a_redis_stream_template_is_checked_at_config_time(tmp_path, tiny_video, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output:\n  event_sinks:\n    - {type: redis, url: 'redis://127.0.0.1/0', stream: 's:{cam}'}\n")
    assert main(["run", str(tiny_video[0]), "--config", str(cfg), "--detector", "mot", "--detections", "x.txt",
                 "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"streamer: config error: {cfg}: output.event_sinks.0: stream 's:{{cam}}': unknown placeholder {{cam}}; "
        "the placeholders are {source_id} and {type} (braces as {{ and }})\n")


def test_redis_acl_denied_key_is_refused_for_its_events_alone(redis_server, tmp_path):
    """NOPERM (the user's ACL denies that key) is about the event's stream: a retry cannot fix it."""
    admin = redis.Redis(port=redis_server.port)
    admin.acl_setuser("writer", enabled=True, passwords=["+w p@ss"], commands=["+@all"], keys=["streamer:good"])
    url = f"redis://writer:w%20p%40ss@127.0.0.1:{redis_server.port}/0"
    sink = DeliverySink("redis", url, tmp_path / "o.sqlite3", batch=3, backoff=0.05, max_backoff=0.2)
    events = [_event(n, "good" if n % 3 else "demo") for n in range(9)]
    sink.open()
    try:
        sink.write_events(events)
        _wait(lambda: sink.delivery().pending == 0)
    finally:
        sink.close()
    got = [json.loads(f[b"event"])["id"] for _, f in admin.xrange("streamer:good")]
    assert got == [e.id for e in events if e.source_id == "good"]
    dead = Outbox(tmp_path / "o.sqlite3").dead_letters()
    assert [json.loads(p)["id"] for p, _ in dead] == ["e0", "e3", "e6"]
    assert {why for _, why in dead} == {"this user has no permissions to access one of the keys used as arguments"}
    assert (sink.delivery().delivered, sink.delivery().dead) == (6, 3)
