"""MOTChallenge result files: ``frame,id,x,y,w,h,score,-1,-1,-1`` per tracked box."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from streamer.protocols import Sink
from streamer.types import Detections, Event, Frame

__all__ = ["MotSink", "format_mot"]


def format_mot(frame_number: int, tracks: Detections, box: str = "detection") -> str:
    """MOT result lines of one frame (1-based ``frame_number``).

    Args:
        box: ``"detection"`` writes the matched detection's box, ``"track"`` the
            tracker's filtered box (``data["track_xyxy"]``), as MOT benchmarks expect.
    """
    xyxy = tracks.data["track_xyxy"] if box == "track" else tracks.xyxy
    xyxy = xyxy.astype(np.float64)
    lines = []
    for tid, (x1, y1, x2, y2), score in zip(tracks.tracker_id, xyxy, tracks.confidence, strict=True):
        lines.append(
            f"{frame_number},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n"
        )
    return "".join(lines)


class MotSink(Sink):
    """Writes tracks in MOT result format; frames are numbered from 1 (index + 1).

    Each frame's lines are written whole and flushed, so the file is valid after a crash.
    """

    def __init__(self, path: str | Path, box: str = "detection") -> None:
        if box not in ("detection", "track"):
            raise ValueError(f"MotSink: box must be 'detection' or 'track', got {box!r}")
        self.path = Path(path)
        self.box = box
        self._file: TextIO | None = None
        self.rows = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="ascii")  # noqa: SIM115  (held until close())

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event] = ()) -> None:
        self.write_rows(frame.index + 1, tracks)

    def write_rows(self, frame_number: int, tracks: Detections) -> None:
        if len(tracks) and self._file is not None:
            self._file.write(format_mot(frame_number, tracks, self.box))
            self._file.flush()
            self.rows += len(tracks)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
