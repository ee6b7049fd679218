"""Events per second each event sink sustains, beside the raw client doing the same
work in the same run (a plain loop of writes / publishes / XADDs / POSTs, no outbox).

Starts its own Mosquitto and Redis on 127.0.0.1 (Debian's mosquitto and redis-server)
and an HTTP server in this process. Our figure is end to end: from write_events() until
the endpoint acknowledged the last event (outbox on disk included).

    python benchmarks/event_sinks.py [--events 20000]
"""

from __future__ import annotations

import argparse
import http.server
import io
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from sinks.delivery import DeliverySink
from sinks.events import JsonlSink, StdoutSink
from streamer.analytics import event_id
from streamer.types import Event


def make_events(n: int) -> list[Event]:
    return [
        Event(event_id("bench", "track_started", k, k), "track_started", "bench", k, k / 25, None, k, 0, "person",
              0.9, (10.0, 20.0, 30.0, 40.0))
        for k in range(n)
    ]


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], p: int) -> subprocess.Popen:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", p), 0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{argv[0]} did not start")


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def through_sink(sink, events: list[Event], per_frame: int = 10) -> float:
    """Events/s from the first write to the last acknowledgement (close drains)."""
    start_t = time.perf_counter()
    with sink:
        for i in range(0, len(events), per_frame):
            sink.write_events(events[i : i + per_frame])
    return len(events) / (time.perf_counter() - start_t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    events = make_events(args.events)
    # the raw clients serialise too: json.dumps of each event, as any producer would
    payloads = None
    work = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    rows = []

    # JSONL and stdout (to a StringIO): local writes
    t0 = time.perf_counter()
    with open(work / "raw.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e.to_dict()) + "\n")
            if e.frame % 10 == 9:
                f.flush()
    raw = args.events / (time.perf_counter() - t0)
    payloads = [json.dumps(e.to_dict()) for e in events]
    rows.append(("jsonl", through_sink(JsonlSink(work / "e.jsonl"), events), raw))
    rows.append(("stdout (to memory)", through_sink(StdoutSink(io.StringIO()), events), None))

    # Redis
    rp = port()
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    rproc = start([redis_bin, "--port", str(rp), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], rp)
    try:
        import redis

        r = redis.Redis(port=rp)
        t0 = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        for i, e in enumerate(events, 1):
            pipe.xadd("raw", {"event": json.dumps(e.to_dict())})
            if i % 100 == 0:
                pipe.execute()
        pipe.execute()
        raw = args.events / (time.perf_counter() - t0)
        sink = DeliverySink("redis", f"redis://127.0.0.1:{rp}/0", work / "redis.sqlite3", maxlen=None)
        ours = through_sink(sink, events)
        rows.append(("redis (XADD, pipelined 100)", ours, raw))
    finally:
        rproc.terminate()

    # MQTT
    mp = port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {mp} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\n")
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    mproc = start([mosq, "-c", str(conf)], mp)
    try:
        import paho.mqtt.client as mqtt

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.max_inflight_messages_set(0)
        c.connect("127.0.0.1", mp)
        c.loop_start()
        t0 = time.perf_counter()
        infos = [c.publish("raw", json.dumps(e.to_dict()), qos=1) for e in events]
        for info in infos:
            info.wait_for_publish(30)
        raw = args.events / (time.perf_counter() - t0)
        c.loop_stop()
        c.disconnect()
        ours = through_sink(DeliverySink("mqtt", f"mqtt://127.0.0.1:{mp}", work / "mqtt.sqlite3"), events)
        rows.append(("mqtt (QoS 1)", ours, raw))
    finally:
        mproc.terminate()

    # Webhook
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import urllib.request

        url = f"http://127.0.0.1:{server.server_port}/"
        t0 = time.perf_counter()
        for i in range(0, len(events), 100):
            body = json.dumps([e.to_dict() for e in events[i : i + 100]]).encode()
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
            urllib.request.urlopen(req, timeout=5).close()
        raw = args.events / (time.perf_counter() - t0)
        ours = through_sink(DeliverySink("webhook", url, work / "webhook.sqlite3"), events)
        rows.append(("webhook (POST, batches of 100)", ours, raw))
    finally:
        server.shutdown()

    print(f"{args.events} events of {len(payloads[0])} bytes; events/s, end to end")
    print(f"{'sink':34s}{'streamer':>12s}{'raw client':>12s}{'ratio':>8s}")
    for name, ours, raw in rows:
        ratio = f"{ours / raw:8.2f}" if raw else ""
        print(f"{name:34s}{ours:12.0f}{(f'{raw:12.0f}' if raw else ''):>12s}{ratio}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
