"""The peers our trackers are measured against, run on MOT detections.

- the reference SORT (abewley/sort, packaged on PyPI as ``sort-tracker-py``; GPL, so it
  is installed for benchmarks only: ``pip install -e '.[bench]'``);
- ultralytics' ``BYTETracker`` with its default ``bytetrack.yaml``.

Each runner takes one sequence as a list of ``(N, 5)`` float64 arrays
``x1, y1, x2, y2, score`` (one per frame) and returns the tracks of each frame as
``(K, 5)`` arrays ``x1, y1, x2, y2, id``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np


def reference_sort():
    """A new reference SORT with the benchmark settings, or None if not installed."""
    try:
        from sort_tracker.sort import Sort
    except ImportError:
        return None
    return Sort(max_age=1, min_hits=3, iou_threshold=0.3)


def run_reference_sort(frames: list[np.ndarray]) -> list[np.ndarray]:
    tracker = reference_sort()
    out = []
    for dets in frames:
        rows = tracker.update(dets)
        out.append(rows[:, [0, 1, 2, 3, 5]] if len(rows) else np.empty((0, 5)))
    return out


def bytetracker():
    """ultralytics' BYTETracker with its default configuration."""
    import yaml
    import ultralytics
    from ultralytics.trackers.byte_tracker import BYTETracker

    cfg = Path(ultralytics.__file__).parent / "cfg" / "trackers" / "bytetrack.yaml"
    return BYTETracker(SimpleNamespace(**yaml.safe_load(cfg.read_text())))


def run_bytetracker(frames: list[np.ndarray], shape: tuple[int, int] = (1080, 1920)) -> list[np.ndarray]:
    from ultralytics.engine.results import Boxes

    tracker = bytetracker()
    out = []
    for dets in frames:
        data = np.zeros((len(dets), 6), np.float32)
        data[:, :5] = dets
        rows = tracker.update(Boxes(data, shape))
        out.append(rows[:, :5].astype(np.float64) if len(rows) else np.empty((0, 5)))
    return out


def write_mot(path: Path, tracks: list[np.ndarray]) -> None:
    """Per-frame ``x1, y1, x2, y2, id`` rows as a MOT result file."""
    lines = []
    for number, rows in enumerate(tracks, 1):
        for x1, y1, x2, y2, tid in rows:
            lines.append(f"{number},{int(tid)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,-1,-1,-1\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def track_everything(det_root: Path, seqs: list[str], work: Path) -> dict[str, Path]:
    """Our three trackers and the peers over ``det_root/<seq>/det/det.txt``; the folder of
    MOT result files of each, by label."""
    from streamer.evaluation import load_sequence, track_folder

    results: dict[str, Path] = {}
    for name in ("sort", "bytetrack", "ocsort"):
        track_folder(det_root, work / name, name)
        results[f"streamer {name}"] = work / name
    runs = {"ultralytics BYTETracker": run_bytetracker}
    if reference_sort() is not None:
        runs["reference SORT (abewley)"] = run_reference_sort
    for label, run in runs.items():
        out = work / label.split()[0]
        for seq in seqs:
            frames, _ = load_sequence(det_root / seq)
            arrays = [np.column_stack([d.xyxy.astype(np.float64), d.confidence]) for d in frames]
            write_mot(out / f"{seq}.txt", run(arrays))
        results[label] = out
    return results
