"""Which runtime runs a YOLO forward pass, and the runtimes themselves.

The detector letterboxes, suppresses and maps boxes back the same way for every backend;
a backend is only the forward pass: a ``(B, 3, H, W)`` batch in 0-1 in, the head's raw
output out as a torch tensor (``(B, 4 + nc, A)``, or ``(B, K, 6)`` for end-to-end heads).

``auto`` picks the fastest runtime installed for the device: on CUDA TensorRT, then ONNX
Runtime's CUDA provider; on CPUs OpenVINO, then ONNX Runtime; torch last.

CPU threads. The forward pass shares the cores with decoding, tracking, encoding and
whatever else runs on the machine. ONNX Runtime's workers spin between operators by
default, which costs them half their speed when another process holds a core (measured
on 2 cores: 41 images/s quiet, 22 beside a busy loop; without spinning 41 and 37), so
spinning is off. OpenVINO runs in its latency mode (one stream, all its threads on one
request) with its threads unpinned, so the scheduler can move them off a busy core.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from streamer.errors import ModelError

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS", "EXTRAS", "Choice", "Forward", "choose", "describe", "exported_kind", "installed", "open_forward",
    "require", "version",
]

BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
# The modules each backend needs at run time, and the extra of this package that installs them.
_MODULES = {"torch": ("torch",), "onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "tensorrt": ("tensorrt",)}
EXTRAS = {"torch": "", "onnxruntime": "onnx", "openvino": "openvino", "tensorrt": "tensorrt"}
_PACKAGES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


def describe(exc: BaseException) -> str:
    """An exception's type and first line, for one-line errors."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def installed(backend: str) -> bool:
    """Whether the backend's runtime can be imported here (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in _MODULES[backend])


def version(backend: str) -> str:
    """The installed version of the backend's runtime package ("" when absent)."""
    names = [_PACKAGES[backend]] + (["onnxruntime-gpu"] if backend == "onnxruntime" else [])
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""


def require(backend: str) -> None:
    """One line saying which extra to install when the backend is missing."""
    if not installed(backend):
        raise ModelError(
            f"detector backend {backend!r} is not installed: pip install 'streamer[{EXTRAS[backend]}]' "
            f"(or use backend: auto, which picks among those installed)"
        )


def cuda_provider() -> bool:
    """Whether ONNX Runtime here has its CUDA execution provider."""
    if not installed("onnxruntime"):
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def exported_kind(weights: str | Path) -> str | None:
    """The backend an exported model is for (``.onnx`` is ``onnxruntime``; OpenVINO reads it
    too), or None for ``.pt`` weights and ``.yaml`` models."""
    path = Path(weights)
    if path.suffix == ".onnx":
        return "onnxruntime"
    if path.suffix == ".engine":
        return "tensorrt"
    if path.suffix == ".xml" or path.is_dir() or path.name.endswith("_openvino_model"):
        return "openvino"
    return None


