"""What watching costs: the pipeline's frames/s with 0, 1 and 4 live viewers of one
stream, in one run, and the latency the view adds.

``streamer serve`` runs as its own process with one ``lavfi:testsrc2`` camera at
1280x720, 25 frames/s, and a real detector (YOLOv8n from its yaml: random weights, the
same work per frame as trained ones) at ``--imgsz``, so the pipeline is busy the way a
real one is. The viewers are real headless Chromium browsers on this same machine (one
browser each, so one can be frozen), watching over WebRTC at the view's defaults
(960 px, 15 frames/s). Phases of ``--seconds`` each, alternated ``--repeat`` times:

- ``0``, ``1``, ``4`` viewers: the pipeline's processed frames/s (the service's own
  counter) and the service's CPU use; the cost of 1 and 4 viewers against 0;
- ``3 (1 frozen)``: three viewers, one browser stopped with SIGSTOP (a tab that no longer
  reads): the pipeline's frames/s and the other two viewers' frames shown per second,
  before and after the freeze.

The view's latency, capture to the moment a frame is handed to the encoder, is the
service's ``view_latency`` p50/p99 over the whole run.

``glass``: glass to glass in Chromium. A ``lavfi:`` camera burns its frame number into
each frame as 12 white-or-black squares; the page's ``requestVideoFrameCallback`` reads
them back from every frame it presents, with the time it is shown (the same clock as the
service's: one machine). A frame's capture time is its pts plus the offset of the
stream's events (``wall_time - pts``, the pacing clock of a live source). Figure: shown
minus captured, p50/p99, with no detector load (MOT replay detector).

    python benchmarks/live_view.py [--part cost|glass] [--seconds 20] [--repeat 2] [--imgsz 320]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

from streamer.testing import free_port
from streamer.testing.browser import browser_available, chromium, playback, wait_playing

CAMERA = "lavfi:testsrc2=size=1280x720:rate=25"


BITS = 12
COUNTER = "color=c=black:s=1280x720:r=25," + ",".join(
    f"drawbox=x={40 + k * 100}:y=600:w=60:h=60:color=white:t=fill:enable='gte(mod(n,{2 ** (k + 1)}),{2 ** k})'"
    for k in range(BITS))


class Served:
    def __init__(self, folder: Path, imgsz: int | None, camera: str = CAMERA) -> None:
        config = folder / "serve.yaml"
        detector: dict = {"name": "yolo", "weights": "yolov8n.yaml", "imgsz": imgsz}
        if imgsz is None:  # MOT replay: one box sweeping the top of the frame (events for the clock offset)
            with open(folder / "dets.txt", "w") as f:
                for i in range(1, 20_000):
                    f.write(f"{i},-1,{10 + (i * 4) % 1100},100,60,90,0.9,-1,-1,-1\n")
            detector = {"name": "mot", "detections": str(folder / "dets.txt")}
        config.write_text(json.dumps({
            "detector": detector,
            "sources": [{"id": "cam", "uri": camera}],
            "analytics": {"lines": [{"name": "door", "points": [[640, 0], [640, 500]]}]},
            "output": {"events": str(folder / "events.jsonl")},
            "stats_interval": 0,
        }))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(folder / "serve.err", "w") as err:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "streamer.cli", "serve", "--config", str(config),
                                          "--http", f"127.0.0.1:{self.port}"], cwd=folder,
                                         stdout=subprocess.DEVNULL, stderr=err)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 120
        while self.stream().get("state") != "up":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"serve did not come up: {(folder / 'serve.err').read_text()[-2000:]}")
            time.sleep(0.5)

    def stream(self) -> dict:
        try:
            return requests.get(f"{self.url}/api/streams/cam", timeout=5).json()
        except (requests.ConnectionError, ValueError):
            return {}

    def sample(self) -> tuple[float, int, float]:
        """(wall time, frames processed, CPU seconds of the service)."""
        cpu = self.ps.cpu_times()
        return time.monotonic(), self.stream()["frames"], cpu.user + cpu.system

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def _rate(a: tuple, b: tuple) -> tuple[float, float]:
    """Frames/s and CPU (cores) between two samples."""
    return (b[1] - a[1]) / (b[0] - a[0]), (b[2] - a[2]) / (b[0] - a[0])


def _browsers(served: Served, n: int) -> list:
    drivers = []
    for _ in range(n):
        driver = chromium(1100, 800)
        driver.get(served.url + "/")
        drivers.append(driver)
    for driver in drivers:
        wait_playing(driver, "cam", 60)
    return drivers


def _quit(drivers: list) -> None:
    for driver in drivers:
        driver.quit()


def _shown(driver) -> tuple[float, int]:
    info = playback(driver, "cam")
    return info["now"], info["frames"]


def _viewer_fps(before: tuple, after: tuple) -> float:
    return (after[1] - before[1]) / (after[0] - before[0])


def _phase(served: Served, viewers: int, seconds: float) -> tuple[float, float]:
    drivers = _browsers(served, viewers)
    try:
        time.sleep(2.0)  # connected and settled
        a = served.sample()
        time.sleep(seconds)
        return _rate(a, served.sample())
    finally:
        _quit(drivers)


def _browser_processes(driver) -> list[psutil.Process]:
    root = psutil.Process(driver.service.process.pid)
    return [p for p in root.children(recursive=True) if "chrom" in p.name()]


def _frozen_phase(served: Served, seconds: float) -> dict:
    drivers = _browsers(served, 3)
    try:
        time.sleep(2.0)
        a, shown_a = served.sample(), [_shown(d) for d in drivers[:2]]
        time.sleep(seconds / 2)
        b, shown_b = served.sample(), [_shown(d) for d in drivers[:2]]
        frozen = _browser_processes(drivers[2])
        for p in frozen:
            p.send_signal(signal.SIGSTOP)
        time.sleep(seconds / 2)
        c, shown_c = served.sample(), [_shown(d) for d in drivers[:2]]
        for p in frozen:
            p.send_signal(signal.SIGCONT)
        return {
            "pipeline_before": _rate(a, b)[0], "pipeline_frozen": _rate(b, c)[0],
            "viewers_before": [_viewer_fps(x, y) for x, y in zip(shown_a, shown_b, strict=True)],
            "viewers_frozen": [_viewer_fps(x, y) for x, y in zip(shown_b, shown_c, strict=True)],
        }
    finally:
        _quit(drivers)


_READ_COUNTER = """
const v = document.querySelector('.tile[data-stream="cam"] video');
window.shown = [];
const canvas = document.createElement("canvas");
canvas.width = v.videoWidth; canvas.height = v.videoHeight;
const ctx = canvas.getContext("2d", {willReadFrequently: true});
const s = canvas.width / 1280;
const read = (now, meta) => {
  ctx.drawImage(v, 0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let k = 0; k < BITS; k++) {
    const px = ctx.getImageData(Math.round((70 + k * 100) * s), Math.round(630 * s), 1, 1).data;
    if (px[0] > 128) n |= 1 << k;
  }
  window.shown.push([n, (performance.timeOrigin + meta.expectedDisplayTime) / 1000]);
  v.requestVideoFrameCallback(read);
};
v.requestVideoFrameCallback(read);
""".replace("BITS", str(BITS))


def glass(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        served = Served(Path(tmp), None, COUNTER)
        try:
            driver = chromium(1100, 800)
            try:
                driver.get(served.url + "/")
                wait_playing(driver, "cam", 60)
                time.sleep(1.0)
                driver.execute_script(_READ_COUNTER)
                time.sleep(seconds)
                shown = driver.execute_script("return window.shown")
            finally:
                driver.quit()
            view = served.stream()
        finally:
            served.stop()
        events = [json.loads(line) for line in (Path(tmp) / "events.jsonl").read_text().splitlines()]
    offsets = [e["wall_time"] - e["pts"] for e in events if e.get("wall_time") is not None]
    offset = statistics.median(offsets)
    wrap = 2 ** BITS
    delays = []
    for n, at in shown:
        pts = n / 25
        pts += round((at - offset - pts) / (wrap / 25) - 0.5) * (wrap / 25)  # the counter wraps every 164 s
        delays.append(at - (offset + pts))
    delays.sort()
    q = lambda f: delays[min(len(delays) - 1, int(f * len(delays)))]  # noqa: E731
    print(f"# glass to glass in Chromium: {len(delays)} frames shown over {seconds:.0f} s, "
          f"capture clock offset from {len(offsets)} events (spread {max(offsets) - min(offsets):.4f} s)")
    print(f"capture to shown: p50 {q(0.5) * 1000:.0f} ms, p99 {q(0.99) * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms; "
          f"of which capture to the view's encoder p50 {view['view_latency_p50'] * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--part", choices=("cost", "glass", "all"), default="all")
    args = parser.parse_args()
    missing = browser_available()
    if missing:
        raise SystemExit(missing)
    if args.part in ("glass", "all"):
        glass(args.seconds)
    if args.part == "glass":
        return
    with tempfile.TemporaryDirectory() as tmp:
        served = Served(Path(tmp), args.imgsz)
        try:
            results: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 4: []}
            frozen = []
            for _ in range(args.repeat):
                for n in (0, 1, 4):
                    results[n].append(_phase(served, n, args.seconds))
                frozen.append(_frozen_phase(served, args.seconds))
            view = served.stream()
        finally:
            served.stop()
    print(f"# live view cost: 1 camera 1280x720 at 25 fps, YOLOv8n imgsz {args.imgsz} on {os.cpu_count()} cores, "
          f"view 960 px / 15 fps, {args.repeat} x {args.seconds:.0f} s per phase")
    print("| viewers | pipeline frames/s | service CPU (cores) | vs 0 viewers |")
    print("|---|---|---|---|")
    base = statistics.median(r[0] for r in results[0])
    for n, runs in results.items():
        fps, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"| {n} | {fps:.2f} ({', '.join(f'{r[0]:.2f}' for r in runs)}) | {cpu:.2f} | {fps / base:.3f} |")
    print("\n# three viewers, then one browser frozen (SIGSTOP)")
    print("| run | pipeline frames/s before / frozen | other viewers' frames/s before | frozen |")
    print("|---|---|---|---|")
    for i, f in enumerate(frozen):
        print(f"| {i + 1} | {f['pipeline_before']:.2f} / {f['pipeline_frozen']:.2f} | "
              f"{', '.join(f'{v:.1f}' for v in f['viewers_before'])} | "
              f"{', '.join(f'{v:.1f}' for v in f['viewers_frozen'])} |")
    p50, p99 = view.get("view_latency_p50"), view.get("view_latency_p99")
    print(f"\nview latency, capture to encoder: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
          f"pipeline latency (capture to output) p50 {view['latency_p50'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
