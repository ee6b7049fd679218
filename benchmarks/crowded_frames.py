"""Crowded frames: what 300 to 10,000 boxes a frame cost each tracker.

Two scenes of 20x40 px boxes, each moving 2 px a frame, so every box is matched frame
after frame (the association's full cost):

- ``spread``: scattered over a 4000x4000 scene (a box overlaps a few others);
- ``packed``: a crowd in rows, each box 8 px from the next, so neighbours overlap past
  the IoU threshold and pairs compete (the solver's case);
- ``chain``: all in one row 8 px apart: one group of touching boxes, past the size a
  dense block is solved at (matched greedily);
- ``wide``: ``spread`` plus one box as wide as the scene (a false positive), which a
  sweep that scanned the widest box's span for every box made quadratic.

Each (scene, tracker, boxes, path) runs in a process of its own: its peak RSS is its
own. The peer in the same run is the dense association every frame had before
(``trackers.sparse.DENSE_PAIRS`` raised past any frame) on the same boxes; past 500 x 500
pairs the trackers now hold only the overlapping pairs and solve per group.

    python benchmarks/crowded_frames.py [--boxes 300 1000 2000 5000 10000] [--frames 6] [--dense-up-to 5000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def scene(name: str, n: int):
    import numpy as np

    if name in ("spread", "wide"):
        return np.random.default_rng(0).uniform(0, 4000, (n, 2)).astype(np.float32)
    if name == "chain":
        return np.c_[8.0 * np.arange(n), np.zeros(n)].astype(np.float32)
    per_row = 300
    k = np.arange(n)
    return np.c_[8.0 * (k % per_row), 50.0 * (k // per_row)].astype(np.float32)


def one(scene_name: str, tracker: str, n: int, frames: int, dense: bool) -> dict:
    import numpy as np

    import trackers.sparse
    from streamer.config import tracker_config
    from streamer.types import Detections

    if dense:
        trackers.sparse.DENSE_PAIRS = 10**15
    xy = scene(scene_name, n)

    def boxes(d):
        out = np.c_[d, d + [20, 40]]
        if scene_name == "wide":
            out[0] = [d[0, 0], 2000, d[0, 0] + 4000, 2040]
        return out

    trk = tracker_config(tracker).build(30)
    trk.update(Detections(boxes(xy), np.full(n, 0.9, np.float32)))  # compiles the kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    for k in range(1, frames + 1):
        d = xy + 2 * k
        start = time.perf_counter()
        out = trk.update(Detections(boxes(d), np.full(n, 0.9, np.float32)))
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"s": float(np.median(seconds)), "rss_mb": peak / 1024, "grew_mb": (peak - before) / 1024,
            "tracks": len(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, nargs="+", default=[300, 1000, 2000, 5000, 10000])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--dense-up-to", type=int, default=5000, help="the peer's largest frame (it is quadratic)")
    parser.add_argument("--scenes", nargs="+", default=["spread", "packed", "chain", "wide"],
                        choices=("spread", "packed", "chain", "wide"))
    parser.add_argument("--trackers", nargs="+", default=["sort", "bytetrack", "ocsort"])
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, tracker, n, dense = args.one
        print(json.dumps(one(name, tracker, int(n), args.frames, dense == "dense")))
        return

    def measure(name: str, tracker: str, n: int, path: str) -> dict:
        run = subprocess.run([sys.executable, __file__, "--one", name, tracker, str(n), path, "--frames",
                              str(args.frames)], capture_output=True, text=True, check=True)
        return json.loads(run.stdout.splitlines()[-1])

    print("| scene | tracker | boxes/frame | ms/frame | dense peer ms/frame | speed-up | peak RSS MB | dense peer "
          "peak RSS MB | tracks (peer) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.scenes:
        for tracker in args.trackers:
            for n in sorted(set(args.boxes)):
                r = measure(name, tracker, n, "auto")
                d = measure(name, tracker, n, "dense") if n <= args.dense_up_to else None
                peer = "-" if d is None else f"{1000 * d['s']:.1f}"
                ratio = "-" if d is None else f"{d['s'] / r['s']:.1f}x"
                print(f"| {name} | {tracker} | {n} | {1000 * r['s']:.1f} | {peer} | {ratio} | {r['rss_mb']:.0f} "
                      f"| {'-' if d is None else round(d['rss_mb'])} | {r['tracks']} "
                      f"({'-' if d is None else d['tracks']}) |", flush=True)


if __name__ == "__main__":
    main()
