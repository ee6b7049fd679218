"""The service's desired stream set, kept on disk so that it survives a restart.

One JSON file, replaced atomically (written beside, flushed, then renamed), so a crash
leaves the old set or the new one, never half of either. It holds what the API changed
on top of the config file: the streams put (their source sections, as sent) and the ids
of config-file streams deleted. At start the config file's streams, less the deleted
ones, are overlaid with the put ones.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from streamer.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["StreamStore"]

_VERSION = 1


class StreamStore:
    """Streams put and deleted through the API (None ``path``: kept in memory only).

    Args:
        path: The JSON file; created with its folder on the first change.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.put: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            if data.get("version") != _VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {_VERSION}")
            self.put = {str(k): dict(v) for k, v in data["streams"].items()}
            self.deleted = {str(x) for x in data["deleted"]}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{path}: not a stream state file ({exc}); move it away to start from the config file's streams"
            ) from None

    def check_writable(self) -> None:
        """Raises ConfigError now, at start, when the file cannot be written (rather than
        at the first change, with the stream set already changed)."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise ConfigError(f"--state: cannot write {self.path} ({exc.strerror}); choose another file") from None

    def desired(self, configured: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The stream set to run: ``configured`` (the config file's, by id) less the
        deleted ones, with the put ones on top."""
        out = {k: v for k, v in configured.items() if k not in self.deleted}
        out.update(self.put)
        return out

    def set(self, stream_id: str, section: dict[str, Any]) -> None:
        self.put[stream_id] = section
        self.deleted.discard(stream_id)
        self._save()

    def delete(self, stream_id: str) -> None:
        self.put.pop(stream_id, None)
        self.deleted.add(stream_id)
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": _VERSION, "streams": self.put, "deleted": sorted(self.deleted)}
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
