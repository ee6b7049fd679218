"""The MOTChallenge text formats: detection files and ``seqinfo.ini``.

Detection lines are ``frame, id, x, y, w, h, score, ...`` with 1-based frames and
top-left/width/height boxes.
"""

from __future__ import annotations

import configparser
import warnings
from pathlib import Path

import numpy as np

from streamer.errors import SourceError
from streamer.types import Detections

__all__ = ["read_detections", "read_seqinfo"]


def read_detections(path: str | Path) -> dict[int, Detections]:
    """Boxes of a MOT ``det.txt`` (or result file) by 1-based frame number.

    Raises:
        SourceError: the file is missing or is not in MOT format.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such detections file; pass a MOT det.txt path")
    try:
        with warnings.catch_warnings():  # an empty file is valid: no detections at all
            warnings.simplefilter("ignore", UserWarning)
            rows = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise SourceError(f"{path}: not a MOT detections file ({exc})") from None
    if rows.size and rows.shape[1] < 7:
        raise SourceError(
            f"{path}: MOT lines need at least 7 columns (frame,id,x,y,w,h,score), "
            f"got {rows.shape[1]}"
        )
    out: dict[int, Detections] = {}
    if not rows.size:
        return out
    if not np.isfinite(rows[:, :7]).all():
        raise SourceError(f"{path}:{_first_bad_line(path)}: a value is NaN or infinite; "
                          f"MOT lines hold numbers only (frame,id,x,y,w,h,score)")
    if (rows[:, 0] < 1).any() or (rows[:, 0] != np.round(rows[:, 0])).any():
        raise SourceError(f"{path}: frame numbers must be whole numbers from 1 (MOT frames are 1-based)")
    if (rows[:, 0] >= 2**31).any():
        line = int(np.flatnonzero(rows[:, 0] >= 2**31)[0]) + 1
        raise SourceError(f"{path}: frame {rows[line - 1, 0]:g} (row {line}) is past 2^31-1; is this a MOT det file?")
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    frames = rows[:, 0].astype(np.int64)
    xyxy = rows[:, 2:6].copy()
    xyxy[:, 2:4] += xyxy[:, 0:2]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    for s, e in zip(starts, ends, strict=True):
        out[int(frames[s])] = Detections(xyxy[s:e], rows[s:e, 6]).proper()  # zero-size boxes dropped
    return out


def _first_bad_line(path: Path) -> int:
    """The number of the first line holding a value that is not a finite number."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            try:
                if not all(np.isfinite(float(v)) for v in line.split(",")[:7] if v.strip()):
                    return number
            except ValueError:
                return number
    return 0


def read_seqinfo(path: str | Path) -> dict[str, str]:
    """The ``[Sequence]`` section of a ``seqinfo.ini`` as strings; empty if absent."""
    path = Path(path)
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0][:120]
        raise SourceError(f"{path}: not a seqinfo.ini ({first}); it needs a [Sequence] section") from None
    info = dict(parser["Sequence"]) if parser.has_section("Sequence") else {}
    for key, kind in (("framerate", float), ("seqlength", int)):
        if key in info:
            try:
                value = kind(info[key])
            except ValueError:
                value = -1
            if not 0 < value < 1e6:
                raise SourceError(f"{path}: {key}={info[key][:40]!r} is not a positive number; fix or remove it")
    return info
