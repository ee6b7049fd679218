"""Tracker accuracy on data the defaults were not chosen on: the 7 MOT17 train sequences
(official ground truth, full length) with detections simulated from it, since their
public detections are not here. The simulated detector (seeded) misses boxes more the
more they are occluded, jitters the rest, adds false positives, and scores boxes by
visibility. Ours beside the reference SORT and ultralytics' BYTETracker, TrackEval's
MOT17 protocol.

    python benchmarks/tracker_robustness.py [--data ../shared/data] [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

from streamer.evaluation import evaluate  # noqa: E402


def simulate(gt: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """MOT det rows from ground-truth rows (considered pedestrians only)."""
    rows = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    vis = rows[:, 8]
    seen = rng.random(len(rows)) > 0.05 + 0.6 * (1.0 - vis)
    rows, vis = rows[seen], vis[seen]
    x, y, w, h = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
    w2 = w * rng.normal(1.0, 0.05, len(w))
    h2 = h * rng.normal(1.0, 0.05, len(h))
    x2 = x + (w - w2) / 2 + rng.normal(0, 0.04, len(w)) * w
    y2 = y + (h - h2) / 2 + rng.normal(0, 0.03, len(h)) * h
    score = np.clip(rng.normal(0.45 + 0.5 * vis, 0.1), 0.05, 1.0)
    dets = [np.column_stack([rows[:, 0], -np.ones(len(rows)), x2, y2, w2, h2, score])]
    frames = np.unique(gt[:, 0])
    n_fp = rng.poisson(1.5, len(frames))
    fp_frames = np.repeat(frames, n_fp)
    fw = rng.uniform(20, 120, len(fp_frames))
    fh = fw * rng.uniform(1.8, 3.0, len(fp_frames))
    x, y = rng.uniform(0, width - fw), rng.uniform(0, height - fh)
    dets.append(np.column_stack([fp_frames, -np.ones(len(fp_frames)), x, y, fw, fh,
                                 rng.uniform(0.1, 0.6, len(fp_frames))]))
    out = np.concatenate(dets)
    return out[np.argsort(out[:, 0], kind="stable")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    src = Path(args.data) / "mot17-gt"
    work = Path(tempfile.mkdtemp(prefix="streamer-mot17-"))
    rng = np.random.default_rng(args.seed)
    seqs = sorted(p.name for p in src.iterdir() if (p / "gt" / "gt.txt").is_file())
    for seq in seqs:
        shutil.copytree(src / seq, work / "gt" / seq)
        info = (src / seq / "seqinfo.ini").read_text()
        width = int(info.split("imWidth=")[1].split()[0])
        height = int(info.split("imHeight=")[1].split()[0])
        dets = simulate(np.loadtxt(src / seq / "gt" / "gt.txt", delimiter=","), width, height, rng)
        (work / "gt" / seq / "det").mkdir()
        np.savetxt(work / "gt" / seq / "det" / "det.txt", np.column_stack([dets, -np.ones((len(dets), 3))]),
                   delimiter=",", fmt="%.2f")

    results = peers.track_everything(work / "gt", seqs, work)

    print(f"MOT17 train, {len(seqs)} sequences, simulated detections (seed {args.seed}); combined:")
    print(f"{'tracker':28s}{'HOTA':>7s}{'MOTA':>7s}{'IDF1':>7s}{'IDSW':>7s}")
    for label, folder in results.items():
        m = evaluate(work / "gt", folder, benchmark="MOT17")["COMBINED_SEQ"]
        print(f"{label:28s}{m['HOTA']:7.1f}{m['MOTA']:7.1f}{m['IDF1']:7.1f}{m['IDSW']:7d}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
