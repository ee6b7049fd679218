"""Event files and streams: JSONL (with size-based rotation) and stdout.

Each line is one event as a JSON object of schema ``SCHEMA_VERSION``
(``streamer/schema/events-v1.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from collections.abc import Sequence
from typing import TextIO

from streamer.protocols import Sink
from streamer.types import Detections, Event, Frame

__all__ = ["JsonlSink", "StdoutSink", "SCHEMA_VERSION", "SCHEMA_FILE", "event_json"]

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "streamer" / "schema" / f"events-v{SCHEMA_VERSION}.json"


def event_json(event: Event) -> str:
    """One event as a compact JSON line (without the newline)."""
    return json.dumps({"v": SCHEMA_VERSION, **event.to_dict()}, separators=(",", ":"))


class JsonlSink(Sink):
    """Appends events to a JSONL file; each frame's events are flushed whole, so the file
    parses line by line also after a crash.

    Args:
        path: The file.
        max_bytes: Rotate when the file would grow past this size: ``events.jsonl``
            becomes ``events.jsonl.1`` (older ones shift to ``.2`` ...). None: never.
        backups: Rotated files kept.
    """

    def __init__(self, path: str | Path, max_bytes: int | None = None, backups: int = 5) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.count = 0
        self._file: TextIO | None = None
        self._size = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115  (held until close())
        self._size = 0

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None:
        self.write_events(events)

    def write_events(self, events: Sequence[Event]) -> None:
        """Events not tied to a frame's pixels (those raised at the end of a stream)."""
        if not events or self._file is None:
            return
        for event in events:
            line = event_json(event) + "\n"
            if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            self._file.write(line)
            self._size += len(line)
        self._file.flush()
        self.count += len(events)

    def _rotate(self) -> None:
        self._file.close()
        for k in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{k}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{k + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115  (held until close())
        self._size = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StdoutSink(Sink):
    """Events as JSON lines on standard output (for piping into another program)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.count = 0

    def write(self, frame: Frame, tracks: Detections, events: Sequence[Event]) -> None:
        self.write_events(events)

    def write_events(self, events: Sequence[Event]) -> None:
        if events:
            self.stream.write("".join(event_json(e) + "\n" for e in events))
            self.stream.flush()
            self.count += len(events)

    def close(self) -> None:
        self.stream.flush()
