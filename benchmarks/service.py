"""What the service costs, and what changing its streams does to the others.

Two measurements, each with its peer in the same run:

- ``cost``: the same 4 recorded clips (synthetic 640x360 H.264, every frame, MOT replay
  detector so the pipeline itself is what is measured, events and MOT files written)
  through the runtime of ``streamer run`` and through the service of ``streamer serve``
  (its HTTP server, with ``/metrics`` and ``/api/streams`` fetched every second over real
  HTTP), alternated, in this process; figure: frames/s from start until every stream's
  end has been processed, and the ratio serve / run.
- ``churn``: 3 paced ``lavfi:`` cameras at 25 fps, each writing its MP4, in a served
  pipeline (in this process, over real HTTP); a fourth stream is PUT and DELETEd 20
  times. Figures: the longest gap between two processed frames of the other streams
  while that goes on, against the same length of time with no change; the time from PUT
  to the new stream's first event and from DELETE to its ``source_removed`` (the DELETE
  answers once the stream has finished).

    python benchmarks/service.py [--part cost|churn] [--repeat 2] [--changes 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests

from streamer.config import load_config
from streamer.pipeline import Pipeline
from streamer.service import HttpServer, Service, create_app
from streamer.synthetic import demo_objects, write_mot, write_video

LAVFI = "lavfi:testsrc2=size=640x360:rate=25"


def _dets(path: Path, frames: int) -> Path:
    with open(path, "w") as f:
        for i in range(1, frames + 1):
            f.write(f"{i},-1,{10 + (i * 2) % 560},100,40,60,0.9,-1,-1,-1\n")
    return path


def _clips(folder: Path, frames: int) -> tuple[list[Path], Path]:
    truth = write_video(folder / "clip0.mp4", demo_objects(), frames, (360, 640), 25)
    det = folder / "clip-det.txt"
    write_mot(det, truth)
    paths = [folder / "clip0.mp4"]
    for i in range(1, 4):  # four sources, the same footage
        paths.append(folder / f"clip{i}.mp4")
        paths[-1].write_bytes(paths[0].read_bytes())
    return paths, det


def _config(folder: Path, clips: list[Path], det: Path):
    return load_config(None, {
        "detector": {"name": "mot", "detections": str(det)},
        "output": {"events": str(folder / "events-{source_id}.jsonl"), "mot": str(folder / "{source_id}.txt")},
        "sources": [{"id": f"s{i}", "uri": str(p)} for i, p in enumerate(clips)],
        "progress": False, "stats_interval": 0,
    })


def _until_all_ended(streams: dict, start: float) -> float:
    """Seconds from ``start`` until every stream's end has been processed (polled every 2 ms)."""
    while not all(st.ended.is_set() for st in list(streams.values())):
        time.sleep(0.002)
    return time.perf_counter() - start


def _run_once(config) -> tuple[float, int]:
    pipeline = Pipeline(config)
    streams = dict(pipeline.streams)
    start = time.perf_counter()
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    seconds = _until_all_ended(streams, start)
    thread.join(60)
    return seconds, sum(st.summary.frames for st in streams.values())


def _serve_once(config) -> tuple[float, int]:
    service = Service(config)
    server = HttpServer("127.0.0.1", 0)
    server.start(create_app(service))
    streams = dict(service.pipeline.streams)
    done = threading.Event()

    def scrape() -> None:  # what Prometheus does, at 1 s instead of the usual 15 s
        while not done.is_set():
            requests.get(server.url + "/metrics", timeout=5).raise_for_status()
            requests.get(server.url + "/api/streams", timeout=5).raise_for_status()
            done.wait(1.0)

    start = time.perf_counter()
    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    seconds = _until_all_ended(streams, start)
    done.set()
    service.stop()
    thread.join(60)
    server.stop()
    return seconds, sum(st.summary.frames for st in streams.values())


