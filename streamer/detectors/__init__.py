"""Detectors: ``__call__(frames) -> list[Detections]``, one result per frame.

``yolo`` runs ultralytics weights in batches; ``mot`` replays a MOT ``det.txt``. The
protocol they implement is :class:`streamer.protocols.Detector`.
"""

from streamer.protocols import Detector

__all__ = ["Detector"]
