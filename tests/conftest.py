"""Shared fixtures: the real data in ../shared/data, tiny synthetic videos, and a real
RTSP server (GStreamer's, from Debian packages that .ci/run installs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATA, LIVE_OBJECTS, OBJECTS

from streamer.synthetic import write_video
from streamer.testing import RTSP_PACKAGES, RtspServer, rtsp_server_available, write_raw_clip


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


@pytest.fixture()
def rtsp_server(tmp_path):
    """Start a real RTSP server: ``rtsp_server(["cam"], fps=30)``; stopped at the end."""
    if not rtsp_server_available():
        pytest.skip(f"GStreamer RTSP server missing: apt-get install {RTSP_PACKAGES}")
    clip = write_raw_clip(tmp_path / "live.rgb", LIVE_OBJECTS, 150)
    servers: list[RtspServer] = []

    def start(mounts=("cam",), fps: int = 30) -> RtspServer:
        server = RtspServer({m: clip for m in mounts}, fps=fps).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(kill=True)
