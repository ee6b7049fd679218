"""Tracking speed over the 11 MOT15 sequences: ours beside the reference SORT and
ultralytics' BYTETracker, in the same run.

Detections are read beforehand; only the trackers' update calls are timed; each figure is
the best of ``--repeat`` passes (after one warm-up pass that also compiles our kernels).

    python benchmarks/tracker_speed.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

from streamer.config import tracker_config  # noqa: E402
from streamer.evaluation import load_sequence  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(args.data) / "mot15"
    seqs = sorted(p.name for p in root.iterdir() if (p / "det" / "det.txt").is_file())
    loaded = [load_sequence(root / s) for s in seqs]
    ours = [(frames, fps) for frames, fps in loaded]
    arrays = [[np.column_stack([d.xyxy.astype(np.float64), d.confidence]) for d in frames] for frames, _ in loaded]
    n_frames = sum(len(f) for f, _ in loaded)
    n_boxes = sum(len(d) for f, _ in loaded for d in f)

    def ours_runner(name):
        def run():
            config = tracker_config(name)
            for frames, fps in ours:
                t = config.build(fps)
                for d in frames:
                    t.update(d)
        return run

    def peer_runner(fn):
        def run():
            for frames in arrays:
                fn(frames)
        return run

    runners = {
        "streamer sort": ours_runner("sort"),
        "streamer bytetrack": ours_runner("bytetrack"),
        "streamer ocsort": ours_runner("ocsort"),
        "ultralytics BYTETracker": peer_runner(peers.run_bytetracker),
    }
    if peers.reference_sort() is not None:
        runners["reference SORT (abewley)"] = peer_runner(peers.run_reference_sort)
    else:
        print("reference SORT not installed: pip install -e '.[bench]'", file=sys.stderr)

    print(f"{len(seqs)} sequences, {n_frames} frames, {n_boxes} detections; best of {args.repeat}")
    fps = {}
    for name, run in runners.items():
        run()  # warm-up (JIT compilation, caches)
        best = min(_timed(run) for _ in range(args.repeat))
        fps[name] = n_frames / best
        print(f"{name:28s} {fps[name]:10.0f} frames/s")
    ref = fps.get("reference SORT (abewley)")
    if ref:
        print(f"\nstreamer sort / reference SORT:          {fps['streamer sort'] / ref:6.1f}x")
    bt = fps["ultralytics BYTETracker"]
    print(f"streamer bytetrack / ultralytics BYTETracker: {fps['streamer bytetrack'] / bt:6.1f}x")
    print(f"streamer ocsort / ultralytics BYTETracker:    {fps['streamer ocsort'] / bt:6.1f}x")


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
