"""Detectors: ``__call__(frames) -> list[Detections]``, one result per frame.

``yolo`` runs ultralytics weights in batches, its forward pass on a backend (``backends``:
torch, ONNX Runtime, OpenVINO, TensorRT; ``export`` makes and caches their models); ``mot``
replays a MOT ``det.txt``. The protocol they implement is
:class:`streamer.protocols.Detector`.
"""

from streamer.protocols import Detector

__all__ = ["Detector"]
