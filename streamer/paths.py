"""No output may overwrite an input, nor another output: checked before anything is opened
for writing (an output path equal to the input video used to truncate it first)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from streamer.errors import ConfigError

__all__ = ["check_overwrites", "file_sha256"]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):  # symlinks and '..' resolved
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def check_overwrites(inputs: Mapping[str, str | None], outputs: Mapping[str, str | None]) -> None:
    """Raises ConfigError naming the fields when an output is an input or another output.

    Args:
        inputs: Config field to the file it reads (non-files such as URLs are skipped).
        outputs: Config field to the file it writes (``-``, standard output, is skipped).
    """
    files = {k: v for k, v in inputs.items() if v and os.path.isfile(v)}
    written = [(k, v) for k, v in outputs.items() if v and v != "-"]
    for name, path in written:
        for source, read in files.items():
            if _same(path, read):
                raise ConfigError(f"{name}: {path} is the input {source}; it would be overwritten. "
                                  f"Write the output elsewhere")
    for i, (name, path) in enumerate(written):
        for other, other_path in written[i + 1:]:
            if _same(path, other_path):
                raise ConfigError(f"{name} and {other} are the same file ({path}); give each its own path")
