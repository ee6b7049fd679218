"""Event clips: what they cost, and how soon a clip is ready after its trigger.

Two measurements, each with its peer in the same run:

- ``cost``: 4 streams of a 1080p H.264 clip (30 fps, a keyframe every second, camera-like
  bitrate: a textured scene with sensor noise, boxes walking across a line) through one
  pipeline, with the public-detection replay as detector (``--detector mot`` on the
  scene's exact boxes, so the figure is of clips, not of a model) and SORT; clips on
  (``pre`` 5 s, ``post`` 5 s, a clip per crossing) against clips off, alternated
  ``--rounds`` times after a warm-up run. Figures: frames/s, CPU seconds per 1,000 frames (user + system,
  every thread), and the clips written.
- ``latency``: a real 30 fps RTSP camera (streamer/testing/rtsp_server.py) with two
  boxes crossing a line every 5 s loop, ``pre`` 5 s and ``post`` 3 s, for ``--seconds``;
  the events file is followed every 5 ms, and each clip's time from the trigger that
  set its end to its ``clip_ready`` is compared with ``post``.

    python benchmarks/clips.py [--part cost|latency] [--rounds 2] [--seconds 40]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from sinks.clips import ClipSink
from streamer.config import TriggerConfig, load_config
from streamer.packets import PacketRing
from streamer.types import Event
from streamer.pipeline import Pipeline
from streamer.synthetic import MovingBox, encode_video, render, write_mot
from streamer.testing import LIVE_OBJECTS, BlobDetector, RtspServer, write_raw_clip

SIZE = (1080, 1920)
FPS = 30
SECONDS = 10
LINE = {"name": "door", "points": [[960, 0], [960, 1080]]}
# Boxes crossing the middle at different times: a clip per crossing or two.
WALKERS = [MovingBox(-200, 150 + 220 * k, 120, 200, 6.0 + 3 * k, 0.0, (230, 25, 75)) for k in range(4)]


def scene(folder: Path) -> tuple[Path, Path, float]:
    """The 1080p clip and its exact detections (made once per folder); returns its bitrate, Mbit/s."""
    video, det = folder / "scene-1080p.mp4", folder / "scene-det.txt"
    if not video.exists():
        rng = np.random.default_rng(0)
        truth = []

        def images():
            for k in range(FPS * SECONDS):
                image, boxes = render(WALKERS, k, *SIZE)
                truth.append(boxes)
                noise = rng.integers(-8, 9, size=image.shape, dtype=np.int16)  # sensor noise: ~5 Mbit/s
                yield np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)

        encode_video(video, images(), SIZE, FPS, crf=20, gop=FPS)
        write_mot(det, truth)
    with av.open(str(video)) as c:
        bits = 8 * sum(p.size for p in c.demux(video=0))
    return video, det, bits / SECONDS / 1e6


class WriterCpu(logging.Handler):
    """The clip writers' own CPU time, from the line each logs when it ends."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if "writer CPU" in record.msg:
            self.seconds += record.args[-1]


