"""Ultralytics YOLO weights run by us: letterboxed batches, one forward pass, NMS.

We take the weights' ``nn.Module`` and feed it our own batches (several frames per
forward pass, fp16 on CUDA) instead of calling ultralytics' per-image predictor; the
boxes equal ``YOLO.predict`` on the same weights (tests check it).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import torch

from streamer.errors import ModelError
from streamer.letterbox import Letterbox, letterbox_shape
from streamer.nms import non_max_suppression
from streamer.types import Detections, Frame

log = logging.getLogger(__name__)

__all__ = ["YoloDetector", "select_device"]


def select_device(device: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but torch sees no CUDA device; use device: cpu")
    return dev


def _load(weights: str):
    """An ultralytics ``YOLO`` from a path, a model name or a ``.yaml`` (random weights)."""
    from ultralytics import YOLO

    path = Path(weights)
    if path.suffix not in (".pt", ".yaml", ".yml"):
        raise ModelError(f"{weights}: expected a .pt weights file or a model .yaml")
    if path.suffix == ".pt" and path.parent != Path(".") and not path.is_file():
        raise ModelError(f"{weights}: no such weights file; check the path")
    try:
        return YOLO(weights, task="detect")
    except Exception as exc:  # ultralytics raises many types for a failed download
        raise ModelError(
            f"could not load weights {weights!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            f"Ultralytics downloads known names such as yolo11n.pt on first use, which needs "
            f"internet access; otherwise download the .pt file on a connected machine and pass "
            f"its path (--weights /path/to/{path.name}), or run without weights on public "
            f"detections (--detector mot --detections det.txt)"
        ) from None


class YoloDetector:
    """Batched YOLO detection.

    Args:
        weights: ``.pt`` path or name (ultralytics downloads known names), or a model
            ``.yaml`` for random weights (tests).
        imgsz: Network input size (longest side).
        conf: Keep boxes scoring above this.
        iou: NMS IoU threshold.
        classes: Keep only these class ids (all when None).
        max_det: At most this many boxes per frame.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        half: fp16 inference; default on CUDA only.
        rect: Letterbox same-shaped batches to the smallest stride-aligned rectangle
            (as ultralytics' predictor does) instead of an ``imgsz`` square.
        threads: torch CPU threads for the forward pass (process-wide); default all
            cores. (Loading weights through ultralytics leaves torch at cores - 1.)
        torch_letterbox: Letterbox with torch on the model's device (default: on CUDA,
            where the uint8 frames are uploaded and resized on the GPU) instead of cv2.
    """

    def __init__(
        self,
        weights: str = "yolo11n.pt",
        imgsz: int = 640,
        conf: float = 0.25,
        iou: float = 0.7,
        classes: list[int] | None = None,
        max_det: int = 300,
        device: str = "auto",
        half: bool | None = None,
        rect: bool = True,
        threads: int | None = None,
        torch_letterbox: bool | None = None,
    ) -> None:
        self.device = select_device(device)
        yolo = _load(weights)
        model = yolo.model
        if not isinstance(model, torch.nn.Module):
            raise ModelError(f"{weights}: not a PyTorch model (exported formats are not supported)")
        self.names: dict[int, str] = dict(yolo.names)
        self.stride = int(max(model.stride)) if hasattr(model, "stride") else 32
        self.end2end = bool(getattr(model, "end2end", False))
        model = model.fuse() if hasattr(model, "fuse") else model
        self.half = self.device.type == "cuda" if half is None else half
        # channels_last: the CPU letterbox produces it for free (NHWC permuted), and
        # convolutions run faster on it on CPUs and tensor cores alike.
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.model = self.model.half() if self.half else self.model.float()
        if self.device.type == "cpu":
            torch.set_num_threads(threads or os.cpu_count() or 1)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.imgsz = -(-imgsz // self.stride) * self.stride
        self.conf, self.iou, self.classes, self.max_det = conf, iou, classes, max_det
        self.rect = rect
        self.torch_letterbox = self.device.type == "cuda" if torch_letterbox is None else torch_letterbox
        # Seconds spent per step, summed over calls (the pipeline reports them per frame).
        self.seconds = {"preprocess": 0.0, "forward": 0.0, "nms": 0.0}

    def stage_seconds(self) -> dict[str, float]:
        """Seconds spent so far in ``preprocess``, ``forward`` and ``nms``."""
        return dict(self.seconds)

    def letterboxes(self, shapes: Sequence[tuple[int, int]]) -> list[Letterbox]:
        """The letterbox of each image in a batch: all share one network shape."""
        if len(set(shapes)) == 1:
            dst = letterbox_shape(shapes[0], self.imgsz, self.stride, self.rect)
        else:
            dst = (self.imgsz, self.imgsz)
        return [Letterbox.fit(s, dst) for s in shapes]

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """``(B, 3, H, W)`` network input in 0-1 and the letterbox of each image.

        With ``torch_letterbox`` (the default on CUDA) the uint8 frames are uploaded and
        letterboxed on the model's device; otherwise cv2 letterboxes straight into one
        preallocated batch array.
        """
        boxes = self.letterboxes([im.shape[:2] for im in images])
        dst = boxes[0].dst
        dtype = torch.float16 if self.half else torch.float32
        if self.torch_letterbox:
            batch = torch.empty(
                (len(images), 3, *dst), device=self.device, dtype=dtype, memory_format=torch.channels_last
            )
            for i, (im, lb) in enumerate(zip(images, boxes, strict=True)):
                t = torch.from_numpy(im).to(self.device, non_blocking=True).permute(2, 0, 1)
                batch[i] = lb.apply_torch(t).to(dtype)
        else:
            arr = np.empty((len(images), *dst, 3), np.uint8)
            for i, (im, lb) in enumerate(zip(images, boxes, strict=True)):
                lb.apply(im, out=arr[i])
            # (B, H, W, 3) permuted to (B, 3, H, W) is channels_last memory already;
            # one division converts and scales in a single pass.
            batch = torch.from_numpy(arr).permute(0, 3, 1, 2).div(255.0).to(dtype)
            return batch, boxes
        return batch.div_(255.0), boxes

    @torch.inference_mode()
    def __call__(self, frames: Sequence[Frame]) -> list[Detections]:
        if not frames:
            return []
        t0 = time.perf_counter()
        batch, boxes = self.preprocess([f.image for f in frames])
        t1 = time.perf_counter()
        pred = self.model(batch)
        if isinstance(pred, (list, tuple)):
            pred = pred[0]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t2 = time.perf_counter()
        kept = non_max_suppression(
            pred, self.conf, self.iou, self.classes, self.max_det, end2end=self.end2end
        )
        out = []
        for rows, lb in zip(kept, boxes, strict=True):
            rows = rows.cpu().numpy()
            out.append(Detections(lb.boxes_to_source(rows[:, :4]), rows[:, 4], rows[:, 5].astype(np.int64)))
        t3 = time.perf_counter()
        self.seconds["preprocess"] += t1 - t0
        self.seconds["forward"] += t2 - t1
        self.seconds["nms"] += t3 - t2
        return out
