"""Accuracy table (TrackEval, MOT15 protocol) on the sequences with ground truth:
our trackers beside the reference SORT and ultralytics' BYTETracker run on the same
public detections in the same run.

    python benchmarks/tracker_accuracy.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

from streamer.evaluation import evaluate, sequences_with  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    mot15 = Path(args.data) / "mot15"
    work = Path(tempfile.mkdtemp(prefix="streamer-acc-"))
    gt = work / "gt"
    for seq in sequences_with(mot15, "gt/gt.txt"):
        shutil.copytree(mot15 / seq, gt / seq)
    seqs = sequences_with(gt, "gt/gt.txt")

    results = peers.track_everything(gt, seqs, work)

    print(f"{'tracker':28s}" + "".join(f"{s:>30s}" for s in [*seqs, "COMBINED"]))
    print(f"{'':28s}" + f"{'HOTA  MOTA  IDF1  IDSW':>30s}" * (len(seqs) + 1))
    for label, folder in results.items():
        table = evaluate(gt, folder)
        cells = []
        for seq in [*seqs, "COMBINED_SEQ"]:
            m = table[seq]
            cells.append(f"{m['HOTA']:6.1f}{m['MOTA']:6.1f}{m['IDF1']:6.1f}{m['IDSW']:6d}")
        print(f"{label:28s}" + "".join(f"{c:>30s}" for c in cells))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
