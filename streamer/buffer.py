"""A bounded queue between a producer and a consumer thread, with a stated drop policy."""

from __future__ import annotations

import collections
import threading
import time
from typing import Generic, TypeVar

__all__ = ["RingBuffer", "Closed"]

T = TypeVar("T")


class Closed(Exception):
    """The buffer was closed and holds nothing more."""


class RingBuffer(Generic[T]):
    """Holds at most ``size`` items.

    Policies:
        ``block``: ``put`` waits for room (lossless; for files).
        ``drop_oldest``: ``put`` never waits; when full the oldest item is discarded and
            counted in ``dropped`` (bounded latency; for live sources).

    ``close()`` ends the stream: ``get`` returns what is left, then raises :class:`Closed`.
    """

    def __init__(self, size: int, policy: str = "block") -> None:
        if size < 1:
            raise ValueError(f"RingBuffer: size must be >= 1, got {size}")
        if policy not in ("block", "drop_oldest"):
            raise ValueError(f"RingBuffer: policy must be 'block' or 'drop_oldest', got {policy!r}")
        self.size = size
        self.policy = policy
        self.dropped = 0
        self.put_count = 0
        self.high_water = 0
        self._items: collections.deque[T] = collections.deque()
        self._closed = False
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Add ``item``; ``False`` if the buffer is closed or ``timeout`` passed (block)."""
        with self._lock:
            if self.policy == "block":
                if not self._not_full.wait_for(
                    lambda: self._closed or len(self._items) < self.size, timeout
                ):
                    return False
            if self._closed:
                return False
            if len(self._items) >= self.size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self.high_water = max(self.high_water, len(self._items))
            self._not_empty.notify()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item; ``None`` after ``timeout``; raises :class:`Closed` at the end."""
        with self._lock:
            if not self._not_empty.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if self._items:
                item = self._items.popleft()
                self._not_full.notify()
                return item
            raise Closed

    def get_many(self, limit: int, wait: float) -> list[T]:
        """Up to ``limit`` items: waits for the first as long as needed (raising
        :class:`Closed` at the end), then at most ``wait`` seconds for the rest."""
        first = None
        while first is None:
            first = self.get(timeout=0.1)
        items = [first]
        deadline = None
        while len(items) < limit:
            with self._lock:
                if not self._items:
                    if self._closed:
                        break
                    if deadline is None:
                        deadline = time.monotonic() + wait
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._not_empty.wait_for(
                        lambda: self._items or self._closed, remaining
                    ):
                        break
                    if not self._items:
                        break
                items.append(self._items.popleft())
                self._not_full.notify()
        return items

    def close(self) -> None:
        """No more puts; waiting getters drain what is left, then see :class:`Closed`."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
