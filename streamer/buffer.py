"""Bounded queues between the decode threads and the inference thread, with a stated
drop policy, and a group that gathers batches across the queues of several sources."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BufferGroup", "Closed", "RingBuffer"]

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

    Args:
        droppable: Which items ``drop_oldest`` may discard (default: any). Others (a
            source's status changes) are always delivered, even past ``size``.
        group: The :class:`BufferGroup` this buffer belongs to (shares its lock).
    """

    def __init__(self, size: int, policy: str = "block", *, droppable: Callable[[T], bool] | None = None,
                 group: BufferGroup | None = None) -> None:
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
        self._droppable = droppable
        self._group = group
        self._lock = group.lock if group is not None else threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Add ``item``; ``False`` if the buffer is closed or ``timeout`` passed (block)."""
        with self._lock:
            if self.policy == "block" and not self._not_full.wait_for(
                lambda: self._closed or len(self._items) < self.size, timeout
            ):
                return False
            if self._closed:
                return False
            if len(self._items) >= self.size:
                self._drop_oldest()
            self._items.append(item)
            self.put_count += 1
            self.high_water = max(self.high_water, len(self._items))
            self._not_empty.notify()
            if self._group is not None:
                self._group.ready.notify()
            return True

    def _drop_oldest(self) -> None:
        if self._droppable is None:
            self._items.popleft()
            self.dropped += 1
            return
        for i, old in enumerate(self._items):
            if self._droppable(old):
                del self._items[i]
                self.dropped += 1
                return

    def _take(self) -> T:
        """The oldest item (lock held, buffer not empty)."""
        item = self._items.popleft()
        self._not_full.notify()
        return item

    def close(self) -> None:
        """No more puts; waiting getters drain what is left, then see :class:`Closed`."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
            if self._group is not None:
                self._group.ready.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class BufferGroup(Generic[T]):
    """The buffers of several sources, read together by one consumer.

    :meth:`get_batch` takes items round-robin across the buffers (one source cannot
    starve another), so a detector batch mixes streams. Buffers can be added while the
    consumer reads (a source added at runtime); a closed buffer leaves the group once it
    is drained. The group ends (``get_batch`` raises :class:`Closed`) once it is sealed
    (no buffer will be added) and every buffer is closed and drained.

    Args:
        sealed: Start sealed: the buffers added before the first read are all there is.
    """

    def __init__(self, sealed: bool = False) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.buffers: list[RingBuffer[T]] = []
        self._next = 0
        self._sealed = sealed

    def add(self, size: int, policy: str = "block", droppable: Callable[[T], bool] | None = None) -> RingBuffer[T]:
        buffer: RingBuffer[T] = RingBuffer(size, policy, droppable=droppable, group=self)
        with self.lock:
            self.buffers.append(buffer)
            self.ready.notify_all()
        return buffer

    def discard(self, buffer: RingBuffer[T]) -> None:
        """Takes a buffer out of the group, whatever it holds."""
        with self.lock:
            if buffer in self.buffers:
                self.buffers.remove(buffer)
            self.ready.notify_all()

    def seal(self) -> None:
        """No buffer will be added: the group ends once its buffers are drained."""
        with self.lock:
            self._sealed = True
            self.ready.notify_all()

    @property
    def sealed(self) -> bool:
        return self._sealed

    def _any(self) -> bool:
        return any(b._items for b in self.buffers)

    def _done(self) -> bool:
        # Drained, closed buffers leave the group, so that removed sources cost nothing.
        self.buffers = [b for b in self.buffers if b._items or not b._closed]
        return self._sealed and not self.buffers

    def _take(self, limit: int, items: list[T]) -> None:
        while len(items) < limit and self._any():
            buffer = self.buffers[self._next % len(self.buffers)]
            self._next = (self._next + 1) % len(self.buffers)
            if buffer._items:
                items.append(buffer._take())

    def get_batch(self, limit: int, wait: float) -> list[T]:
        """Up to ``limit`` items from all buffers: waits for the first as long as needed
        (raising :class:`Closed` once every buffer is closed and empty), then at most
        ``wait`` seconds for more."""
        items: list[T] = []
        with self.lock:
            while not self._any():
                if self._done():
                    raise Closed
                self.ready.wait(0.1)
            self._take(limit, items)
            deadline = time.monotonic() + wait
            while len(items) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._done():
                    break
                if not self._any():
                    self.ready.wait(remaining)
                self._take(limit, items)
        return items
