"""Constants and helpers shared by the tests (importable: tests/ is on pytest's path)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from streamer.synthetic import MovingBox, write_mot, write_video
from streamer.testing import (  # noqa: F401  (re-exported for the tests)
    LIVE_OBJECTS,
    BlobDetector,
    RtspServer,
    Server,
    free_port,
    write_raw_clip,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("STREAMER_DATA", REPO.parent / "shared" / "data"))
MOT15_SEQS = [
    "ADL-Rundle-6", "ADL-Rundle-8", "ETH-Bahnhof", "ETH-Pedcross2", "ETH-Sunnyday",
    "KITTI-13", "KITTI-17", "PETS09-S2L1", "TUD-Campus", "TUD-Stadtmitte", "Venice-2",
]

# Two boxes crossing a 320x240 scene; ground truth is exact (integer positions).
OBJECTS = [
    MovingBox(10, 40, 40, 60, 6.0, 1.0, (230, 25, 75)),
    MovingBox(270, 120, 30, 50, -5.0, -1.0, (0, 130, 200)),
]
# The same two, slow enough (2 px/frame) to keep their tracks across skipped frames.
SLOW = [
    MovingBox(10, 40, 40, 60, 2.0, 0.5, (230, 25, 75)),
    MovingBox(270, 120, 30, 50, -2.0, 0.0, (0, 130, 200)),
]


def clip_with_detections(folder: Path, objects: list, frames: int, size: tuple[int, int] = (240, 320),
                         name: str = "clip.mp4") -> tuple[Path, Path, list]:
    """A 25 fps clip of ``objects`` in ``folder`` and its exact detections as a MOT
    ``det.txt``; returns the two paths and the ground truth per frame."""
    path = folder / name
    truth = write_video(path, objects, frames, size, 25)
    det = folder / f"{path.stem}-det.txt"
    write_mot(det, truth)
    return path, det, truth


def video_images(path, n: int) -> list:
    """The first ``n`` frames of a video as RGB arrays."""
    import av

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return out


@contextlib.contextmanager
def http_server(handler):
    """A real HTTP server on a free local port, serving ``handler`` on a thread; yields its URL."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def binary(name: str, package: str | None = None) -> str:
    """Path of a server binary, or skip saying which Debian package to install."""
    import shutil

    import pytest

    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {package or name.split('-')[0]})")
    return path


def run_in_thread(pipeline) -> tuple:
    """``pipeline.run()`` on a thread; the dict it returns gets ``summary`` or ``error``."""
    import threading

    result: dict = {}

    def target():
        try:
            result["summary"] = pipeline.run()
        except BaseException as exc:  # reported by the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def wait_for(condition, timeout: float = 20.0, what: str = "the condition") -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
