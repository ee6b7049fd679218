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
        class_name: Name of the single class the file holds.
    """

    def __init__(self, detections: str | Path, conf: float = 0.0, class_name: str = "person") -> None:
        self.path = Path(detections)
        self._by_frame = read_detections(self.path)
        self.conf = conf
        self.names = {0: class_name}
        self.backend = f"mot replay of {self.path.name}"

    def __call__(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for frame in frames:
            dets = self._by_frame.get(frame.index + 1)
            if dets is None:
                out.append(Detections.empty())
            else:
                out.append(dets[dets.confidence >= self.conf] if self.conf > 0 else dets)
        return out

    def stage_seconds(self) -> dict[str, float]:
        """A lookup has no steps worth timing."""
        return {}
