"""A durable, ordered on-disk queue of events (SQLite), shared by the network sinks.

Events are appended by the pipeline thread (one transaction per frame, about a tenth of a
millisecond) and removed by the delivery thread only after the endpoint acknowledged
them, so a crash (even ``kill -9``) or an endpoint outage loses nothing: whatever is in
the file is delivered, in order, by this run or the next one that opens it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Sequence

__all__ = ["Outbox"]


class Outbox:
    """An append-only queue in a SQLite file, read in order and acknowledged in batches.

    Args:
        path: The SQLite file; created with its folder when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL: readers and the writer do not block each other; NORMAL sync survives a
        # process crash (the OS has the pages), which is what kill -9 is.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)")

    def append(self, payloads: Sequence[str]) -> None:
        """Add payloads at the end, atomically."""
        if not payloads:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO outbox (payload) VALUES (?)", [(p,) for p in payloads])
            self._db.execute("COMMIT")

    def peek(self, limit: int) -> list[tuple[int, str]]:
        """The oldest ``limit`` entries as ``(seq, payload)``, not removed."""
        with self._lock:
            return self._db.execute("SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def ack(self, up_to: int) -> None:
        """Remove every entry up to and including ``seq`` ``up_to``."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq <= ?", (up_to,))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
