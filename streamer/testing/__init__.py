"""Real parts for tests and benchmarks of streamer (and of code built on it): a detector
for the synthetic scenes, raw clips and a real RTSP server to serve them, and helpers
to run servers on free local ports.

Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamer.synthetic import MovingBox, render
from streamer.types import Detections, Frame

__all__ = [
    "LIVE_OBJECTS", "RTSP_PACKAGES", "RTSP_PYTHON", "BlobDetector", "RtspServer", "Server", "WebhookReceiver",
    "free_port", "rtsp_server_available", "wait_port", "write_raw_clip",
]

# A loop of 150 frames (5 s at 30 fps): two boxes crossing a 320x240 scene.
LIVE_OBJECTS = [
    MovingBox(10, 40, 40, 60, 2.0, 0.5, (230, 25, 75)),
    MovingBox(270, 120, 30, 50, -1.6, 0.0, (0, 130, 200)),
]

RTSP_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi and gst-rtsp-server
RTSP_PACKAGES = ("python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
                 "gstreamer1.0-plugins-ugly")
RTSP_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def write_raw_clip(path: Path, objects: list, frames: int, size: tuple[int, int] = (240, 320)) -> Path:
    """Frames of ``objects`` as raw RGB bytes, back to back (what the RTSP server serves)."""
    with open(path, "wb") as f:
        for i in range(frames):
            image, _ = render(objects, i, *size)
            f.write(np.ascontiguousarray(image).tobytes())
    return path


class BlobDetector:
    """Finds the saturated boxes of the synthetic scenes (the background is grey): a
    real detector for those scenes, with no weights, so live tests can check tracks.

    ``seconds_per_frame`` makes it deliberately slow (time per frame of a batch).
    """

    names = {0: "box"}
    backend = "blob finder (synthetic scenes)"

    def __init__(self, seconds_per_frame: float = 0.0) -> None:
        import cv2

        self._cv2 = cv2
        self.seconds_per_frame = seconds_per_frame
        self.calls = 0

    def __call__(self, frames: list[Frame]) -> list[Detections]:
        cv2 = self._cv2
        if self.seconds_per_frame:
            time.sleep(self.seconds_per_frame * len(frames))
        self.calls += 1
        out = []
        for frame in frames:
            image = frame.image.astype(np.int16)
            mask = ((image.max(2) - image.min(2)) > 60).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 100]
            xyxy = [(stats[i, 0], stats[i, 1], stats[i, 0] + stats[i, 2], stats[i, 1] + stats[i, 3]) for i in keep]
            out.append(Detections(np.asarray(xyxy, np.float32).reshape(-1, 4), np.full(len(keep), 0.9)))
        return out

    def stage_seconds(self) -> dict[str, float]:
        return {}


class WebhookReceiver:
    """A real webhook endpoint on a free local port, served on a thread: it keeps every
    event it accepted, and answers 503 while ``refusing`` is set. ``with
    WebhookReceiver() as hook:`` serves it at ``hook.url`` (or :meth:`start` / :meth:`close`)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.refusing = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.refusing.is_set():
                    self.send_response(503)
                else:
                    receiver.events.extend(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    """A local port nothing listens on (bound, then released): for a server to start on,
    or as an address where nothing answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Returns once ``proc`` listens on ``port``; raises if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Server:
    """A server process that can be stopped (or killed) and started again on the same port."""

    def __init__(self, argv: list[str], port: int) -> None:
        self.argv, self.port = argv, port
        self.proc: subprocess.Popen | None = None
        self.ready_at = 0.0  # wall clock when it last started listening

    def start(self) -> Server:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        self.ready_at = time.time()
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()  # a crash: no goodbye to the clients
            else:
                self.proc.terminate()  # graceful: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None


def rtsp_server_available() -> bool:
    """Whether Debian's python3 can run the GStreamer RTSP server (packages: RTSP_PACKAGES)."""
    if not shutil.which(RTSP_PYTHON):
        return False
    check = subprocess.run(
        [RTSP_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
         "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('appsrc')"],
        capture_output=True, check=False,
    )
    return check.returncode == 0


class RtspServer(Server):
    """GStreamer's RTSP server serving raw clips, looped, at ``/<mount>``.

    Args:
        clips: Mount name to raw RGB clip (see :func:`write_raw_clip`).
        size: ``(width, height)`` of the clips.
    """

    def __init__(self, clips: dict[str, Any], fps: int = 30, size: tuple[int, int] = (320, 240),
                 port: int | None = None) -> None:
        port = port or free_port()
        argv = [RTSP_PYTHON, str(RTSP_SCRIPT), "--port", str(port), "--size", f"{size[0]}x{size[1]}",
                "--fps", str(fps), *[f"/{m}={clip}" for m, clip in clips.items()]]
        super().__init__(argv, port)

    def url(self, mount: str = "cam", credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}/{mount}"
