"""Soak: four RTSP cameras for an hour, with outages and broker restarts; is anything growing?

Four real RTSP servers (streamer/testing/rtsp_server.py, GStreamer, one per camera, the
synthetic two-box scene looped at ``--fps``) feed one pipeline in this process. Each
camera's server is killed for ``--outage-seconds`` every ``--outage-every`` minutes
(staggered, so one camera is down at a time), and the Mosquitto broker the events are
published to is restarted every ``--broker-every`` minutes. Events go to a JSONL file
and to MQTT (QoS 1, the outbox); a persistent QoS 1 subscriber in a process of its own
(so its memory is not counted as the pipeline's) writes down the id of every message.

Per ``--window`` minutes it prints frames, events, RSS, the bytes malloc has handed out
and not had back, Python's allocated blocks (RSS growing with these two flat is memory
kept by the allocator, not a leak), capture-to-output latency p50/p99 (all cameras),
open file descriptors and threads of this process; then whether every
event of the JSONL file reached the subscriber exactly once after de-duplication by id
(no event missing, none extra) and in the file's order per source, and how far each
figure moved between the first and the last window (the peer in the same run).

    python benchmarks/soak.py [--minutes 60] [--window 5] [--table soak.txt]
    python benchmarks/soak.py --minutes 10 --window 2 --outage-every 2 --broker-every 4   # a short try

The detector is the blob finder of the synthetic scenes by default (real boxes, so
tracks and line crossings happen, at almost no CPU); ``--detector yolo`` runs a
yaml-built YOLOv8n (random weights) at ``--imgsz`` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from streamer.config import load_config
from streamer.metrics import Latency, rss_bytes
from streamer.pipeline import Pipeline
from streamer.testing import LIVE_OBJECTS, BlobDetector, RtspServer, Server, free_port, write_raw_clip

CAMERAS = 4


def consume(port: int, path: str) -> None:
    """The consumer, in a process of its own (its memory is not the pipeline's): a
    persistent-session QoS 1 subscriber (the broker keeps its messages across a restart,
    persistence on) that appends each message's id to ``path`` in arrival order."""
    with open(path, "a", buffering=1) as out:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-consumer", clean_session=False)
        client.on_message = lambda c, u, m: out.write(json.loads(m.payload)["id"] + "\n")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("streamer/#", qos=1)
        client.reconnect_delay_set(0.1, 1.0)
        client.connect("127.0.0.1", port)
        client.loop_forever(retry_first_connection=True)


class Subscriber:
    """The consumer process and the ids it received so far."""

    def __init__(self, port: int, folder: Path) -> None:
        self.path = folder / "consumer-ids.txt"
        self.path.touch()
        self.proc = multiprocessing.get_context("spawn").Process(target=consume, args=(port, str(self.path)),
                                                                 daemon=True)
        self.proc.start()
        time.sleep(3.0)  # connected and subscribed (a spawned interpreter imports paho first)

    def ids(self) -> list[str]:
        return self.path.read_text().split()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


def mosquitto(folder: Path) -> Server:
    port = free_port()
    (folder / "mq").mkdir()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {folder / 'mq'}/\nmax_queued_messages 0\n")
    return Server([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)], port).start()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap_in_use() -> float | None:
    """MB that malloc has handed out and not had back (glibc's ``mallinfo2``: small
    blocks in use plus mmapped ones), beside RSS: RSS growing with this flat is memory
    malloc keeps after ``free`` (fragmentation), not a leak."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    info = fn()
    return (info.uordblks + info.hblkhd) / 2**20


def combined(latencies: list[Latency]) -> Latency:
    out = Latency()
    for lat in latencies:
        out.counts = out.counts + lat.counts
        out.n += lat.n
        out.max = max(out.max, lat.max)
    return out


class Schedule:
    """When each camera's outage and each broker restart is due (seconds from the start)."""

    def __init__(self, args) -> None:
        every = 60 * args.outage_every
        self.outages = sorted((every * (j + 1) - every + every * (k + 1) / (CAMERAS + 1), k)
                              for j in range(int(args.minutes / args.outage_every) + 1) for k in range(CAMERAS))
        self.outages = [(t, k) for t, k in self.outages if t < 60 * args.minutes - 20]
        step = 60 * args.broker_every
        self.restarts = [step * (j + 1) for j in range(int(args.minutes / args.broker_every))
                         if step * (j + 1) < 60 * args.minutes - 20]