def usage() -> tuple[float, float, int]:
    """This process's user and system CPU seconds and minor page faults so far."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime, u.ru_stime, u.ru_minflt


def cost(args, folder: Path) -> None:
    video, det, mbps = scene(folder)
    writers = WriterCpu()
    clip_log = logging.getLogger("sinks.clips")
    clip_log.setLevel(logging.DEBUG)
    clip_log.addHandler(writers)
    shares = []
    results: dict[str, list[tuple[float, float, int]]] = {"off": [], "on": [], "warm-up": []}
    kernel: dict[str, list[tuple[float, float]]] = {"off": [], "on": [], "warm-up": []}
    for r in range(args.rounds + 1):
        for mode in ("warm-up",) if r == 0 else ("off", "on") if r % 2 else ("on", "off"):
            out = folder / f"run-{mode}-{r}"
            output = {"events": str(out / "events.jsonl")}
            if mode == "on":
                output["clips"] = {"folder": str(out / "clips")}
            cfg = load_config(None, {
                "sources": [{"uri": str(video), "id": f"cam{i}"} for i in range(4)],
                "detector": {"name": "mot", "detections": str(det)}, "tracker": {"name": "sort"},
                "analytics": {"lines": [LINE]}, "output": output, "progress": False,
            })
            before, writers.seconds = usage(), 0.0
            summary = Pipeline(cfg).run()
            after = usage()
            cpu = after[0] + after[1] - before[0] - before[1]
            n = summary.frames
            kernel[mode].append((1000 * (after[1] - before[1]) / n, (after[2] - before[2]) / n))
            clips = len(list((out / "clips").glob("*.mp4"))) if mode == "on" else 0
            if mode == "on":
                shares.append(writers.seconds / cpu)
            results[mode].append((summary.fps, 1000 * cpu / summary.frames, clips))
            print(f"  round {r}, clips {mode}: {summary.frames} frames, {summary.fps:.1f} frames/s, "
                  f"{1000 * cpu / summary.frames:.2f} CPU s per 1000 frames, {clips} clips")
    med = {m: (statistics.median(f for f, _, _ in results[m]), statistics.median(c for _, c, _ in results[m]))
           for m in ("off", "on")}
    best = {m: (max(f for f, _, _ in results[m]), min(c for _, c, _ in results[m])) for m in ("off", "on")}
    fps_ratio = statistics.median(a[0] / b[0] for a, b in zip(results["on"], results["off"], strict=True))
    cpu_ratio = statistics.median(a[1] / b[1] for a, b in zip(results["on"], results["off"], strict=True))
    print(f"\ncost, end to end: 4 x 1080p30 H.264 ({mbps:.1f} Mbit/s each, keyframe every 1 s), replayed "
          f"detections, SORT, as fast as it decodes; median of {args.rounds} alternated rounds")
    print("| clips | frames/s (4 streams) | CPU s per 1000 frames | clips written per run |")
    print("|---|---|---|---|")
    print(f"| off | {med['off'][0]:.1f} | {med['off'][1]:.2f} | 0 |")
    print(f"| on (pre 5 s, post 5 s) | {med['on'][0]:.1f} | {med['on'][1]:.2f} | {results['on'][0][2]} |")
    print(f"| on / off (median of the rounds' ratios) | {fps_ratio:.3f} | {cpu_ratio:.3f} | |")
    print(f"| on / off (best round of each) | {best['on'][0] / best['off'][0]:.3f} | "
          f"{best['on'][1] / best['off'][1]:.3f} | |")
    print(f"| the clip writers' own CPU, share of the run's | | {statistics.median(shares):.2%} | |")
    print("\n| clips | of the CPU: system s per 1000 frames | minor page faults per frame |")
    print("|---|---|---|")
    for mode in ("off", "on"):
        print(f"| {mode} | {statistics.median(k[0] for k in kernel[mode]):.2f} | "
              f"{statistics.median(k[1] for k in kernel[mode]):.0f} |")
    parts(video, med["off"][1] / 1000)


def parts(video: Path, cpu_per_frame: float) -> None:
    """The clip machinery alone, against the decoding it rides on: the ring's cost per
    packet (demux alone vs demux into the ring) and remuxing a 10 s clip (vs decoding it)."""
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        t = time.process_time()
        packets = [p for p in c.demux(stream) if p.size]
        demux = time.process_time() - t
    adds = []
    for _ in range(3):  # the ring's cost, measured apart from the demuxing: best of 3
        ring = PacketRing(1e9, max_bytes=2**31)
        with av.open(str(video)) as c:
            ring.connect(c.streams.video[0])
            ring.anchor(Fraction(0), Fraction(0))
            t = time.process_time()
            for p in packets:
                ring.add(p)
            adds.append(time.process_time() - t)
            ring.gap()
    add = min(adds)
    # One clip of the whole 10 s, through the sink's public side: the main thread waits
    # in begin_close, so the process's CPU time is the writer's.
    with tempfile.TemporaryDirectory() as tmp:
        sink = ClipSink(ring, "bench", tmp, 0.0, SECONDS, [TriggerConfig(types=["line_crossed"])])
        sink.open()
        ring.processed(Fraction(SECONDS))
        t = time.process_time()
        sink.annotate(None, None, [Event("t", "line_crossed", "bench", 0, 0.0, None)])
        sink.begin_close()
        remux = time.process_time() - t
        (ready,) = sink.pending_events()
        assert ready.data["clip"]["frames"] == len(packets), ready
    with av.open(str(video)) as c:
        c.streams.video[0].thread_type = "AUTO"
        t = time.process_time()
        frames = sum(1 for _ in c.decode(video=0))
        decode = time.process_time() - t
    n = len(packets)
    print(f"\ncost, the parts: one 1080p stream, {n} packets ({SECONDS} s), CPU time")
    print("| step | per packet (frame) | share of the pipeline's CPU per frame with clips off |")
    print("|---|---|---|")
    print(f"| ring: hold a packet (decode thread) | {1e6 * add / n:.1f} us | {add / n / cpu_per_frame:.3%} |")
    print(f"| remux into a clip (writer thread) | {1e6 * remux / n:.1f} us | {remux / n / cpu_per_frame:.3%} |")
    print(f"| peers: demux / decode the same packets | {1e6 * demux / n:.1f} us / {1e6 * decode / frames:.0f} us | "
          f"{demux / n / cpu_per_frame:.3%} / {decode / frames / cpu_per_frame:.1%} |")


def follow(path: Path, seen: dict[str, tuple[float, dict]], stop: threading.Event) -> None:
    """Each event of the JSONL file with the wall time it appeared (polled every 5 ms)."""
    offset = 0
    while not stop.is_set():
        if path.exists():
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next look
            offset += len(complete)
            for line in complete.splitlines():
                event = json.loads(line)
                seen.setdefault(event["id"], (time.time(), event))
        time.sleep(0.005)


def latency(args, folder: Path) -> None:
    clip = write_raw_clip(folder / "live.rgb", LIVE_OBJECTS, 150)
    server = RtspServer({"cam": clip}, fps=30).start()
    post = 3.0
    events = folder / "live-events.jsonl"
    cfg = load_config(None, {
        "source": {"uri": server.url("cam"), "id": "cam"}, "progress": False, "stats_interval": 0,
        "analytics": {"lines": [{"name": "door", "points": [[160, 0], [160, 240]]}]},
        "output": {"events": str(events), "clips": {"folder": str(folder / "live-clips"), "pre": 5.0, "post": post}},
        "duration": args.seconds,
    })
    seen: dict[str, tuple[float, dict]] = {}
    stop = threading.Event()
    reader = threading.Thread(target=follow, args=(events, seen, stop), daemon=True)
    reader.start()
    Pipeline(cfg, detector=BlobDetector()).run()
    time.sleep(0.2)
    stop.set()
    reader.join()
    server.stop(kill=True)
    delays, counts = [], []
    for at, event in seen.values():
        if event["type"] != "clip_ready" or not event["clip"]["complete"]:
            continue
        last = max((seen[t] for t in event["triggers"]), key=lambda pair: pair[1]["pts"])
        delays.append(at - last[0])
        counts.append(len(event["triggers"]))
    print(f"\nlatency: 30 fps RTSP camera (320x240), pre 5 s, post {post:g} s, {args.seconds:.0f} s, "
          f"{len(delays)} complete clips ({sum(counts)} triggers)")
    print("| from the trigger that set a clip's end to its clip_ready | mean | max |")
    print("|---|---|---|")
    print(f"| seconds | {statistics.mean(delays):.2f} | {max(delays):.2f} |")
    print(f"| beyond post | {statistics.mean(delays) - post:.2f} | {max(delays) - post:.2f} |")


PARTS = {"cost": cost, "latency": latency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=PARTS, action="append", help="default: all")
    parser.add_argument("--rounds", type=int, default=3, help="clips off/on pairs, alternated (after a warm-up run)")
    parser.add_argument("--seconds", type=float, default=40.0, help="latency run length")
    parser.add_argument("--folder", help="keep the 1080p scene here between runs (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for part in args.part or list(PARTS):
            PARTS[part](args, folder)


if __name__ == "__main__":
    main()
