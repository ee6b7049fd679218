"""Shared fixtures: the real data in ../shared/data and tiny synthetic videos."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import DATA, OBJECTS

from streamer.synthetic import write_video



@pytest.fixture(scope="session")
def data() -> Path:
    """The shared evaluation data; tests using it skip where it is absent."""
    if not (DATA / "mot15").is_dir():
        pytest.skip(f"real data not found at {DATA} (set STREAMER_DATA to the shared/data folder)")
    return DATA




@pytest.fixture()
def tiny_video(tmp_path: Path) -> tuple[Path, list]:
    """A 40-frame 25 fps H.264 MP4 and its ground truth per frame."""
    path = tmp_path / "tiny.mp4"
    truth = write_video(path, OBJECTS, 40, (240, 320), 25)
    return path, truth
