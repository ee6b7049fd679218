"""Constants and helpers shared by the tests (importable: tests/ is on pytest's path)."""

from __future__ import annotations

import os
from pathlib import Path

from streamer.synthetic import MovingBox, write_mot, write_video

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


def free_port() -> int:
    """A local port nothing listens on (bound, then released): for a server to start on,
    or as an address where nothing answers."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str, package: str | None = None) -> str:
    """Path of a server binary, or skip saying which Debian package to install."""
    import shutil

    import pytest

    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {package or name.split('-')[0]})")
    return path


def wait_port(port: int, proc, timeout: float = 10.0) -> None:
    import socket
    import time

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
        self.proc = None
        self.ready_at = 0.0  # wall clock when it last started listening

    def start(self) -> Server:
        import subprocess
        import time

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


# A loop of 150 frames (5 s at 30 fps): two boxes crossing a 320x240 scene.
LIVE_OBJECTS = [
    MovingBox(10, 40, 40, 60, 2.0, 0.5, (230, 25, 75)),
    MovingBox(270, 120, 30, 50, -1.6, 0.0, (0, 130, 200)),
]


def write_raw_clip(path: Path, objects: list, frames: int, size: tuple[int, int] = (240, 320)) -> Path:
    """Frames of ``objects`` as raw RGB bytes, back to back (what tests/rtsp_server.py serves)."""
    import numpy as np

    from streamer.synthetic import render

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

    def __init__(self, seconds_per_frame: float = 0.0) -> None:
        self.seconds_per_frame = seconds_per_frame
        self.calls = 0

    def __call__(self, frames: list) -> list:
        import time

        import cv2
        import numpy as np

        from streamer.types import Detections

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
