"""Event files: one JSON object per line (JSONL), schema ``SCHEMA_VERSION``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence, TextIO

from streamer.types import Detections, Event, Frame

__all__ = ["JsonlSink", "SCHEMA_VERSION", "event_json"]

SCHEMA_VERSION = 1


def event_json(event: Event) -> str:
    """One event as a compact JSON line (without the newline)."""
    return json.dumps({"v": SCHEMA_VERSION, **event.to_dict()}, separators=(",", ":"))


class JsonlSink:
    """Appends events to a JSONL file; each frame's events are flushed whole, so the file
    parses line by line also after a crash."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._file: TextIO | None = None

    def __enter__(self) -> "JsonlSink":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")
        return self

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None:
        self.write_events(events)

    def write_events(self, events: Sequence[Event]) -> None:
        """Events not tied to a frame's pixels (those raised at the end of a stream)."""
        if events and self._file is not None:
            self._file.write("".join(event_json(e) + "\n" for e in events))
            self._file.flush()
            self.count += len(events)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __exit__(self, *exc: object) -> None:
        self.close()
