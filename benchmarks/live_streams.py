"""Camera streams: reconnect time, latency under a slow detector, several streams at once.

Three measurements, each with its own peer in the same run:

- ``reconnect``: a real RTSP server (streamer/testing/rtsp_server.py, GStreamer) is killed for 3 s,
  five times, under a running pipeline; figure: seconds from the server listening again
  to ``source_up``, with the default backoff and with a short one.
- ``latency``: a 30 fps RTSP camera and a detector that takes 50 ms a frame (20 frames/s
  at most) for 60 s; capture-to-output latency p50/p99, drop rate and memory, with the
  live default (``drop_oldest``) against a lossless queue (``block``) for 30 s.
- ``streams``: 1, 2 and 4 parallel 720p H.264 streams (bikes.mp4 scaled to 1280x720)
  through one pipeline, YOLOv8n at 640 batched across the streams, every frame; and the
  same with a detector that costs nothing (what decoding and tracking allow).

    python benchmarks/live_streams.py [--part reconnect|latency|streams] [--seconds 60]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from streamer.config import load_config
from streamer.pipeline import Pipeline
from streamer.synthetic import encode_video
from streamer.testing import LIVE_OBJECTS, BlobDetector, RtspServer, write_raw_clip

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def rtsp_server(folder: Path, mounts=("cam",)) -> RtspServer:
    clip = write_raw_clip(folder / "live.rgb", LIVE_OBJECTS, 150)
    return RtspServer({m: clip for m in mounts}).start()


def reconnect(args, folder: Path) -> None:
    for label, backoff in (("default backoff (1 s doubling to 30 s)", {}),
                           ("short backoff (0.2 s doubling to 1 s)", {"initial": 0.2, "max": 1.0})):
        server = rtsp_server(folder)
        cfg = load_config(None, {"source": {"uri": f"rtsp://127.0.0.1:{server.port}/cam", "id": "cam",
                                            "reconnect": backoff}, "progress": False})
        pipeline = Pipeline(cfg, detector=BlobDetector())
        st = pipeline.streams["cam"]
        thread = threading.Thread(target=pipeline.run, daemon=True)
        thread.start()
        times = []
        for _ in range(args.outages):
            frames = st.summary.frames
            while st.summary.frames < frames + 30:
                time.sleep(0.05)
            server.stop(kill=True)
            time.sleep(3.0)
            server.start()
            while len(st.summary.reconnects) < len(times) + 1:
                time.sleep(0.01)
            times.append(time.time() - server.ready_at)
        pipeline.stop()
        thread.join(30)
        server.stop(kill=True)
        print(f"reconnect, {label}: after the server returns {np.mean(times):.2f} s mean, "
              f"{min(times):.2f}-{max(times):.2f} s over {len(times)} outages of 3 s")


def latency(args, folder: Path) -> None:
    for policy, seconds in (("drop_oldest", args.seconds), ("block", args.seconds / 2)):
        server = rtsp_server(folder)
        cfg = load_config(None, {
            "source": {"uri": f"rtsp://127.0.0.1:{server.port}/cam", "id": "cam"},
            "buffer": {"policy": policy}, "detector": {"batch": 4},
            "duration": seconds, "stats_interval": 5.0, "progress": False,
        })
        pipeline = Pipeline(cfg, detector=BlobDetector(seconds_per_frame=0.05))
        summary = pipeline.run()
        server.stop(kill=True)
        s = summary.sources["cam"]
        windows = list(pipeline.windows["cam"])
        p50s = " ".join(f"{w['p50']:.2f}" for w in windows if w["p50"] is not None)
        rss = [w["rss"] / 2**20 for w in windows[1:]]
        print(f"latency, {policy}, {seconds:.0f} s, 30 fps camera, detector 50 ms/frame: "
              f"{s.frames} frames processed ({s.frames / summary.seconds:.1f}/s), "
              f"dropped {s.dropped} ({100 * s.drop_rate:.1f}%), "
              f"latency p50 {1000 * s.latency.quantile(0.5):.0f} ms p99 {1000 * s.latency.quantile(0.99):.0f} ms "
              f"max {1000 * s.latency.max:.0f} ms; slowest batch {1000 * pipeline.batch_seconds_max:.0f} ms; "
              f"RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB")
        print(f"  p50 per 5 s window, s: {p50s}")


def streams(args, folder: Path) -> None:
    import av
    import cv2

    clip = folder / "bikes-720p.mp4"
    with av.open(str(DATA / "video" / "bikes.mp4")) as src:
        images = (cv2.resize(f.to_ndarray(format="rgb24"), (1280, 720), interpolation=cv2.INTER_LINEAR)
                  for f in src.decode(video=0))
        encode_video(clip, images, (720, 1280), 25, crf=23)
    empty = folder / "empty-det.txt"
    empty.write_text("")
    weights = args.weights
    if weights is None:
        import torch
        from ultralytics import YOLO

        torch.manual_seed(0)
        weights = str(folder / "yolov8n-random.pt")
        YOLO("yolov8n.yaml").save(weights)
    detectors = {
        f"YOLOv8n {args.imgsz}, CPU": {"name": "yolo", "weights": weights, "imgsz": args.imgsz, "device": args.device},
        "no-cost detector": {"name": "mot", "detections": str(empty)},
    }
    for label, detector in detectors.items():
        for n in (1, 2, 4):
            cfg = load_config(None, {
                "sources": [{"uri": str(clip), "id": f"s{i}"} for i in range(n)],
                "detector": {**detector, "batch": 8}, "tracker": {"name": "bytetrack"}, "progress": False,
            })
            summary = Pipeline(cfg).run()
            per = summary.fps / n
            print(f"streams, {label}: {n} x 720p: {summary.frames} frames in {summary.seconds:.1f} s, "
                  f"{summary.fps:.1f} frames/s in all, {per:.1f} per stream")


PARTS = {"reconnect": reconnect, "latency": latency, "streams": streams}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=PARTS, action="append", help="default: all")
    parser.add_argument("--seconds", type=float, default=60.0, help="latency run length (drop_oldest)")
    parser.add_argument("--outages", type=int, default=5)
    parser.add_argument("--weights", help="a .pt file (default: random YOLOv8n)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.part or list(PARTS):
            PARTS[part](args, Path(tmp))


if __name__ == "__main__":
    main()
