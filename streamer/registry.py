"""Config names to classes, imported only when used.

``streamer`` reaches concrete trackers, sinks and detectors only through here, so that
importing the pipeline loads neither torch nor a tracker it does not run.
"""

from __future__ import annotations

import importlib
from typing import Any

from streamer.errors import ConfigError

TRACKERS = {
    "sort": "trackers.sort:Sort",
    "bytetrack": "trackers.bytetrack:ByteTrack",
    "ocsort": "trackers.ocsort:OcSort",
}
DETECTORS = {
    "yolo": "streamer.detectors.yolo:YoloDetector",
    "mot": "streamer.detectors.mot:MotDetector",
}
SINKS = {
    "video": "sinks.video:VideoSink",
    "jsonl": "sinks.events:JsonlSink",
    "mot": "sinks.mot:MotSink",
    "stdout": "sinks.events:StdoutSink",
    "delivery": "sinks.delivery:DeliverySink",
}


def resolve(table: dict[str, str], kind: str, name: str) -> Any:
    """The class registered as ``name`` in ``table``."""
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of {', '.join(sorted(table))}")
    module, attr = table[name].split(":")
    return getattr(importlib.import_module(module), attr)


def create_tracker(name: str, **kwargs: Any) -> Any:
    """A new tracker instance; ``kwargs`` go to its constructor."""
    return resolve(TRACKERS, "tracker", name)(**kwargs)
