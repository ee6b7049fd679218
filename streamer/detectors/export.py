"""Exports ``.pt`` weights for a backend once, with ultralytics' exporter, and caches the result.

An entry lives in ``<cache>/<weights stem>/<backend>-<imgsz>-b<batch>-<precision>/`` (the
cache folder defaults to ``<weights>.streamer-cache`` beside the weights) and holds the
exported model and ``streamer-export.json``, written last: the key the model was made with
(the weights' sha256, image size, batch range, precision, the ultralytics, torch, export
and runtime library versions, and the GPU model for TensorRT) and the size and sha256 of
every file. An entry whose key differs (new weights under the same name, another library
version) is stale; one whose files do not match (an export cut short, a truncated copy) is
corrupt: both are exported again, with a warning.

Shapes: exported with dynamic batch (1 to ``batch``) and dynamic spatial axes, so the
stride-aligned rectangular letterbox of each source (640x480 for a 4:3 camera, 640x288
for 21:9) keeps its smaller, cheaper input instead of a padded 640x640 square.

INT8 (OpenVINO only): post-training quantisation with NNCF, through ultralytics' exporter,
calibrated on frames of the user's own video (``CALIBRATION_FRAMES`` spread over it); the
video's sha256 is part of the key.

The exporter runs offline: the export's requirements are checked here first (a missing
one is one line naming the extra to install), and ultralytics' automatic pip install of
missing requirements is switched off while it runs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from streamer.detectors.backends import EXTRAS, describe, installed, version
from streamer.errors import ModelError
from streamer.paths import file_sha256

log = logging.getLogger(__name__)

__all__ = ["ExportSpec", "cached_export", "entry_dir", "export_key", "load_yolo"]

MANIFEST = "streamer-export.json"
CALIBRATION_FRAMES = 200
_FORMATS = {"onnxruntime": "onnx", "openvino": "openvino", "tensorrt": "engine"}
# What ultralytics' exporter imports per format (beyond torch and ultralytics).
_EXPORT_MODULES = {
    "onnxruntime": ("onnx", "onnxslim", "onnxruntime"),
    "openvino": ("openvino",),
    "tensorrt": ("onnx", "onnxslim", "onnxruntime", "tensorrt"),
}
_EXPORT_PACKAGES = {"onnx": "onnx", "onnxslim": "onnxslim", "onnxruntime": "onnxruntime", "openvino": "openvino",
                    "tensorrt": "tensorrt"}


@dataclass(frozen=True)
class ExportSpec:
    """What an export is made for.

    Attributes:
        weights: The ``.pt`` file.
        backend: ``onnxruntime``, ``openvino`` or ``tensorrt``.
        imgsz: Network input size (longest side; the export's shapes are dynamic).
        batch: Largest batch the model takes.
        half: fp16 (TensorRT on CUDA); fp32 otherwise.
        device: The CUDA device a TensorRT engine is built for (else the CPU).
        end2end: The weights' head is NMS-free (YOLOv10, YOLO26): exported as it is
            (ultralytics' exporter would otherwise export the one-to-many head for NMS).
        calibration: A video whose frames calibrate an INT8 model (OpenVINO); None: float.
    """

    weights: Path
    backend: str
    imgsz: int
    batch: int
    half: bool = False
    device: str = "cpu"
    end2end: bool = False
    calibration: Path | None = None

    @property
    def precision(self) -> str:
        if self.calibration is not None:
            return "int8"
        return "fp16" if self.half else "fp32"


def entry_dir(spec: ExportSpec, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of one export."""
    root = Path(cache_dir) if cache_dir else spec.weights.parent / f"{spec.weights.name}.streamer-cache"
    if cache_dir:
        root = root / spec.weights.stem
    name = f"{spec.backend}-{spec.imgsz}-b{spec.batch}-{spec.precision}"
    if spec.calibration is not None:  # one entry per calibration video
        name += f"-{spec.calibration.stem}"
    return root / name


def _versions(backend: str) -> dict[str, str]:
    out = {"ultralytics": importlib.metadata.version("ultralytics"), "torch": torch.__version__}
    for module in _EXPORT_MODULES[backend]:
        out[module] = version(module) if module in ("onnxruntime", "openvino", "tensorrt") else _dist(module)
    return out


def _dist(name: str) -> str:
    try:
        return importlib.metadata.version(_EXPORT_PACKAGES[name])
    except importlib.metadata.PackageNotFoundError:
        return ""


def export_key(spec: ExportSpec) -> dict:
    """Everything that changes the exported model."""
    key = {k: v for k, v in asdict(spec).items() if k not in ("weights", "device", "half", "calibration")}
    key["precision"] = spec.precision
    if spec.calibration is not None:
        key["calibration_sha256"] = file_sha256(spec.calibration)
        key["calibration_frames"] = CALIBRATION_FRAMES
    key["weights_sha256"] = file_sha256(spec.weights)
    key["dynamic"] = True
    key["versions"] = _versions(spec.backend)
    if spec.backend == "tensorrt":
        dev = torch.device(spec.device)
        key["gpu"] = torch.cuda.get_device_name(dev)
        key["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(dev)))
    return key


def _model_path(entry: Path, spec: ExportSpec) -> Path:
    if spec.calibration is not None:
        return entry / "model_int8_openvino_model"
    return {"onnxruntime": entry / "model.onnx", "openvino": entry / "model_openvino_model",
            "tensorrt": entry / "model.engine"}[spec.backend]


def _files(entry: Path) -> list[Path]:
    return sorted(p for p in entry.rglob("*") if p.is_file() and p.name != MANIFEST)


def check_entry(entry: Path, key: dict) -> str | None:
    """Why a cache entry cannot be used (None: it can): missing, stale or corrupt."""
    manifest = entry / MANIFEST
    if not entry.is_dir():
        return "missing"
    try:
        saved = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return "corrupt (no readable manifest: an export cut short?)"
    if saved.get("key") != key:
        changed = sorted(k for k in set(key) | set(saved.get("key", {})) if key.get(k) != saved.get("key", {}).get(k))
        return f"stale ({', '.join(changed)} changed)"
    files = {p.relative_to(entry).as_posix(): p for p in _files(entry)}
    if set(files) != set(saved.get("files", {})):
        return "corrupt (files missing or added)"
    for name, p in files.items():
        size, digest = saved["files"][name]
        if p.stat().st_size != size or file_sha256(p) != digest:
            return f"corrupt ({name} does not match its checksum)"
    return None


def require_export(backend: str, int8: bool = False) -> None:
    """One line naming the extra when something the exporter needs is missing."""
    missing = [m for m in _EXPORT_MODULES[backend] if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"exporting for {backend} needs {', '.join(missing)}: pip install 'streamer[{EXTRAS[backend]}]'"
        )
    if int8 and backend != "openvino":
        raise ModelError(f"INT8 is made for backend openvino, not {backend}")
    if int8 and importlib.util.find_spec("nncf") is None:
        raise ModelError("INT8 quantisation needs nncf: pip install 'streamer[int8]'")


@contextlib.contextmanager
def _no_auto_install() -> Iterator[None]:
    """ultralytics pip-installs missing export requirements by default: never here."""
    from ultralytics.utils import checks

    before = checks.AUTOINSTALL
    checks.AUTOINSTALL = False
    try:
        yield
    finally:
        checks.AUTOINSTALL = before


_SAFE_LOAD = threading.Lock()


def load_yolo(weights: str):
    """An ultralytics ``YOLO`` from a path, name or ``.yaml``, a ``.pt`` loaded with
    ultralytics' restricted loader: torch's ``weights_only`` unpickler with an allow-list
    of model classes, so a crafted checkpoint cannot run code while it loads. What it
    refuses is a ModelError saying why."""
    from ultralytics import YOLO
    from ultralytics.nn import tasks

    with _SAFE_LOAD:  # ultralytics reads the setting from its module at load time
        before = tasks.SAFE_LOAD
        tasks.SAFE_LOAD = True
        try:
            return YOLO(weights, task="detect")
        except TypeError as exc:
            if "outside the supported" not in str(exc):
                raise
            raise ModelError(
                f"{weights}: refused: it holds Python objects that are not parts of a model, and a .pt can run code "
                f"as it loads; use weights saved by ultralytics (YOLO(...).save()) from a source you trust"
            ) from None
        finally:
            tasks.SAFE_LOAD = before


def _run_exporter(spec: ExportSpec, work: Path) -> Path:
    """ultralytics' exporter on a copy of the weights in ``work``; the exported path."""

    weights = work / "model.pt"
    shutil.copyfile(spec.weights, weights)
    yolo = load_yolo(str(weights))
    precision: dict = {"quantize": 16 if spec.half else None}
    if spec.calibration is not None:
        data = _calibration_set(spec, work / "calibration", dict(yolo.names))
        precision = {"quantize": 8, "data": str(data), "fraction": 1.0}
    try:
        with _no_auto_install():
            out = yolo.export(
                format=_FORMATS[spec.backend], imgsz=spec.imgsz, dynamic=True, batch=spec.batch,
                simplify=True, nms=False if spec.end2end else None,
                device=spec.device if spec.backend == "tensorrt" else "cpu", verbose=False, **precision,
            )
    except Exception as exc:  # the exporter raises many types
        raise ModelError(f"{spec.weights}: export for {spec.backend} failed ({describe(exc)})") from None
    weights.unlink()
    shutil.rmtree(work / "calibration", ignore_errors=True)
    return Path(out)


def _calibration_set(spec: ExportSpec, folder: Path, names: dict[int, str]) -> Path:
    """``CALIBRATION_FRAMES`` frames spread over the calibration video, as the image folder
    and dataset yaml ultralytics' INT8 exporter reads (it letterboxes them itself)."""
    import av
    import cv2
    import yaml

    images = folder / "images"
    images.mkdir(parents=True)
    try:
        with av.open(str(spec.calibration)) as container:
            stream = container.streams.video[0]
            every = max(1, (stream.frames or CALIBRATION_FRAMES) // CALIBRATION_FRAMES)
            written = 0
            for i, frame in enumerate(container.decode(stream)):
                if i % every == 0:
                    cv2.imwrite(str(images / f"{i:06d}.png"), frame.to_ndarray(format="bgr24"))
                    written += 1
                if written == CALIBRATION_FRAMES:
                    break
    except Exception as exc:  # PyAV raises its own error types for a file it cannot read
        raise ModelError(f"{spec.calibration}: cannot read calibration frames ({describe(exc)})") from None
    if written == 0:
        raise ModelError(f"{spec.calibration}: no frame to calibrate INT8 on")
    data = folder / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(folder), "train": "images", "val": "images", "names": names}))
    return data


def export_to(spec: ExportSpec, entry: Path) -> Path:
    """Export into ``entry`` (replacing what is there) and write its manifest; the model path."""
    require_export(spec.backend, spec.calibration is not None)
    key = export_key(spec)
    entry.parent.mkdir(parents=True, exist_ok=True)
    # The exporter names its output by replacing ".pt" anywhere in the weights' path, so it
    # works in a fresh temporary folder (no ".pt" in its path); the result is then moved
    # beside the entry and renamed into place: the entry appears whole or not at all.
    work = Path(tempfile.mkdtemp(prefix="streamer-export-"))
    staged = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent)) / "entry"
    try:
        _run_exporter(spec, work)
        files = {p.relative_to(work).as_posix(): [p.stat().st_size, file_sha256(p)] for p in _files(work)}
        (work / MANIFEST).write_text(json.dumps({"key": key, "files": files}, indent=1))
        shutil.move(work, staged)
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staged, entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staged.parent, ignore_errors=True)
    return _model_path(entry, spec)


def cached_export(spec: ExportSpec, cache_dir: str | Path | None = None) -> tuple[Path, bool]:
    """The exported model for ``spec``, from the cache or exported now; and whether it was exported."""
    if not spec.weights.is_file():
        raise ModelError(f"{spec.weights}: no such weights file; check the path")
    if spec.calibration is not None and not spec.calibration.is_file():
        raise ModelError(f"{spec.calibration}: no such calibration video; check the path")
    if not installed(spec.backend):
        raise ModelError(
            f"detector backend {spec.backend!r} is not installed: pip install 'streamer[{EXTRAS[spec.backend]}]'"
        )
    entry = entry_dir(spec, cache_dir)
    problem = check_entry(entry, export_key(spec))
    if problem is None:
        log.debug("%s: cached %s export %s", spec.weights, spec.backend, entry)
        return _model_path(entry, spec), False
    if problem != "missing":
        log.warning("%s: cached %s export %s is %s; exporting it again", spec.weights, spec.backend, entry, problem)
    log.info("exporting %s for %s (imgsz %d, batch 1-%d, %s) into %s", spec.weights, spec.backend, spec.imgsz,
             spec.batch, spec.precision, entry)
    return export_to(spec, entry), True
