"""Per-stage timing: seconds and calls per stage, safe to update from several threads."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["StageTimes"]


class StageTimes:
    """Accumulates wall time per named stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, stage: str, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
            self.calls[stage] = self.calls.get(stage, 0) + calls

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def per_frame_ms(self, frames: int) -> dict[str, float]:
        """Milliseconds per processed frame of each stage."""
        return {k: 1000.0 * v / max(frames, 1) for k, v in self.seconds.items()}