def window_row(pipeline: Pipeline, marks: dict, t: float) -> dict:
    streams = list(pipeline.streams.values())
    lat = combined([st.summary.latency.since(marks["lat"][st.id]) for st in streams])
    frames = sum(st.summary.frames for st in streams)
    n_events = sum(st.summary.events for st in streams)
    row = {"t": t, "frames": frames - marks["frames"], "events": n_events - marks["events"],
           "rss": (rss_bytes() or 0) / 2**20, "p50": lat.quantile(0.5), "p99": lat.quantile(0.99),
           "heap": heap_in_use(), "objects": sys.getallocatedblocks() / 1000,
           "fds": open_fds(), "threads": threading.active_count(),
           "reconnects": sum(len(st.summary.reconnects) for st in streams) - marks["reconnects"]}
    marks.update(frames=frames, events=n_events, reconnects=row["reconnects"] + marks["reconnects"],
                 lat={st.id: st.summary.latency.copy() for st in streams})
    return row


def ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.0f}"


def table_row(r: dict, start: float) -> str:
    heap = "-" if r["heap"] is None else f"{r['heap']:.0f}"
    return (f"| {start / 60:.0f}-{r['t'] / 60:.0f} | {r['frames']} | {r['events']} "
            f"| {r['reconnects']} | {r['rss']:.0f} | {heap} "
            f"| {r['objects']:.0f} | {ms(r['p50'])} | {ms(r['p99'])} | {r['fds']} | {r['threads']} |")


def print_table(rows: list[dict], out) -> None:
    print("| window (min) | frames | events | reconnects | RSS MB | malloc in use MB | Python blocks (k) "
          "| latency p50 ms | latency p99 ms | open fds | threads |", file=out)
    print("|---|---|---|---|---|---|---|---|---|---|---|", file=out)
    start = 0.0
    for r in rows:
        print(table_row(r, start), file=out)
        start = r["t"]
    out.flush()


def check_delivery(events: Path, sub: Subscriber, timeout: float) -> list[str]:
    """Every JSONL event at the consumer once after de-duplication by id, in order per source."""
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    expected = {e["id"] for e in lines}
    deadline = time.monotonic() + timeout
    while not expected <= set(sub.ids()) and time.monotonic() < deadline:
        time.sleep(0.2)
    got = sub.ids()
    first, seen = [], set()
    for i in got:
        if i not in seen:
            seen.add(i)
            first.append(i)
    source = {e["id"]: e["source_id"] for e in lines}
    findings = [f"events: {len(lines)} in the JSONL file ({len(expected)} ids), {len(got)} messages at the "
                f"consumer, {len(got) - len(first)} duplicates, {len(expected - seen)} missing, "
                f"{len(seen - expected)} not in the file"]
    for sid in sorted(set(source.values())):
        want = [e["id"] for e in lines if e["source_id"] == sid]
        have = [i for i in first if source.get(i) == sid]
        findings.append(f"  {sid}: {len(want)} events, order at the consumer "
                        f"{'the same as the file' if have == want else 'DIFFERENT from the file'}")
    ok = len(expected) == len(lines) and expected == seen and all("DIFFERENT" not in f for f in findings)
    findings.append("delivery: " + ("every event exactly once after de-duplication, in order per source" if ok
                                    else "FAILED"))
    return findings


def drift(rows: list[dict]) -> list[str]:
    if len(rows) < 3:
        return ["drift: too few windows"]
    second, last = rows[1], rows[-1]  # the first window holds the start-up (model, first connects)
    out = [f"drift, window 2 -> last: RSS {second['rss']:.0f} -> {last['rss']:.0f} MB "
           f"({last['rss'] / second['rss']:.2f}x), open fds {second['fds']} -> {last['fds']}, "
           f"threads {second['threads']} -> {last['threads']}, Python blocks {second['objects']:.0f}k -> "
           f"{last['objects']:.0f}k"]
    if second["heap"] is not None:
        out.append(f"malloc in use, window 2 -> last: {second['heap']:.0f} -> {last['heap']:.0f} MB")
    p99 = [r["p99"] for r in rows[1:] if r["p99"] is not None]
    if p99:
        out.append(f"latency p99 over windows 2..: {ms(min(p99))}-{ms(max(p99))} ms "
                   f"(median {ms(float(np.median(p99)))} ms)")
    return out


