"""Tracking on MOT detection folders and evaluation with TrackEval.

``track_folder`` runs a tracker over every ``<root>/<seq>/det/det.txt``;
``evaluate`` scores result files against ``<gt_root>/<seq>/gt/gt.txt`` with TrackEval's
MOTChallenge 2D box protocol (HOTA, CLEAR, Identity).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinks.mot import MotSink
from streamer.config import tracker_config
from streamer.errors import ConfigError, SourceError
from streamer.mot import read_detections, read_seqinfo
from streamer.paths import check_overwrites
from streamer.types import Detections

log = logging.getLogger(__name__)

__all__ = ["METRICS", "TrackRun", "check_results", "evaluate", "read_sequence", "track_folder"]

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


# Empty frames in a row, with no track held, after which more of them cannot change a
# tracker (only its frame counter moves, and counters matter within the first min_hits
# frames alone): such frames are skipped, so one box at frame 100,000,000 costs no
# 100 million updates.
IDLE_FRAMES = 1000


def read_sequence(seq_dir: Path) -> tuple[dict[int, Detections], int, float]:
    """The detections of the frames that have any (by 1-based frame number), the
    sequence's length (``seqLength``, or its last frame with boxes) and its fps."""
    by_frame = read_detections(seq_dir / "det" / "det.txt")
    info = read_seqinfo(seq_dir / "seqinfo.ini")
    length = max([int(info.get("seqlength", 0)), *by_frame.keys()])
    return by_frame, length, float(info.get("framerate", 30))


def load_sequence(seq_dir: Path) -> tuple[list[Detections], float]:
    """Every frame's detections (one shared empty object where the file has none) and the fps."""
    by_frame, length, fps = read_sequence(seq_dir)
    empty = Detections.empty()
    return [by_frame.get(f, empty) for f in range(1, length + 1)], fps


def _track(trk: Any, by_frame: dict[int, Detections], sink: MotSink) -> tuple[int, float]:
    """Tracks the frames in order, writing each one's rows; returns the updates made and
    the seconds they took. Frames after the last one with boxes give no rows (a track is
    reported only in a frame that matched it) and are not run; a run of empty frames is
    cut short once no track is held for ``IDLE_FRAMES`` of them."""
    empty = Detections.empty()
    updates, seconds, previous = 0, 0.0, 0
    for number in sorted(by_frame):
        idle = 0
        for gap_frame in range(previous + 1, number):  # the empty frames before this one
            if idle >= IDLE_FRAMES and not len(trk.alive_ids):
                break
            idle = idle + 1 if not len(trk.alive_ids) else 0
            start = time.perf_counter()
            sink.write_rows(gap_frame, trk.update(empty))
            seconds += time.perf_counter() - start
            updates += 1
        start = time.perf_counter()
        tracks = trk.update(by_frame[number])
        seconds += time.perf_counter() - start
        sink.write_rows(number, tracks)
        updates, previous = updates + 1, number
    return updates, seconds


def track_folder(
    det_root: str | Path,
    out_dir: str | Path,
    tracker: Any = "ocsort",
    max_det: int | None = 1000,
) -> TrackRun:
    """Track every sequence under ``det_root``; write ``out_dir/<seq>.txt`` (MOT format).

    ``tracker`` is a tracker's name or its config section (``Config.tracker``); trackers
    that take a frame rate get each sequence's (``seqinfo.ini``) unless it sets one.

    The output boxes are the tracker's own (``data["track_xyxy"]``), as MOT results are.
    Only the tracker's ``update`` calls are timed; files are read beforehand. Memory and
    time go by the frames with boxes, not by the highest frame number. A frame with more
    than ``max_det`` boxes keeps the best scoring (None: all), as a detector's cap does.
    """
    det_root, out_dir = Path(det_root), Path(out_dir)
    seqs = sequences_with(det_root, "det/det.txt")
    check_overwrites({f"det.txt of {s}": str(det_root / s / "det" / "det.txt") for s in seqs},
                     {f"the result of {s}": str(out_dir / f"{s}.txt") for s in seqs})
    config = tracker_config(tracker) if isinstance(tracker, str) else tracker
    frames_total, seconds = 0, 0.0
    for seq in seqs:
        by_frame, _, fps = read_sequence(det_root / seq)
        if max_det is not None:
            _cap(by_frame, max_det, seq)
        with MotSink(out_dir / f"{seq}.txt", box="track") as sink:
            updates, spent = _track(config.build(fps), by_frame, sink)
        frames_total += updates
        seconds += spent
    return TrackRun(seqs, frames_total, seconds)


