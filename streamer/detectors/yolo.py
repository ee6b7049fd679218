"""Ultralytics YOLO weights run by us: letterboxed batches, one forward pass, NMS.

We feed the model our own batches (several frames per forward pass, fp16 on CUDA)
instead of calling ultralytics' per-image predictor; the boxes equal ``YOLO.predict`` on
the same weights (tests check it). The forward pass runs on a backend
(:mod:`streamer.detectors.backends`: torch, ONNX Runtime, OpenVINO, TensorRT); the
letterbox, the NMS and the mapping back to source pixels are the same for all of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from streamer.detectors.backends import Choice, Forward, TorchForward, choose, open_forward
from streamer.detectors.export import ExportSpec, cached_export, load_yolo
from streamer.errors import ModelError
from streamer.letterbox import Letterbox, letterbox_shape
from streamer.nms import non_max_suppression
from streamer.types import Detections, Frame

log = logging.getLogger(__name__)

__all__ = ["YoloDetector", "select_device", "weights_info"]


def select_device(device: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but torch sees no CUDA device; use device: cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelError(f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} CUDA "
                         f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device {device!r} asked for, but there is no Apple GPU (MPS) here; use device: cpu")
    return dev


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Whatever is written to standard output meanwhile, by Python (ultralytics' logger holds
    ``sys.stdout`` itself) or by native code (the runtimes), goes to standard error."""
    import logging
    import sys

    sys.stdout.flush()
    handlers = [h for h in logging.getLogger("ultralytics").handlers
                if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout]
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        for h in handlers:
            h.setStream(sys.stderr)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        for h in handlers:
            h.setStream(sys.stdout)


def _load(weights: str):
    """An ultralytics ``YOLO`` from a path, a model name or a ``.yaml`` (random weights)."""
    path = Path(weights)
    if path.suffix not in (".pt", ".yaml", ".yml"):
        raise ModelError(
            f"{weights}: expected a .pt weights file or a model .yaml (or, with a backend other than torch, "
            f"an .onnx, an OpenVINO model folder or a TensorRT .engine)"
        )
    if path.suffix == ".pt" and path.parent != Path(".") and not path.is_file():
        raise ModelError(f"{weights}: no such weights file; check the path")
    try:
        return load_yolo(weights)
    except ModelError:
        raise
    except Exception as exc:  # ultralytics raises many types for a failed download
        raise ModelError(
            f"could not load weights {weights!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            f"Ultralytics downloads known names such as yolo11n.pt on first use, which needs "
            f"internet access; otherwise download the .pt file on a connected machine and pass "
            f"its path (--weights /path/to/{path.name}), or run without weights on public "
            f"detections (--detector mot --detections det.txt)"
        ) from None


@dataclass(frozen=True)
class _Model:
    """What the detector needs to know of a model, whatever runs it."""

    names: dict[int, str]
    stride: int
    end2end: bool


def _module(weights: str) -> tuple[torch.nn.Module, _Model]:
    """The weights' fused ``nn.Module`` and what it is."""
    yolo = _load(weights)
    model = yolo.model
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{weights}: not a PyTorch model; use the .pt weights")
    info = _Model(dict(yolo.names), int(max(model.stride)) if hasattr(model, "stride") else 32,
                  bool(getattr(model, "end2end", False)))
    return (model.fuse(verbose=False) if hasattr(model, "fuse") else model), info


def weights_info(weights: str) -> tuple[int, bool]:
    """The stride of ``.pt`` weights (the network input is a multiple of it) and whether
    their head is end-to-end (NMS-free)."""
    info = _module(weights)[1]
    return info.stride, info.end2end


def _exported_info(path: Path) -> _Model:
    """What an exported model is, from the metadata ultralytics' exporter wrote into it."""
    import ast

    from ultralytics.nn.backends.base import BaseBackend

    if not path.exists():
        raise ModelError(f"{path}: no such model file; check the path")
    meta = BaseBackend.read_metadata(path)
    if not meta.get("names"):
        raise ModelError(f"{path}: no ultralytics metadata (class names, stride) in it; export it with ultralytics "
                         f"or pass the .pt weights")
    names = meta["names"] if isinstance(meta["names"], dict) else ast.literal_eval(str(meta["names"]))
    end2end = meta.get("end2end", False)
    end2end = ast.literal_eval(end2end) if isinstance(end2end, str) else bool(end2end)
    return _Model({int(k): str(v) for k, v in names.items()}, int(meta.get("stride", 32)), end2end)


