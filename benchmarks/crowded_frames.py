"""Crowded frames: what 300 to 5,000 boxes a frame cost each tracker, beside the cap.

Boxes of 20x40 px spread over a 4000x4000 scene, each moving 2 px a frame, so every box
is matched frame after frame (the association's full cost). Each (tracker, boxes) runs
in a process of its own: its peak RSS is its own. The peer in the same run is the same
tracker at 300 boxes, the default ``max_det`` that the pipeline now applies to every
detector before the tracker.

    python benchmarks/crowded_frames.py [--boxes 300 1000 2000 5000] [--frames 6]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(tracker: str, n: int, frames: int) -> dict:
    import numpy as np

    from streamer.config import tracker_config
    from streamer.types import Detections

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 4000, (n, 2)).astype(np.float32)
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
    parser.add_argument("--boxes", type=int, nargs="+", default=[300, 1000, 2000, 5000])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.frames)))
        return
    print("| tracker | boxes/frame | ms/frame | vs 300 boxes | peak RSS MB | RSS grown in the frames, MB |")
    print("|---|---|---|---|---|---|")
    for tracker in ("sort", "bytetrack", "ocsort"):
        base = None
        for n in sorted(set([300, *args.boxes])):
            run = subprocess.run([sys.executable, __file__, "--one", tracker, str(n), "--frames", str(args.frames)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(run.stdout.splitlines()[-1])
            base = base or r["s"]
            print(f"| {tracker} | {n} | {1000 * r['s']:.1f} | {r['s'] / base:.1f}x | {r['rss_mb']:.0f} "
                  f"| {r['grew_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
