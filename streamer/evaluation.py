"""Tracking on MOT detection folders and evaluation with TrackEval.

``track_folder`` runs a tracker over every ``<root>/<seq>/det/det.txt``;
``evaluate`` scores result files against ``<gt_root>/<seq>/gt/gt.txt`` with TrackEval's
MOTChallenge 2D box protocol (HOTA, CLEAR, Identity).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinks.mot import MotSink
from streamer.config import tracker_config
from streamer.errors import ConfigError, SourceError
from streamer.mot import read_detections, read_seqinfo
from streamer.types import Detections

log = logging.getLogger(__name__)

__all__ = ["track_folder", "evaluate", "TrackRun", "METRICS"]

# Columns reported per sequence and combined: TrackEval field names, shown as these names.
METRICS = {"HOTA": "HOTA", "MOTA": "MOTA", "IDF1": "IDF1", "IDSW": "IDSW"}


@dataclass
class TrackRun:
    """What ``track_folder`` did: sequences, frames and the time spent in the tracker."""

    sequences: list[str]
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else float("inf")


def sequences_with(root: Path, relative: str) -> list[str]:
    """Names of the folders ``root/<seq>`` that contain ``relative``, sorted."""
    if not root.is_dir():
        raise SourceError(f"{root}: no such folder")
    seqs = sorted(p.name for p in root.iterdir() if (p / relative).is_file())
    if not seqs:
        raise SourceError(f"{root}: no <sequence>/{relative} below this folder")
    return seqs


def load_sequence(seq_dir: Path) -> tuple[list[Detections], float]:
    """Every frame's detections (an empty one where the file has none) and the fps."""
    by_frame = read_detections(seq_dir / "det" / "det.txt")
    info = read_seqinfo(seq_dir / "seqinfo.ini")
    length = max([int(info.get("seqlength", 0)), *by_frame.keys()])
    empty = Detections.empty()  # one for every frame without boxes: memory goes by the frames present
    frames = [by_frame.get(f, empty) for f in range(1, length + 1)]
    return frames, float(info.get("framerate", 30))


def track_folder(
    det_root: str | Path,
    out_dir: str | Path,
    tracker: Any = "ocsort",
) -> TrackRun:
    """Track every sequence under ``det_root``; write ``out_dir/<seq>.txt`` (MOT format).

    ``tracker`` is a tracker's name or its config section (``Config.tracker``); trackers
    that take a frame rate get each sequence's (``seqinfo.ini``) unless it sets one.

    The output boxes are the tracker's own (``data["track_xyxy"]``), as MOT results are.
    Only the tracker's ``update`` calls are timed; files are read beforehand.
    """
    det_root, out_dir = Path(det_root), Path(out_dir)
    seqs = sequences_with(det_root, "det/det.txt")
    config = tracker_config(tracker) if isinstance(tracker, str) else tracker
    frames_total, seconds = 0, 0.0
    for seq in seqs:
        frames, fps = load_sequence(det_root / seq)
        trk = config.build(fps)
        start = time.perf_counter()
        results = [trk.update(dets) for dets in frames]
        seconds += time.perf_counter() - start
        frames_total += len(frames)
        with MotSink(out_dir / f"{seq}.txt", box="track") as sink:
            for number, tracks in enumerate(results, 1):
                sink.write_rows(number, tracks)
    return TrackRun(seqs, frames_total, seconds)


def evaluate(
    gt_root: str | Path, results_dir: str | Path, benchmark: str = "MOT15"
) -> dict[str, dict[str, float]]:
    """HOTA, MOTA, IDF1 and IDSW per sequence and ``"COMBINED"``, from TrackEval.

    Sequences are those with ``gt_root/<seq>/gt/gt.txt``; each needs a
    ``results_dir/<seq>.txt`` (a missing one is an error, not a silent zero). HOTA, MOTA
    and IDF1 are percentages.
    """
    import trackeval  # heavy; only the eval command needs it

    if benchmark not in ("MOT15", "MOT16", "MOT17", "MOT20"):
        raise ConfigError(f"benchmark must be MOT15, MOT16, MOT17 or MOT20, got {benchmark!r}")
    gt_root, results_dir = Path(gt_root), Path(results_dir)
    seqs = sequences_with(gt_root, "gt/gt.txt")
    missing = [s for s in seqs if not (results_dir / f"{s}.txt").is_file()]
    if missing:
        raise SourceError(f"{results_dir}: no result file for {', '.join(missing)} (expected <seq>.txt)")
    for seq in seqs:
        if "seqlength" not in read_seqinfo(gt_root / seq / "seqinfo.ini"):
            raise SourceError(f"{gt_root / seq}/seqinfo.ini: missing or without seqLength")
    dataset_config = {
        "GT_FOLDER": str(gt_root),
        "TRACKERS_FOLDER": str(results_dir.resolve().parent),
        "TRACKERS_TO_EVAL": [results_dir.resolve().name],
        "TRACKER_SUB_FOLDER": "",
        "OUTPUT_FOLDER": None,
        "BENCHMARK": benchmark,
        "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": {seq: None for seq in seqs},
        "PRINT_CONFIG": False,
    }
    eval_config = {
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "TIME_PROGRESS": False,
        "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False,
        "OUTPUT_EMPTY_CLASSES": False,
    }
    # TrackEval prints as it goes; what matters is returned.
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(eval_config)
        dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
        raw, messages = evaluator.evaluate([dataset], metrics)
    result = raw["MotChallenge2DBox"][results_dir.resolve().name]
    if not isinstance(result, dict):
        raise RuntimeError(f"TrackEval failed: {messages}")
    return {seq: _summary(result[seq]["pedestrian"]) for seq in [*seqs, "COMBINED_SEQ"]}


def _summary(res: dict[str, Any]) -> dict[str, float]:
    return {
        "HOTA": 100.0 * float(res["HOTA"]["HOTA"].mean()),
        "MOTA": 100.0 * float(res["CLEAR"]["MOTA"]),
        "IDF1": 100.0 * float(res["Identity"]["IDF1"]),
        "IDSW": int(res["CLEAR"]["IDSW"]),
    }