class YoloDetector:
    """Batched YOLO detection.

    Args:
        weights: ``.pt`` path or name (ultralytics downloads known names), a model
            ``.yaml`` for random weights (tests), or an exported model for its backend
            (``.onnx``, an OpenVINO model folder, a TensorRT ``.engine``), used as is.
        imgsz: Network input size (longest side).
        conf: Keep boxes scoring above this.
        iou: NMS IoU threshold.
        classes: Keep only these class ids (all when None).
        max_det: At most this many boxes per frame.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        half: fp16 inference (torch and TensorRT); default on CUDA only. OpenVINO computes
            in bf16 on CPUs that have it (its own default) unless ``half`` is False (f32).
        rect: Letterbox same-shaped batches to the smallest stride-aligned rectangle
            (as ultralytics' predictor does) instead of an ``imgsz`` square.
        threads: CPU threads of the forward pass; default all cores. (For torch this is
            process-wide; loading weights through ultralytics leaves torch at cores - 1.)
        torch_letterbox: Letterbox with torch on the model's device (default: on CUDA,
            where the uint8 frames are uploaded and resized on the GPU) instead of cv2.
        backend: ``auto``, ``torch``, ``onnxruntime``, ``openvino`` or ``tensorrt``
            (see :func:`streamer.detectors.backends.choose`). A ``.pt`` is exported for
            the backend once and cached.
        batch: Largest batch a call gets (the export's dynamic batch range).
        cache_dir: Folder of the export cache (default: beside the weights).
        int8_calibration: A video whose frames calibrate an INT8 model (OpenVINO, NNCF
            post-training quantisation); None: float.

    Attributes:
        backend: The backend chosen and why (``openvino (auto: ...)``).
        exported: Whether this start exported the model (False: from the cache or as given).
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
        backend: str = "torch",
        batch: int = 8,
        cache_dir: str | None = None,
        int8_calibration: str | None = None,
    ) -> None:
        self.device = select_device(device)
        if int8_calibration is not None and backend not in ("auto", "openvino"):
            raise ModelError(f"INT8 (int8_calibration) runs on backend openvino, not {backend}")
        self.choice: Choice = choose("openvino" if int8_calibration else backend, self.device, weights)
        self.int8_calibration = Path(int8_calibration) if int8_calibration else None
        log.info("detector backend: %s on %s", self.choice, self.device)  # before any export
        self.half = self.device.type == "cuda" if half is None else half
        self.exported = False
        self.model: torch.nn.Module | None = None
        with stdout_to_stderr():  # ultralytics and the runtimes print as they load: stdout may carry events
            if self.choice.name == "torch":
                self.model, info = _module(weights)
                self.forward: Forward = TorchForward(self.model, self.device, self.half, threads)
                self.model = self.forward.model
                path = Path(weights)
            else:
                path, info = self._exported(weights, imgsz, batch, cache_dir)
                self.forward = open_forward(self.choice.name, path, self.device, threads, half)
        self.names, self.stride, self.end2end = info.names, info.stride, info.end2end
        self.imgsz = -(-imgsz // self.stride) * self.stride
        self.conf, self.iou, self.classes, self.max_det = conf, iou, classes, max_det
        self.rect = rect
        on_cuda = self.forward.device.type == "cuda"
        self.torch_letterbox = on_cuda if torch_letterbox is None else torch_letterbox
        self.backend = f"{self.choice}, {self.forward.precision}"
        log.info("detector model: %s (%s)", path, self.forward.precision)
        # Seconds spent per step, summed over calls (the pipeline reports them per frame).
        self.seconds = {"preprocess": 0.0, "forward": 0.0, "nms": 0.0}

    def _exported(self, weights: str, imgsz: int, batch: int, cache_dir: str | None) -> tuple[Path, _Model]:
        """The backend's model: the exported file as given, or the ``.pt`` exported (cached)."""
        path = Path(weights)
        if path.suffix != ".pt":
            return path, _exported_info(path)
        _, info = _module(weights)  # the stride, to round imgsz as the runs will
        spec = ExportSpec(path, self.choice.name, -(-imgsz // info.stride) * info.stride, batch,
                          half=self.half and self.choice.name == "tensorrt",
                          device=str(self.device) if self.device.type == "cuda" else "cpu", end2end=info.end2end,
                          calibration=self.int8_calibration)
        model, self.exported = cached_export(spec, cache_dir)
        return model, info

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
        """``(B, 3, H, W)`` network input in 0-1 and the letterbox of each image, on the
        backend's device, in its dtype and memory format.

        With ``torch_letterbox`` (the default on CUDA) the uint8 frames are uploaded and
        letterboxed on that device; otherwise cv2 letterboxes straight into one
        preallocated batch array.
        """
        boxes = self.letterboxes([im.shape[:2] for im in images])
        dst = boxes[0].dst
        fwd = self.forward
        dtype = torch.float16 if fwd.half else torch.float32
        layout = torch.channels_last if fwd.channels_last else torch.contiguous_format
        if self.torch_letterbox:
            batch = torch.empty((len(images), 3, *dst), device=fwd.device, dtype=dtype, memory_format=layout)
            for i, (im, lb) in enumerate(zip(images, boxes, strict=True)):
                t = torch.from_numpy(im).to(fwd.device, non_blocking=True).permute(2, 0, 1)
                batch[i] = lb.apply_torch(t).to(dtype)
            return batch.div_(255.0), boxes
        arr = np.empty((len(images), *dst, 3), np.uint8)
        for i, (im, lb) in enumerate(zip(images, boxes, strict=True)):
            lb.apply(im, out=arr[i])
        # (B, H, W, 3) permuted to (B, 3, H, W) is channels_last memory already. One copy
        # into the backend's dtype and layout, then one division in place (copy_ is 2.7x
        # faster here than .to(dtype, memory_format=...), which takes a slow path).
        batch = torch.empty((len(images), 3, *dst), dtype=dtype, memory_format=layout)
        batch.copy_(torch.from_numpy(arr).permute(0, 3, 1, 2))
        return batch.div_(255.0).to(fwd.device), boxes

    @torch.inference_mode()
    def __call__(self, frames: Sequence[Frame]) -> list[Detections]:
        if not frames:
            return []
        t0 = time.perf_counter()
        batch, boxes = self.preprocess([f.image for f in frames])
        t1 = time.perf_counter()
        pred = self.forward(batch)
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
