"""Detector backends on this machine's CPUs: the bare forward pass per backend, and
``streamer run`` per backend beside ultralytics' ``model.track(stream=True)`` loaded with the
same exported format (the .pt for torch, the .onnx for ONNX Runtime, the OpenVINO folder),
quiet and with a concurrent CPU load: a busy-loop process on one core that stops by itself.

Every figure comes from its own process (each runtime sets up its thread pools once per
process). Without weights at hand (no internet here) a YOLOv8n is built from its yaml with
random weights and saved once; both contenders load the very same exported files (from
streamer's export cache). ByteTrack on both sides; no outputs written.

    python benchmarks/detector_backends.py [--videos pets09 bikes] [--frames 300] [--imgsz 640]
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
VIDEOS = {"pets09": DATA / "video" / "pets09-s2l1-vtest.avi", "bikes": DATA / "video" / "bikes.mp4"}
BACKENDS = ("torch", "onnxruntime", "openvino")
INT8 = "openvino-int8"  # OpenVINO INT8, calibrated on the benchmark's own clip
BUSY_LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def clip(video: Path, frames: int, work: Path) -> Path:
    """The first ``frames`` frames of ``video``, remuxed (no re-encode) so that every
    contender decodes the same packets."""
    import av

    out_path = work / f"{video.stem}-{frames}{video.suffix}"
    with av.open(str(video)) as src, av.open(str(out_path), "w") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        n = 0
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)
            n += 1
            if n == frames:
                break
    return out_path


def model_for(args: argparse.Namespace, backend: str) -> str:
    """The file a backend runs: the .pt itself, or its export from streamer's cache."""
    if backend == "torch":
        return args.weights
    from streamer.detectors.export import ExportSpec, cached_export

    calibration = Path(args.video) if backend == INT8 else None
    spec = ExportSpec(Path(args.weights), backend.split("-")[0], args.imgsz, args.batch, calibration=calibration)
    return str(cached_export(spec, args.cache)[0])


def detector_args(args: argparse.Namespace, backend: str) -> dict:
    int8 = {"int8_calibration": args.video} if backend == INT8 else {}
    return {"backend": backend.split("-")[0], "batch": args.batch, "cache_dir": args.cache, **int8}


