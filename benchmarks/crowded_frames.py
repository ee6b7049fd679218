"""Crowded frames: what 300 to 10,000 boxes a frame cost each tracker.

Two scenes of 20x40 px boxes, each moving 2 px a frame, so every box is matched frame
after frame (the association's full cost):

- ``spread``: scattered over a 4000x4000 scene (a box overlaps a few others);
- ``packed``: a crowd in rows, each box 8 px from the next, so neighbours overlap past
  the IoU threshold and pairs compete (the solver's case).

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

    if name == "spread":
        return np.random.default_rng(0).uniform(0, 4000, (n, 2)).astype(np.float32)
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
    trk = tracker_config(tracker).build(30)
    warm = Detections(np.c_[xy, xy + [20, 40]], np.full(n, 0.9, np.float32))
    trk.update(warm)  # compiles the kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    for k in range(1, frames + 1):
        d = xy + 2 * k
        start = time.perf_counter()
        out = trk.update(Detections(np.c_[d, d + [20, 40]], np.full(n, 0.9, np.float32)))
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"s": float(np.median(seconds)), "rss_mb": peak / 1024, "grew_mb": (peak - before) / 1024,
            "tracks": len(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, nargs="+", default=[300, 1000, 2000, 5000, 10000])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--dense-up-to", type=int, default=5000, help="the peer's largest frame (it is quadratic)")
    parser.add_argument("--scenes", nargs="+", default=["spread", "packed"], choices=("spread", "packed"))
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