def build_config(args, cams: list[RtspServer], broker: Server, folder: Path):
    detector: dict = {"batch": 4}  # the blob finder is handed to the pipeline
    if args.detector == "yolo":
        import torch
        from ultralytics import YOLO

        torch.manual_seed(0)
        weights = folder / "yolov8n-random.pt"
        YOLO("yolov8n.yaml").save(str(weights))
        detector.update(name="yolo", weights=str(weights), imgsz=args.imgsz, device="cpu", threads=1)
    cfg = {
        "sources": [{"uri": cam.url("cam"), "id": f"cam{k}", "timeout": 3.0} for k, cam in enumerate(cams)],
        "sampler": {"target_fps": args.target_fps},
        "detector": detector,
        "tracker": {"name": "bytetrack"},
        "analytics": {"lines": [{"name": "middle", "points": [[160, 0], [160, 240]]}], "count_interval": 60},
        "output": {"events": str(folder / "events.jsonl"), "outbox": str(folder / "outbox"),
                   "event_sinks": [{"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}", "drain_timeout": 60}]},
        "progress": False, "stats_interval": 60 * args.window,
    }
    return load_config(None, cfg)


def run(args, folder: Path, out) -> bool:
    clip = write_raw_clip(folder / "live.rgb", LIVE_OBJECTS, 5 * args.fps)
    cams = [RtspServer({"cam": clip}, fps=args.fps).start() for _ in range(CAMERAS)]
    broker = mosquitto(folder)
    sub = Subscriber(broker.port, folder)
    cfg = build_config(args, cams, broker, folder)
    pipeline = Pipeline(cfg, detector=BlobDetector() if args.detector == "blob" else None)
    runner = threading.Thread(target=pipeline.run, name="soak-pipeline", daemon=True)
    schedule = Schedule(args)
    print(f"soak: {CAMERAS} RTSP cameras at {args.fps} fps (sampled to {args.target_fps}), {args.minutes} min, "
          f"outage of {args.outage_seconds:.0f} s per camera every {args.outage_every} min, broker restart every "
          f"{args.broker_every} min, detector {args.detector}", file=out, flush=True)
    start = time.monotonic()
    runner.start()
    marks = {"frames": 0, "events": 0, "reconnects": 0, "lat": {sid: Latency() for sid in pipeline.streams}}
    rows: list[dict] = []
    down: dict[int, float] = {}
    next_window = 60 * args.window
    end = 60 * args.minutes
    try:
        while (t := time.monotonic() - start) < end and runner.is_alive():
            while schedule.outages and schedule.outages[0][0] <= t:
                _, k = schedule.outages.pop(0)
                cams[k].stop(kill=True)
                down[k] = t
            for k in [k for k, since in down.items() if t - since >= args.outage_seconds]:
                cams[k].start()
                del down[k]
            if schedule.restarts and schedule.restarts[0] <= t:
                schedule.restarts.pop(0)
                broker.stop()
                time.sleep(2.0)
                broker.start()
            if t >= next_window:
                rows.append(window_row(pipeline, marks, t))
                print("window " + table_row(rows[-1], rows[-2]["t"] if len(rows) > 1 else 0.0), file=out, flush=True)
                next_window += 60 * args.window
            time.sleep(0.2)
        if not rows or time.monotonic() - start - rows[-1]["t"] > 1.0:  # the last window, before the stop
            rows.append(window_row(pipeline, marks, time.monotonic() - start))
        stop_at = time.monotonic()
        pipeline.stop()
        runner.join(120)
        print(f"stop: run ended {time.monotonic() - stop_at:.1f} s after stop() (outbox drained within it); "
              f"then RSS {(rss_bytes() or 0) / 2**20:.0f} MB, open fds {open_fds()}, "
              f"threads {threading.active_count()}", file=out)
        summary = pipeline.summary
        findings = check_delivery(folder / "events.jsonl", sub, 60.0)
    finally:
        sub.close()
        broker.stop()
        for cam in cams:
            cam.stop(kill=True)
    print("", file=out)
    print_table(rows, out)
    if summary is not None:
        print(f"summary: {summary.frames} frames, {summary.events} events, sinks: "
              + "; ".join(str(s) for s in summary.sinks), file=out)
    for line in findings + drift(rows):
        print(line, file=out)
    out.flush()
    return findings[-1].endswith("in order per source")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=5.0, help="minutes per row of the table")
    parser.add_argument("--outage-every", type=float, default=5.0, help="minutes between a camera's outages")
    parser.add_argument("--outage-seconds", type=float, default=5.0)
    parser.add_argument("--broker-every", type=float, default=10.0, help="minutes between broker restarts")
    parser.add_argument("--fps", type=int, default=15, help="the cameras' frame rate")
    parser.add_argument("--target-fps", type=float, default=5.0, help="frames per second kept per camera")
    parser.add_argument("--detector", choices=("blob", "yolo"), default="blob")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--table", type=Path, help="also write the output to this file")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="streamer-soak-"))
        out = stack.enter_context(open(args.table, "w", buffering=1)) if args.table else sys.stdout
        ok = run(args, Path(tmp), out)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
