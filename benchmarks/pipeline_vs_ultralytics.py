"""End-to-end speed on a video file: streamer's pipeline beside ultralytics'
``model.track(source, stream=True)`` with the same weights, image size and tracker
(ByteTrack), and the bare detector forward pass (the limit), in the same run.

Each contender runs in its own process (ultralytics changes torch's thread count when it
selects the CPU). Without weights at hand (no internet here) a YOLOv8n is built from its
yaml with random weights and saved once, so both load the very same .pt.

    python benchmarks/pipeline_vs_ultralytics.py [--video V] [--weights W] [--imgsz 640]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def ours(args: argparse.Namespace) -> dict:
    from streamer.config import load_config
    from streamer.pipeline import Pipeline

    overrides = {
        "source": {"uri": args.video},
        # torch, as the bare forward pass below (benchmarks/detector_backends.py compares the backends)
        "detector": {"weights": args.weights, "imgsz": args.imgsz, "device": args.device, "batch": args.batch,
                     "backend": "torch"},
        "tracker": {"name": "bytetrack"},
        "progress": False,
    }
    if args.outputs:
        out = Path(tempfile.mkdtemp())
        overrides["output"] = {"video": str(out / "a.mp4"), "events": str(out / "e.jsonl")}
    pipeline = Pipeline(load_config(None, overrides))
    summary = pipeline.run()
    return {"frames": summary.frames, "fps": summary.fps, "stage_ms": summary.stage_ms, "tracks": summary.tracks}


def ultralytics(args: argparse.Namespace) -> dict:
    from ultralytics import YOLO

    model = YOLO(args.weights)
    start = time.perf_counter()
    frames = 0
    tracks = set()
    for result in model.track(args.video, stream=True, tracker="bytetrack.yaml", imgsz=args.imgsz,
                              device=args.device, verbose=False):
        frames += 1
        if result.boxes.id is not None:
            tracks.update(result.boxes.id.int().tolist())
    seconds = time.perf_counter() - start
    return {"frames": frames, "fps": frames / seconds, "tracks": len(tracks)}


def forward(args: argparse.Namespace) -> dict:
    """The detector's forward pass alone on pre-letterboxed batches of the same frames."""
    import av
    import torch

    from streamer.detectors.yolo import YoloDetector

    det = YoloDetector(args.weights, imgsz=args.imgsz, device=args.device)
    images = []
    with av.open(args.video) as c:
        for f in c.decode(video=0):
            images.append(f.to_ndarray(format="rgb24"))
    batches = [det.preprocess(images[i : i + args.batch])[0] for i in range(0, len(images), args.batch)]
    with torch.inference_mode():
        det.model(batches[0])  # warm-up
        start = time.perf_counter()
        for b in batches:
            det.model(b)
        seconds = time.perf_counter() - start
    return {"frames": len(images), "fps": len(images) / seconds, "threads": torch.get_num_threads()}


PARTS = {"ours": ours, "ultralytics": ultralytics, "forward": forward}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(DATA / "video" / "pets09-s2l1-vtest.avi"))
    parser.add_argument("--weights", help="a .pt file (default: yolo11n.pt if present, else random YOLOv8n)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--outputs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return

    if args.weights is None:
        if Path("yolo11n.pt").is_file():
            args.weights = "yolo11n.pt"
        else:
            import torch
            from ultralytics import YOLO

            torch.manual_seed(0)
            args.weights = str(Path(tempfile.mkdtemp()) / "yolov8n-random.pt")
            YOLO("yolov8n.yaml").save(args.weights)
            print(f"no weights given: random YOLOv8n saved to {args.weights}")
    common = ["--video", args.video, "--weights", args.weights, "--imgsz", str(args.imgsz),
              "--device", args.device, "--batch", str(args.batch)]

    def run(part: str, *extra: str) -> dict:
        cmd = [sys.executable, __file__, "--part", part, *common, *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    print(f"video {args.video}, weights {args.weights}, imgsz {args.imgsz}, device {args.device}, batch {args.batch}")
    fwd = run("forward")
    ult = run("ultralytics")
    ours_plain = run("ours")
    ours_out = run("ours", "--outputs")
    print(f"bare forward pass (torch {fwd['threads']} threads): {fwd['fps']:7.1f} frames/s")
    print(f"ultralytics model.track(stream=True):  {ult['fps']:7.1f} frames/s  ({ult['frames']} frames)")
    print(f"streamer run (no outputs):             {ours_plain['fps']:7.1f} frames/s  ({ours_plain['frames']} frames)")
    print(f"streamer run (annotated mp4 + events): {ours_out['fps']:7.1f} frames/s")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in ours_plain["stage_ms"].items())
    print(f"streamer stages, ms per frame: {stages}")
    print(f"streamer / ultralytics:        {ours_plain['fps'] / ult['fps']:.2f}x")
    print(f"streamer / bare forward pass:  {100 * ours_plain['fps'] / fwd['fps']:.0f}%")


if __name__ == "__main__":
    main()