@dataclass(frozen=True)
class Choice:
    """The backend that runs the forward pass, and why it was chosen."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def choose(backend: str, device: torch.device, weights: str | Path) -> Choice:
    """The backend for ``weights`` on ``device``: the one asked for (checked: installed, fits
    the device and the weights), or with ``auto`` the fastest one installed."""
    kind = exported_kind(weights)
    if backend != "auto":
        _check_fits(backend, device, weights, kind)
        return Choice(backend, "asked for")
    if Path(weights).suffix in (".yaml", ".yml"):
        return Choice("torch", "auto: random weights from a .yaml have no file to export")
    if kind == "tensorrt":
        require("tensorrt")
        return Choice("tensorrt", "auto: the weights are a TensorRT engine")
    if kind == "openvino":
        require("openvino")
        return Choice("openvino", "auto: the weights are an OpenVINO model")
    order = ["tensorrt", "onnxruntime"] if device.type == "cuda" else ["openvino", "onnxruntime"]
    if kind == "onnxruntime":  # an .onnx runs on ONNX Runtime, or on OpenVINO's CPU plugin
        order = ["onnxruntime"] if device.type == "cuda" else ["openvino", "onnxruntime"]
    for name in order:
        if name == "onnxruntime" and device.type == "cuda" and kind is None and not cuda_provider():
            continue  # a .pt runs faster on torch's CUDA than on ONNX Runtime's CPU
        if installed(name):
            skipped = order[: order.index(name)]
            why = f"; {', '.join(skipped)} not installed" if skipped else ""
            return Choice(name, f"auto: the fastest installed for {device.type}{why}")
    if kind is not None:
        raise ModelError(f"{weights}: an ONNX model needs onnxruntime or openvino: pip install 'streamer[onnx]'")
    extras = "tensorrt" if device.type == "cuda" else "openvino"
    return Choice("torch", f"auto: no faster runtime installed for {device.type} (pip install 'streamer[{extras}]')")


def _check_fits(backend: str, device: torch.device, weights: str | Path, kind: str | None) -> None:
    if backend not in BACKENDS:
        raise ModelError(f"unknown detector backend {backend!r}; use one of auto, {', '.join(BACKENDS)}")
    require(backend)
    if backend == "tensorrt" and device.type != "cuda":
        raise ModelError("backend tensorrt needs a CUDA device; use backend: openvino or onnxruntime on CPUs")
    if Path(weights).suffix in (".yaml", ".yml") and backend != "torch":
        raise ModelError(
            f"{weights}: backend {backend} exports from a weights file; save the model as a .pt first "
            f"(YOLO('{Path(weights).name}').save('model.pt')) or use backend: torch"
        )
    fits = {None: BACKENDS, "onnxruntime": ("onnxruntime", "openvino"), "openvino": ("openvino",),
            "tensorrt": ("tensorrt",)}
    if backend == "torch" and kind is not None:
        raise ModelError(
            f"{weights}: expected a .pt weights file or a model .yaml for backend torch; an exported model runs on "
            f"its own backend (backend: {kind} or auto)"
        )
    if backend not in fits[kind]:
        raise ModelError(
            f"{weights}: a {kind} model cannot run on backend {backend}; pass the .pt weights (it is exported "
            f"for {backend} once) or use backend: {kind}"
        )


class Forward(Protocol):
    """The forward pass of one backend.

    Attributes:
        device: Where the input batch must be (the CPU for ONNX Runtime and OpenVINO).
        half: The input is fp16.
        channels_last: The runtime takes channels-last memory as it is (torch); the others
            need contiguous NCHW.
        precision: What the runtime computes in: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
    """

    device: torch.device
    half: bool
    channels_last: bool
    precision: str

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


def _first(pred: object) -> torch.Tensor:
    if isinstance(pred, (list, tuple)):
        pred = pred[0]
    if isinstance(pred, np.ndarray):
        return torch.from_numpy(pred)
    assert isinstance(pred, torch.Tensor)
    return pred


class TorchForward:
    """The weights' own ``nn.Module`` (fused, channels-last, fp16 if asked)."""

    channels_last = True

    def __init__(self, model: torch.nn.Module, device: torch.device, half: bool, threads: int | None) -> None:
        self.device, self.half = device, half
        self.precision = "fp16" if half else "fp32"
        model = model.to(device, memory_format=torch.channels_last).eval()
        self.model = model.half() if half else model.float()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if device.type == "cpu":
            torch.set_num_threads(threads or os.cpu_count() or 1)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        pred = _first(self.model(batch))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return pred


class OnnxRuntimeForward:
    """An ONNX model on ONNX Runtime: CPU (threads without spinning) or its CUDA provider."""

    channels_last = False
    half = False
    precision = "fp32"

    def __init__(self, path: Path, device: torch.device, threads: int | None) -> None:
        import onnxruntime as ort

        self.device = torch.device("cpu")  # the input goes in as a host array
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        providers: list = ["CPUExecutionProvider"]
        if device.type == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return _first(self.session.run(None, {self.input: batch.numpy()}))


class OpenVinoForward:
    """An OpenVINO IR (or ONNX) model on OpenVINO's CPU plugin, dynamic shapes, latency mode."""

    channels_last = False
    half = False

    def __init__(self, path: Path, threads: int | None, half: bool | None = None) -> None:
        import openvino as ov

        self.device = torch.device("cpu")
        core = ov.Core()
        model = core.read_model(str(_openvino_xml(path)))
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1,
            "ENABLE_CPU_PINNING": False,
        }
        if half is False:  # else OpenVINO's default: bf16 on CPUs that have it (1.8x here), else f32
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        computes = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.precision = "int8" if quantized else {"bf16": "bf16", "f16": "fp16"}.get(computes, "fp32")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.request.infer({0: batch.numpy()}, share_inputs=True)
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())


def _openvino_xml(path: Path) -> Path:
    if path.is_dir():
        xml = sorted(path.glob("*.xml"))
        if not xml:
            raise ModelError(f"{path}: no OpenVINO .xml model in this folder")
        return xml[0]
    return path


class TensorRtForward:
    """A TensorRT engine, run by ultralytics' TensorRT backend (bindings, dynamic shapes,
    CUDA graphs for static engines); the input stays on the GPU."""

    channels_last = False

    def __init__(self, path: Path, device: torch.device) -> None:
        from ultralytics.nn.backends.tensorrt import TensorRTBackend

        self.engine = TensorRTBackend(str(path), device)
        self.device = device
        self.half = bool(self.engine.fp16)
        self.precision = "fp16" if self.half else "fp32"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        pred = _first(self.engine(batch))
        torch.cuda.synchronize(self.device)
        return pred


def open_forward(backend: str, path: Path, device: torch.device, threads: int | None,
                 half: bool | None = None) -> Forward:
    """The forward pass of an exported model (``torch`` is built from the module instead)."""
    try:
        if backend == "onnxruntime":
            return OnnxRuntimeForward(path, device, threads)
        if backend == "openvino":
            return OpenVinoForward(path, threads, half)
        if backend == "tensorrt":
            return TensorRtForward(path, device)
    except ModelError:
        raise
    except Exception as exc:  # each runtime raises its own types for a file it cannot read
        raise ModelError(f"{path}: {backend} cannot load it ({describe(exc)})") from None
    raise ModelError(f"backend {backend!r} runs no exported file")
