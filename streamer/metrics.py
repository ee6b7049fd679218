"""Measurements: per-stage timing (safe to update from several threads), latency, memory,
and the figures a run reports per source and in all."""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from streamer.types import DeliveryStats, Event

__all__ = ["Latency", "SourceSummary", "StageTimes", "Summary", "rss_bytes"]


class StageTimes:
    """The one clock of a run's stages: wall time, calls and the longest call per stage.

    ``calls`` counts units of work (frames for a batched detector call), so that
    ``seconds / calls`` is a per-frame cost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.longest: dict[str, float] = {}

    def add(self, stage: str, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
            self.calls[stage] = self.calls.get(stage, 0) + calls
            self.longest[stage] = max(self.longest.get(stage, 0.0), seconds)

    @contextmanager
    def time(self, stage: str, calls: int = 1) -> Iterator[None]:
        """Times the ``with`` block as ``calls`` units of ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start, calls)

    def per_frame_ms(self, frames: int) -> dict[str, float]:
        """Milliseconds per processed frame of each stage."""
        return {k: 1000.0 * v / max(frames, 1) for k, v in self.seconds.items()}


class Latency:
    """A latency distribution in constant memory: counts in log-spaced bins (about 2.3%
    wide, from 1 ms to ~3 h), enough for p50/p99 over weeks of frames."""

    _LOW = 1e-3
    _STEP = 1.023

    def __init__(self) -> None:
        self.counts = np.zeros(700, np.int64)
        self.n = 0
        self.max = 0.0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        i = 0 if seconds <= self._LOW else int(math.log(seconds / self._LOW, self._STEP)) + 1
        self.counts[min(i, len(self.counts) - 1)] += 1
        self.n += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def copy(self) -> Latency:
        out = Latency()
        out.counts, out.n, out.max, out.total = self.counts.copy(), self.n, self.max, self.total
        return out

    def since(self, earlier: Latency) -> Latency:
        """The samples added after ``earlier`` (a :meth:`copy` of this one); ``max`` stays
        the overall maximum, which bounds the window's."""
        out = Latency()
        out.counts, out.n, out.max = self.counts - earlier.counts, self.n - earlier.n, self.max
        out.total = self.total - earlier.total
        return out

    def cumulative(self, bounds: Sequence[float]) -> list[int]:
        """Samples at or below each bound (to within a bin, 2.3%), as a Prometheus
        histogram's buckets count them."""
        edges = self._LOW * self._STEP ** np.arange(len(self.counts))  # each bin's upper edge
        totals = np.cumsum(self.counts)
        out = []
        for b in bounds:
            i = int(np.searchsorted(edges, b * (1 + 1e-9), side="right")) - 1
            out.append(int(totals[i]) if i >= 0 else 0)
        return out

    def quantile(self, q: float) -> float | None:
        """Upper edge of the bin holding quantile ``q`` (None before any sample)."""
        if not self.n:
            return None
        i = int(np.searchsorted(np.cumsum(self.counts), q * self.n))
        return min(self._LOW * self._STEP ** i, self.max)


def rss_bytes() -> int | None:
    """Resident memory of this process now (Linux; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hands the memory malloc holds free back to the system (glibc's ``malloc_trim``;
    nothing elsewhere). Frames of a few hundred KB come from malloc's arenas, one per
    thread that allocates them, and what is freed in the middle of an arena stays
    resident: over a day of cameras reconnecting, RSS creeps while the memory in use is
    flat. The pipeline calls this once a minute."""
    if _TRIM is not None:
        _TRIM(0)


@dataclass
class SourceSummary:
    """What a run did with one source."""

    id: str
    label: str
    live: bool
    frames: int = 0
    detected: int = 0
    events: int = 0
    tracks: int = 0
    dropped: int = 0
    downs: int = 0
    downtime: float = 0.0  # closed outages, and the one still open at the end
    down_since: float | None = None  # wall clock of the open outage (None: up)
    reconnects: list[float] = field(default_factory=list)  # seconds down, per reconnect
    latency: Latency = field(default_factory=Latency)
    error: str | None = None
    event_types: dict[str, int] = field(default_factory=dict)  # events raised, by type

    def count_events(self, events: Sequence[Event]) -> None:
        self.events += len(events)
        for e in events:
            self.event_types[e.type] = self.event_types.get(e.type, 0) + 1

    @property
    def drop_rate(self) -> float:
        offered = self.frames + self.dropped
        return self.dropped / offered if offered else 0.0


@dataclass
class Summary:
    """What a run did, in all and per source."""

    source: str
    detector: str = ""  # what ran the detector and why (Detector.backend)
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)
    sources: dict[str, SourceSummary] = field(default_factory=dict)
    retired: list[SourceSummary] = field(default_factory=list)  # sources removed while running
    sinks: list[DeliveryStats] = field(default_factory=list)  # the network sinks, as they ended

    def _total(self, name: str) -> int:
        return sum(getattr(s, name) for s in [*self.sources.values(), *self.retired])

    @property
    def frames(self) -> int:
        return self._total("frames")

    @property
    def detected(self) -> int:
        return self._total("detected")

    @property
    def events(self) -> int:
        return self._total("events")

    @property
    def tracks(self) -> int:
        return self._total("tracks")

    @property
    def dropped(self) -> int:
        return self._total("dropped")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0