def part_forward(args: argparse.Namespace) -> dict:
    """Images/s of the backend's forward pass alone on pre-letterboxed batches."""
    import av

    from streamer.detectors.yolo import YoloDetector

    det = YoloDetector(args.weights, imgsz=args.imgsz, device="cpu", **detector_args(args, args.backend))
    images = []
    with av.open(args.video) as c:
        for f in c.decode(video=0):
            images.append(f.to_ndarray(format="rgb24"))
            if len(images) == 64:
                break
    b = args.forward_batch
    batches = [det.preprocess(images[i : i + b])[0] for i in range(0, len(images) - b + 1, b)]
    det.forward(batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        det.forward(batch)
    return {"fps": len(batches) * b / (time.perf_counter() - start)}


def part_ours(args: argparse.Namespace) -> dict:
    from streamer.config import load_config
    from streamer.pipeline import Pipeline

    overrides = {
        "source": {"uri": args.video},
        "detector": {"weights": args.weights, "imgsz": args.imgsz, "device": "cpu",
                     **detector_args(args, args.backend)},
        "tracker": {"name": "bytetrack"},
        "progress": False,
    }
    pipeline = Pipeline(load_config(None, overrides))
    summary = pipeline.run()
    return {"frames": summary.frames, "fps": summary.fps, "detector": summary.detector}


def part_ultralytics(args: argparse.Namespace) -> dict:
    from ultralytics import YOLO

    model = YOLO(model_for(args, args.backend), task="detect")
    frames = 0
    start = time.perf_counter()
    for _ in model.track(args.video, stream=True, tracker="bytetrack.yaml", imgsz=args.imgsz, device="cpu",
                         verbose=False):
        frames += 1
    return {"frames": frames, "fps": frames / (time.perf_counter() - start)}


def part_agreement(args: argparse.Namespace) -> dict:
    """INT8 boxes against the float model's on the clip's frames (a random YOLOv8n whose
    class head is biased so that it finds boxes, as in the tests)."""
    import av
    import torch
    from ultralytics import YOLO

    from streamer.detectors.compare import box_agreement
    from streamer.detectors.yolo import YoloDetector
    from streamer.types import Frame

    torch.manual_seed(0)
    yolo = YOLO("yolov8n.yaml")
    with torch.no_grad():
        for seq in yolo.model.model[-1].cv3:
            seq[-1].bias.normal_(-4, 1)
            seq[-1].weight.normal_(0, 0.1)
    args.weights = str(Path(args.cache).parent / "yolov8n-biased.pt")
    yolo.save(args.weights)
    images = []
    with av.open(args.video) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 5 == 0:
                images.append(Frame("s", i, 0, f.to_ndarray(format="rgb24")))
    fp = YoloDetector(args.weights, imgsz=args.imgsz, device="cpu", conf=0.18, **detector_args(args, "openvino"))
    q = YoloDetector(args.weights, imgsz=args.imgsz, device="cpu", conf=0.18, **detector_args(args, INT8))
    a = box_agreement(fp(images), q(images))
    return {"frames": len(images), "boxes": a.reference, "recall": a.recall, "precision": a.precision,
            "iou": a.mean_iou, "conf": a.mean_conf_diff, "fp": fp.forward.precision}


PARTS = {"forward": part_forward, "ours": part_ours, "ultralytics": part_ultralytics, "agreement": part_agreement}


def run_part(args: argparse.Namespace, part: str, video: Path, backend: str, *, load: bool = False,
             forward_batch: int = 1) -> dict:
    """One part in its own process; with ``load``, a bounded busy loop runs beside it."""
    cmd = [sys.executable, __file__, "--part", part, "--video", str(video), "--backend", backend,
           "--weights", args.weights, "--imgsz", str(args.imgsz), "--batch", str(args.batch),
           "--cache", args.cache, "--forward-batch", str(forward_batch)]
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=300)]) if load else None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if done.returncode != 0:
        raise SystemExit(f"{part} {backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_video(args: argparse.Namespace, name: str, video: Path) -> None:
    import av

    with av.open(str(video)) as c:
        s = c.streams.video[0]
        print(f"\n## {name}: {video.name}, {s.width}x{s.height}, {args.frames} frames at most, imgsz {args.imgsz}")
    fwd = {(b, n): run_part(args, "forward", video, b, forward_batch=n)["fps"] for b in (*BACKENDS, INT8)
           for n in (1, 4)}
    print("\nbare forward pass, images/s      batch 1   batch 4")
    for b in (*BACKENDS, INT8):
        print(f"  {b:<28} {fwd[b, 1]:8.1f}  {fwd[b, 4]:8.1f}")
    rows = {}
    for b in (*BACKENDS, INT8):
        rows[b] = {
            cond: (run_part(args, "ours", video, b, load=cond == "loaded"),
                   run_part(args, "ultralytics", video, b, load=cond == "loaded"))
            for cond in ("quiet", "loaded")
        }
    print(f"\nframes/s, streamer run (batch {args.batch}) | ultralytics model.track(stream=True), same format")
    print(f"  {'backend':<13} {'quiet: ours':>12} {'theirs':>7} {'ratio':>6}   {'loaded: ours':>12} {'theirs':>7} "
          f"{'ratio':>6}   ours kept")
    for b, r in rows.items():
        (oq, uq), (ol, ul) = r["quiet"], r["loaded"]
        print(f"  {b:<13} {oq['fps']:12.1f} {uq['fps']:7.1f} {oq['fps'] / uq['fps']:5.2f}x   {ol['fps']:12.1f} "
              f"{ul['fps']:7.1f} {ol['fps'] / ul['fps']:5.2f}x   {100 * ol['fps'] / oq['fps']:5.0f}%")
    auto = run_part(args, "ours", video, "auto")
    best_theirs = max(r["quiet"][1]["fps"] for b, r in rows.items() if b != INT8)
    best_fwd = max(v for (b, _), v in fwd.items() if b != INT8)
    print(f"\nauto chose: {auto['detector']}: {auto['fps']:.1f} frames/s")
    print(f"  auto / ultralytics' best format:        {auto['fps'] / best_theirs:.2f}x (goal 2x)")
    print(f"  auto / best bare forward pass:          {100 * auto['fps'] / best_fwd:.0f}% (goal 90%)")
    chosen = rows[auto["detector"].split()[0]]
    kept = chosen["loaded"][0]["fps"] / chosen["quiet"][0]["fps"]
    ahead = chosen["loaded"][0]["fps"] / max(r["loaded"][1]["fps"] for b, r in rows.items() if b != INT8)
    print(f"  under load, auto's backend kept:        {100 * kept:.0f}% of its quiet rate (goal 50%), "
          f"{ahead:.2f}x ultralytics' best float format under the same load")
    int8 = rows[INT8]["quiet"][0]["fps"]
    print(f"  openvino-int8 run / ultralytics' best float format: {int8 / best_theirs:.2f}x")
    a = run_part(args, "agreement", video, INT8)
    print(f"INT8 against OpenVINO {a['fp']} ({a['frames']} frames, {a['boxes']} boxes, biased random head): "
          f"recall {a['recall']:.3f}, precision {a['precision']:.3f}, mean IoU {a['iou']:.3f}, "
          f"mean |conf diff| {a['conf']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", nargs="+", choices=VIDEOS, default=list(VIDEOS))
    parser.add_argument("--frames", type=int, default=300, help="frames of each video (a remuxed clip)")
    parser.add_argument("--weights", help="a .pt file (default: random YOLOv8n)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=4, help="streamer's detector.batch (the export's largest)")
    parser.add_argument("--cache", help="export cache folder (default: a temporary one)")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--forward-batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return
    work = Path(tempfile.mkdtemp(prefix="detector-backends-"))
    args.cache = args.cache or str(work / "cache")
    if args.weights is None:
        import torch
        from ultralytics import YOLO

        torch.manual_seed(0)
        args.weights = str(work / "yolov8n-random.pt")
        YOLO("yolov8n.yaml").save(args.weights)
        print(f"no weights given: random YOLOv8n saved to {args.weights}")
    for b in BACKENDS[1:]:
        model_for(args, b)  # exported once, before anything is timed
    for name in args.videos:
        bench_video(args, name, clip(VIDEOS[name], args.frames, work))


if __name__ == "__main__":
    main()