def _cap(by_frame: dict[int, Detections], max_det: int, seq: str) -> None:
    crowded = [f for f, dets in by_frame.items() if len(dets) > max_det]
    for f in crowded:
        by_frame[f] = by_frame[f].best(max_det)
    if crowded:
        log.warning("%s: %d frames hold more than %d boxes; the best scoring %d of each were tracked "
                    "(--max-det)", seq, len(crowded), max_det, max_det)


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
        info = read_seqinfo(gt_root / seq / "seqinfo.ini")
        if "seqlength" not in info:
            raise SourceError(f"{gt_root / seq}/seqinfo.ini: missing or without seqLength")
        check_results(results_dir / f"{seq}.txt", int(info["seqlength"]))
        check_finite(gt_root / seq / "gt" / "gt.txt")
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
    # TrackEval prints as it goes, a traceback too where it fails; what matters is returned.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            evaluator = trackeval.Evaluator(eval_config)
            dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
            metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
            raw, messages = evaluator.evaluate([dataset], metrics)
        except trackeval.utils.TrackEvalException as exc:  # what the checks above did not foresee
            raise SourceError(f"TrackEval refused the files: {' '.join(str(exc).split())[:300]}") from None
    result = raw["MotChallenge2DBox"][results_dir.resolve().name]
    if not isinstance(result, dict):
        said = messages["MotChallenge2DBox"][results_dir.resolve().name]
        raise SourceError(f"TrackEval could not score {results_dir}: {' '.join(str(said).split())[:300]}")
    return {seq: _summary(result[seq]["pedestrian"]) for seq in [*seqs, "COMBINED_SEQ"]}


def check_results(path: Path, seq_length: int) -> None:
    """Raises SourceError naming the line when a MOT results file is not one TrackEval can
    score: each line ``frame,id,x,y,w,h,score[,...]`` of finite numbers, whole frames from 1 to
    ``seq_length``, whole ids, and no id twice in one frame."""
    seen: set[tuple[int, int]] = set()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not a text file (byte {exc.start}); MOT results are comma-separated numbers") \
            from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            values = [float(v) for v in line.split(",")]
        except ValueError:
            raise SourceError(f"{where}: not MOT numbers ({line[:60]!r}); lines are frame,id,x,y,w,h,score,...") \
                from None
        if len(values) < 7:
            raise SourceError(f"{where}: {len(values)} values; MOT results need frame,id,x,y,w,h,score at least")
        if not all(math.isfinite(v) for v in values[:6]):
            raise SourceError(f"{where}: a value is NaN or infinite")
        frame, ident = values[0], values[1]
        if frame != int(frame) or ident != int(ident):
            raise SourceError(f"{where}: frame and id must be whole numbers, got {frame:g} and {ident:g}")
        if not 0 <= ident < 2**31:
            raise SourceError(f"{where}: id {ident:g} is outside 0 to 2^31-1; ids are track numbers")
        if len(values) > 7 and values[7] not in (-1.0, 0.0, 1.0):
            raise SourceError(f"{where}: the 8th value is a class ({values[7]:g}); results are pedestrians (1, or "
                              f"-1). Is this a gt.txt rather than results?")
        if not 1 <= frame <= seq_length:
            raise SourceError(f"{where}: frame {frame:g} is outside the sequence (1 to {seq_length}, "
                              f"seqLength in seqinfo.ini)")
        key = (int(frame), int(ident))
        if key in seen:
            raise SourceError(f"{where}: id {key[1]} appears twice in frame {key[0]}; one box per track and frame")
        seen.add(key)


def check_finite(path: Path) -> None:
    """Raises SourceError naming the line when a ground truth file holds a value that is
    not a finite number (TrackEval's solver fails on NaN with a traceback, and takes
    infinity silently)."""
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            values = [float(v) for v in line.split(",")[:6]] if line.strip() else []
        except ValueError:
            raise SourceError(f"{path}:{number}: not MOT numbers ({line[:60]!r})") from None
        if not all(math.isfinite(v) for v in values):
            raise SourceError(f"{path}:{number}: a value is NaN or infinite; the ground truth must be numbers")


def _summary(res: dict[str, Any]) -> dict[str, float]:
    return {
        "HOTA": 100.0 * float(res["HOTA"]["HOTA"].mean()),
        "MOTA": 100.0 * float(res["CLEAR"]["MOTA"]),
        "IDF1": 100.0 * float(res["Identity"]["IDF1"]),
        "IDSW": int(res["CLEAR"]["IDSW"]),
    }
