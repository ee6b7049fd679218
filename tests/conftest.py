"""Shared fixtures: the real data in ../shared/data, tiny synthetic videos, and a real
RTSP server (GStreamer's, from Debian packages that .ci/run installs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import DATA, LIVE_OBJECTS, OBJECTS, REPO, Server, free_port, write_raw_clip

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


RTSP_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi and gst-rtsp-server


class RtspServer(Server):
    """tests/rtsp_server.py serving looping clips at ``/<name>``."""

    def url(self, mount: str = "cam", credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}/{mount}"


@pytest.fixture()
def rtsp_server(tmp_path):
    """Start a real RTSP server: ``rtsp_server(["cam"], fps=30)``; stopped at the end."""
    check = subprocess.run(
        [RTSP_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
         "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('appsrc')"],
        capture_output=True,
    )
    if check.returncode != 0:
        pytest.skip("GStreamer RTSP server missing: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly")
    clip = write_raw_clip(tmp_path / "live.rgb", LIVE_OBJECTS, 150)
    servers: list[RtspServer] = []

    def start(mounts=("cam",), fps: int = 30) -> RtspServer:
        port = free_port()
        argv = [RTSP_PYTHON, str(REPO / "tests" / "rtsp_server.py"), "--port", str(port), "--size", "320x240",
                "--fps", str(fps), *[f"/{m}={clip}" for m in mounts]]
        server = RtspServer(argv, port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(kill=True)
