"""Letterboxing: resize keeping the aspect ratio, pad to the network's shape, and back.

One geometry (:class:`Letterbox`), two pixel paths that agree to one grey level: numpy
with ``cv2.resize`` (INTER_LINEAR) and torch with ``F.interpolate`` (bilinear, no
antialias, which is the same sampling). The geometry follows ultralytics' ``LetterBox``
(same rounding, same centred padding with grey 114), so both feed a YOLO model the
pixels its own predictor would.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Letterbox", "letterbox_shape", "PAD_VALUE"]

PAD_VALUE = 114


def letterbox_shape(shape: tuple[int, int], imgsz: int, stride: int, rect: bool) -> tuple[int, int]:
    """Network input ``(height, width)`` for an image of ``shape``.

    ``rect`` gives the smallest stride-aligned rectangle holding the resized image
    (ultralytics' ``auto=True``); otherwise a square ``imgsz`` x ``imgsz``.
    """
    if not rect:
        return imgsz, imgsz
    h, w = shape
    r = min(imgsz / h, imgsz / w)
    nh, nw = round(h * r), round(w * r)
    return nh + (imgsz - nh) % stride, nw + (imgsz - nw) % stride


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``src`` ``(h, w)`` maps into a network input of ``dst`` ``(h, w)``.

    Attributes:
        src: Original ``(height, width)``.
        dst: Network input ``(height, width)``.
        size: Resized image ``(height, width)`` inside ``dst``.
        top, left: Padding before the image, in pixels.
    """

    src: tuple[int, int]
    dst: tuple[int, int]
    size: tuple[int, int]
    top: int
    left: int

    @classmethod
    def fit(cls, src: tuple[int, int], dst: tuple[int, int]) -> Letterbox:
        h, w = src
        r = min(dst[0] / h, dst[1] / w)
        size = (round(h * r), round(w * r))
        dh, dw = (dst[0] - size[0]) / 2, (dst[1] - size[1]) / 2
        # ultralytics rounds the two sides apart so that odd padding splits the same way.
        return cls(src, dst, size, round(dh - 0.1), round(dw - 0.1))

    @property
    def scale(self) -> tuple[float, float]:
        """Exact ``(sy, sx)`` of the resize: resized size over original size."""
        return self.size[0] / self.src[0], self.size[1] / self.src[1]

    def apply(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``image`` ``(H, W, 3)`` uint8 letterboxed to ``dst`` (numpy/cv2 path)."""
        if out is None:
            out = np.empty((*self.dst, image.shape[2]), np.uint8)
        out[...] = PAD_VALUE
        h, w = self.size
        region = out[self.top : self.top + h, self.left : self.left + w]
        if (h, w) == image.shape[:2]:
            region[...] = image
        else:
            cv2.resize(image, (w, h), dst=region, interpolation=cv2.INTER_LINEAR)
        return out

    def apply_torch(self, image: torch.Tensor) -> torch.Tensor:  # noqa: F821
        """``(3, H, W)`` tensor (any float or uint8 dtype) letterboxed to ``(3, *dst)``
        float32 in 0-255 (torch path, runs on the tensor's device)."""
        import torch
        import torch.nn.functional as F

        x = image.float()[None]
        h, w = self.size
        if (h, w) != tuple(image.shape[1:]):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
            x = x.round_().clamp_(0, 255)
        out = torch.full((1, image.shape[0], *self.dst), float(PAD_VALUE), device=image.device)
        out[:, :, self.top : self.top + h, self.left : self.left + w] = x
        return out[0]

    def boxes_to_source(self, xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from network-input to original pixels (exact inverse
        of the resize and padding)."""
        sy, sx = self.scale
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, [0, 2]] = (xyxy[:, [0, 2]] - self.left) / sx
        out[:, [1, 3]] = (xyxy[:, [1, 3]] - self.top) / sy
        if clip:
            out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.src[1])
            out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.src[0])
        return out

    def boxes_to_input(self, xyxy: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from original to network-input pixels."""
        sy, sx = self.scale
        out = np.empty_like(xyxy, dtype=np.float64)
        out[:, [0, 2]] = xyxy[:, [0, 2]] * sx + self.left
        out[:, [1, 3]] = xyxy[:, [1, 3]] * sy + self.top
        return out
