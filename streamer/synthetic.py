"""Synthetic videos with exact ground truth, for tests and the out-of-the-box demo.

Rectangles of distinct colours move at constant velocity over a textured background;
their boxes per frame are known exactly, and can be written as a MOT ``det.txt`` so the
whole pipeline runs without detector weights.
"""

from __future__ import annotations

import threading

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["MovingBox", "render", "encode_video", "write_video", "write_mot", "demo_objects"]


@dataclass(frozen=True)
class MovingBox:
    """A ``w`` x ``h`` box whose top-left corner starts at ``(x, y)`` and moves
    ``(vx, vy)`` pixels per frame, visible from ``start`` to ``end`` (exclusive)."""

    x: float
    y: float
    w: int
    h: int
    vx: float
    vy: float
    color: tuple[int, int, int]
    start: int = 0
    end: int = 10**9

    def box(self, frame: int) -> tuple[int, int, int, int] | None:
        """Integer xyxy box at ``frame``, or None when not visible."""
        if not self.start <= frame < self.end:
            return None
        x1 = int(round(self.x + self.vx * frame))
        y1 = int(round(self.y + self.vy * frame))
        return x1, y1, x1 + self.w, y1 + self.h


def _background(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    grey = (90 + 30 * np.sin(xx / 23.0) * np.cos(yy / 31.0)).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def render(objects: list[MovingBox], frame: int, height: int, width: int) -> tuple[np.ndarray, list]:
    """The RGB image of ``frame`` and the visible boxes clipped to it, as
    ``(object_index, (x1, y1, x2, y2))`` pairs."""
    image = _background(height, width)
    truth = []
    for i, obj in enumerate(objects):
        box = obj.box(frame)
        if box is None:
            continue
        x1, y1, x2, y2 = max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        image[y1:y2, x1:x2] = obj.color
        truth.append((i, (x1, y1, x2, y2)))
    return image, truth


def encode_video(path: str | Path, images: Iterable[np.ndarray], size: tuple[int, int], fps: Fraction | int = 25,
                 codec: str = "libx264", crf: int = 12, gop: int | None = None) -> None:
    """Encode RGB ``images`` of ``size`` ``(h, w)``; image ``k`` gets pts ``k`` in a
    ``1 / fps`` time base. ``gop``: a keyframe exactly every ``gop`` frames (x264: no
    scene-cut keyframes), else the encoder's choice."""
    from sinks.video import add_video_stream

    height, width = size
    with av.open(str(path), mode="w") as container:
        stream = add_video_stream(container, Fraction(fps), width, height, codec, crf)
        if gop is not None:
            stream.codec_context.gop_size = gop
            if codec == "libx264":
                stream.codec_context.options = {**stream.codec_context.options,
                                                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        for k, image in enumerate(images):
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
            vf.pts = k
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_video(
    path: str | Path,
    objects: list[MovingBox],
    frames: int,
    size: tuple[int, int] = (240, 320),
    fps: Fraction | int = 25,
    codec: str = "libx264",
    gop: int | None = None,
    stop: threading.Event | None = None,
) -> list[list]:
    """Encode ``frames`` frames of ``size`` ``(h, w)``; returns the ground truth per frame.

    Frame ``k`` has pts ``k`` in a ``1 / fps`` time base; ``gop``: a keyframe every
    ``gop`` frames exactly. ``stop``, once set, ends the video there (a whole file).
    """
    truth = []

    def images():
        for k in range(frames):
            if stop is not None and stop.is_set():
                return
            image, boxes = render(objects, k, *size)
            truth.append(boxes)
            yield image

    encode_video(path, images(), size, fps, codec, gop=gop)
    return truth


def write_mot(path: str | Path, truth: list[list], score: float = 0.99) -> None:
    """The ground truth as a MOT ``det.txt`` (frames 1-based, id -1)."""
    lines = []
    for k, boxes in enumerate(truth, 1):
        for _, (x1, y1, x2, y2) in boxes:
            lines.append(f"{k},-1,{x1},{y1},{x2 - x1},{y2 - y1},{score},-1,-1,-1\n")
    Path(path).write_text("".join(lines))


def demo_objects() -> list[MovingBox]:
    """Five objects crossing a 640x360 scene, two of them passing each other."""
    return [
        MovingBox(-40, 60, 40, 90, 4.0, 0.5, (230, 25, 75)),
        MovingBox(660, 150, 45, 100, -3.5, 0.0, (60, 180, 75)),
        MovingBox(100, 250, 80, 50, 2.5, -0.8, (255, 225, 25), start=20),
        MovingBox(320, -60, 50, 50, 0.0, 3.0, (0, 130, 200), start=10, end=140),
        MovingBox(500, 300, 35, 70, -2.0, -1.5, (245, 130, 48), start=40),
    ]
