"""Replays public detections from a MOT ``det.txt`` (MOTChallenge public-detection protocol)."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence


from streamer.mot import read_detections
from streamer.types import Detections, Frame

__all__ = ["MotDetector"]


class MotDetector:
    """Detections of decoded frame ``k`` (0-based) are the file's lines of frame ``k + 1``.

    Args:
        detections: Path to a MOT ``det.txt``.
        conf: Drop boxes scoring below this (0 keeps all, as the protocol does).
        class_name: Name of the single class the file holds (class id 0).
        classes: Class ids to keep (None: all); without 0, none of the file's.
        max_det: At most this many boxes per frame, the best scoring.
    """

    def __init__(self, detections: str | Path, conf: float = 0.0, class_name: str = "person",
                 classes: list[int] | None = None, max_det: int = 300) -> None:
        self.path = Path(detections)
        self._by_frame = read_detections(self.path)
        if classes is not None and 0 not in classes:  # the file's boxes are all class 0
            self._by_frame = {}
        self.conf, self.max_det = conf, max_det
        self.names = {0: class_name}
        self.backend = f"mot replay of {self.path.name}"

    def __call__(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for frame in frames:
            dets = self._by_frame.get(frame.index + 1)
            if dets is None:
                out.append(Detections.empty())
            else:
                if self.conf > 0:
                    dets = dets[dets.confidence >= self.conf]
                out.append(dets.best(self.max_det))  # the best scoring, as a detector's max_det keeps
        return out

    def stage_seconds(self) -> dict[str, float]:
        """A lookup has no steps worth timing."""
        return {}