def cost(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips, det = _clips(folder, args.frames)
        config = _config(folder, clips, det)
        rates: dict[str, list[float]] = {"run": [], "serve": []}
        print(f"4 clips x {args.frames} frames (640x360), MOT replay detector, events + MOT files; "
              "from start to the last frame's end")
        for i in range(args.repeat):
            for name, once in (("run", _run_once), ("serve", _serve_once)):
                seconds, frames = once(config)
                assert frames == 4 * args.frames, (name, frames)
                rates[name].append(frames / seconds)
                print(f"  {i + 1}. {name:6} {frames} frames in {seconds:6.2f}s: {frames / seconds:7.1f} frames/s")
        run, serve = statistics.mean(rates["run"]), statistics.mean(rates["serve"])
        print(f"  mean: run {run:.1f}, serve (metrics scraped every second) {serve:.1f} frames/s: "
              f"serve / run = {serve / run:.3f}")


class _Gaps:
    """The longest wait between two processed frames of each stream, sampled every 2 ms."""

    def __init__(self, service: Service, ids: list[str]) -> None:
        self.service, self.ids = service, ids
        self.longest = dict.fromkeys(ids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        streams = {sid: self.service.pipeline.streams[sid] for sid in self.ids}
        last = {sid: (st.summary.frames, time.perf_counter()) for sid, st in streams.items()}
        while not self._stop.is_set():
            now = time.perf_counter()
            for sid, st in streams.items():
                frames = st.summary.frames
                if frames != last[sid][0]:
                    self.longest[sid] = max(self.longest[sid], now - last[sid][1])
                    last[sid] = (frames, now)
            time.sleep(0.002)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.longest


def churn(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = load_config(None, {
            "detector": {"name": "mot", "detections": str(_dets(folder / "dets.txt", 100_000))},
            "output": {"video": str(folder / "{source_id}.mp4"), "events": str(folder / "events.jsonl")},
            "sources": [{"id": f"cam{i}", "uri": LAVFI} for i in range(3)], "progress": False,
            "stats_interval": 0,
        })
        service = Service(config)
        server = HttpServer("127.0.0.1", 0)
        server.start(create_app(service))
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        ids = ["cam0", "cam1", "cam2"]
        while not all(st.state == "up" for st in service.pipeline.streams.values()):
            time.sleep(0.05)
        time.sleep(3.0)  # past the cameras' start
        quiet = _Gaps(service, ids)
        start = time.perf_counter()
        to_first, to_removed = [], []
        for _ in range(args.changes):
            t0 = time.perf_counter()
            requests.put(f"{server.url}/api/streams/extra", json={"uri": LAVFI}, timeout=30).raise_for_status()
            while service.pipeline.streams.get("extra") is None or not service.pipeline.streams["extra"].summary.events:
                time.sleep(0.001)
            to_first.append(time.perf_counter() - t0)
            time.sleep(0.3)
            t0 = time.perf_counter()
            requests.delete(f"{server.url}/api/streams/extra", timeout=30).raise_for_status()
            to_removed.append(time.perf_counter() - t0)
        churn_seconds = time.perf_counter() - start
        busy = quiet.stop()
        quiet = _Gaps(service, ids)
        time.sleep(churn_seconds)
        calm = quiet.stop()
        batch = service.pipeline.times.longest.get("detect", 0.0)
        service.stop()
        thread.join(30)
        server.stop()
        removed = sum(1 for line in (folder / "events.jsonl").read_text().splitlines()
                      if '"source_removed"' in line)
        assert removed == args.changes, removed
        goal = 2 * 0.040 + batch
        print(f"3 paced 640x360 cameras at 25 fps with MP4 output; a 4th stream PUT then DELETEd {args.changes} "
              f"times ({churn_seconds:.1f}s)")
        print("  longest output gap of the others while changing: "
              + ", ".join(f"{sid} {1000 * busy[sid]:.0f} ms" for sid in ids))
        print(f"  same, {churn_seconds:.1f}s with no change:          "
              + ", ".join(f"{sid} {1000 * calm[sid]:.0f} ms" for sid in ids))
        print(f"  goal: under 2 frame periods + one batch = {1000 * goal:.0f} ms (slowest batch {1000 * batch:.0f} ms)")
        print(f"  PUT to first event: median {1000 * statistics.median(to_first):.0f} ms, "
              f"max {1000 * max(to_first):.0f} ms")
        print(f"  DELETE to source_removed (answered when written): median "
              f"{1000 * statistics.median(to_removed):.0f} ms, max {1000 * max(to_removed):.0f} ms; "
              f"{removed} source_removed events")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", action="append", choices=["cost", "churn"])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--frames", type=int, default=1500)
    p.add_argument("--changes", type=int, default=20)
    args = p.parse_args()
    for part in args.part or ["cost", "churn"]:
        {"cost": cost, "churn": churn}[part](args)


if __name__ == "__main__":
    main()
