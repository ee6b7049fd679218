"""Detectors: ``__call__(frames) -> list[Detections]``, one result per frame.

``yolo`` runs ultralytics weights in batches; ``mot`` replays a MOT ``det.txt``.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from streamer.types import Detections, Frame


class Detector(Protocol):
    """Finds objects in frames.

    Attributes:
        names: Class id to class name.
    """

    names: dict[int, str]

    def __call__(self, frames: Sequence[Frame]) -> list[Detections]: ...
