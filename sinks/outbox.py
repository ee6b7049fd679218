"""A durable, ordered on-disk queue of events (SQLite), shared by the network sinks.

Events are appended by the pipeline thread (one transaction per frame, about a tenth of a
millisecond) and removed by the delivery thread only after the endpoint acknowledged
them, so a crash (even ``kill -9``) or an endpoint outage loses nothing: whatever is in
the file is delivered, in order, by this run or the next one that opens it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from collections.abc import Sequence

from streamer.errors import SinkError

__all__ = ["Outbox"]

log = logging.getLogger(__name__)


class Outbox:
    """An append-only queue in a SQLite file, read in order and acknowledged in batches.

    The writer (``append``, the pipeline thread) and the reader (``peek``/``ack``, the
    delivery thread) use separate connections: in WAL mode they do not wait on each
    other beyond SQLite's own short write lock.

    Args:
        path: The SQLite file; created with its folder when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except (sqlite3.DatabaseError, IsADirectoryError) as exc:
            # Garbage, a truncated file or a folder where the outbox should be: every later run
            # would fail on it. Kept aside for a person to look at; a new outbox starts.
            writer = self.__dict__.get("_writer")
            if writer is not None:
                writer.close()
            aside = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.rename(aside)
            log.warning("%s: not an outbox (%s); moved to %s, starting a new one", self.path, exc, aside)
            self._open()

    def _open(self) -> None:
        self._writer = self._connect()
        # NORMAL sync in WAL mode survives a process crash (the OS has the pages), which
        # is what kill -9 is; only a power cut can lose the last commits.
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute(
            "CREATE TABLE IF NOT EXISTS outbox "
            "(seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, payload TEXT NOT NULL)"
        )
        columns = [row[1] for row in self._writer.execute("PRAGMA table_info(outbox)")]
        if columns != ["seq", "key", "payload"]:
            self._writer.close()
            raise SinkError(
                f"{self.path}: an outbox of another layout ({', '.join(columns)}); deliver its events with the "
                f"streamer version that wrote it, or move the file away"
            )
        # Events an endpoint refused for good, with why: kept for a person to look at.
        self._writer.execute(
            "CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, "
            "payload TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL)"
        )
        self._reader = self._connect()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def append(self, entries: Sequence[tuple[str, str]]) -> None:
        """Add ``(key, payload)`` entries at the end, atomically (the key is where the
        payload goes: an MQTT topic, a Redis stream)."""
        if not entries:
            return
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            self._writer.executemany("INSERT INTO outbox (key, payload) VALUES (?, ?)", entries)
            self._writer.execute("COMMIT")

    def peek(self, limit: int, after: int = 0) -> list[tuple[int, str, str]]:
        """The oldest ``limit`` entries with ``seq > after`` as ``(seq, key, payload)``,
        not removed."""
        with self._read_lock:
            return self._reader.execute(
                "SELECT seq, key, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()

    def ack(self, up_to: int) -> None:
        """Remove every entry up to and including ``seq`` ``up_to``."""
        with self._read_lock:
            self._reader.execute("DELETE FROM outbox WHERE seq <= ?", (up_to,))

    def bury(self, entries: Sequence[tuple[int, str, str]], reason: str) -> None:
        """Move ``(seq, key, payload)`` entries to the dead letters, with ``reason``."""
        with self._read_lock:
            self._reader.execute("BEGIN IMMEDIATE")
            self._reader.executemany("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?)",
                                     [(seq, key, payload, reason, time.time()) for seq, key, payload in entries])
            self._reader.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq, _, _ in entries])
            self._reader.execute("COMMIT")

    def dead_letters(self) -> list[tuple[str, str]]:
        """``(payload, reason)`` of every event set aside, oldest first."""
        with self._read_lock:
            return self._reader.execute("SELECT payload, reason FROM dead_letters ORDER BY seq").fetchall()

    def __len__(self) -> int:
        with self._read_lock:
            return self._reader.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._writer.close()
