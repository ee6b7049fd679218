"""Detector backends: each one's final boxes equal torch fp32's (the same letterbox, NMS and
mapping back, only the forward pass differs), and the choice of backend."""

import os

import numpy as np
import pytest
import torch
from helpers import video_images

from streamer.detectors import backends
from streamer.detectors.backends import Choice, choose, exported_kind
from streamer.detectors.yolo import YoloDetector
from streamer.errors import ModelError
from streamer.types import Frame

CPU = torch.device("cpu")
CUDA = torch.device("cuda:0")  # a device object only: nothing here needs a GPU
MODELS = ("yolov8n", "yolo11n", "yolo26n-end2end")
EXPORTED = ("onnxruntime", "openvino")
CONF = 0.18


def save_random_weights(name: str, path):
    """A yaml model with seeded random weights, its class head biased so that random
    weights give boxes at a low threshold, saved as a .pt the exporter can read."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO(f"{name.split('-')[0]}.yaml")
    end2end = name.endswith("end2end")
    head = yolo.model.model[-1]
    with torch.no_grad():
        if end2end:  # the NMS-free one-to-one head (YOLOv10 / YOLO26 style), with spread-out scores
            yolo.model.end2end = True
            for m in yolo.model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.bias.normal_(0, 0.5)
                    m.weight.normal_(1, 0.3)
        for seq in head.one2one_cv3 if end2end else head.cv3:
            seq[-1].bias.normal_(-4, 1)
            seq[-1].weight.normal_(0, 0.5 if end2end else 0.1)
    yolo.save(str(path))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    return {name: save_random_weights(name, root / f"{name}.pt") for name in MODELS}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def detectors(weights, cache):
    """One detector per model and backend; each backend's model exported once."""
    return {
        (name, backend): YoloDetector(str(path), conf=CONF, device="cpu", backend=backend, batch=4,
                                      cache_dir=str(cache))
        for name, path in weights.items() for backend in ("torch", *EXPORTED)
    }


def frames_from(images):
    return [Frame("s", i, 0, im) for i, im in enumerate(images)]


def sorted_rows(d):
    """Rows ordered by score then position: random weights tie many scores, whose order
    NMS does not define."""
    r = np.column_stack([d.xyxy, d.confidence, d.class_id]).astype(np.float64)
    keys = [r[:, i].round(0) for i in (3, 2, 1, 0)] + [-r[:, 4].round(3)]
    return r[np.lexsort(keys)]


def assert_same_boxes(ours, reference):
    assert len(ours) == len(reference)
    for o, t in zip(ours, reference, strict=True):
        assert len(o) == len(t) > 0
        a, b = sorted_rows(o), sorted_rows(t)
        assert np.abs(a[:, :4] - b[:, :4]).max() <= 1.0
        assert np.abs(a[:, 4] - b[:, 4]).max() <= 1e-3
        assert np.array_equal(a[:, 5], b[:, 5])


@pytest.fixture(scope="module")
def inputs(data):
    pets = video_images(data / "video" / "pets09-s2l1-vtest.avi", 4)
    bikes = video_images(data / "video" / "bikes.mp4", 2)
    return {
        "batch 1": pets[:1],
        "batch 4": pets,
        "rectangular 640x272": bikes,  # letterboxed to 640x288: a non-square network input
        "odd crop 201x317": [np.ascontiguousarray(pets[0][:201, :317])],
    }


@pytest.mark.parametrize("backend", EXPORTED)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", ["batch 1", "batch 4", "rectangular 640x272", "odd crop 201x317"])
def test_boxes_equal_torch_fp32(detectors, inputs, model, backend, case):
    reference = detectors[model, "torch"]
    det = detectors[model, backend]
    assert det.backend.startswith(backend) and det.model is None
    assert det.names == reference.names and det.end2end == reference.end2end == model.endswith("end2end")
    images = inputs[case]
    assert_same_boxes(*detect_both(det, reference, images))


def detect_both(det, reference, images):
    """Both detectors' boxes on ``images``; an end-to-end head keeps its top max_det boxes,
    so the threshold then cuts between its scores, never inside a tie."""
    conf = separating_conf(reference, images) if reference.end2end else CONF
    det.conf = reference.conf = conf
    return det(frames_from(images)), reference(frames_from(images))


def separating_conf(reference, images, gap=4e-3):
    """A threshold for an end-to-end head with random weights, whose top-k scores tie in
    runs: the highest one in a gap of ``gap`` between distinct scores that keeps at least a
    box per image, above every image's last (300th) score, so no tie straddles the cut."""
    scores = reference.forward(reference.preprocess(images)[0])[:, :, 4].double()
    floor = scores.min(1).values.max().item()
    lowest_best = scores.max(1).values.min().item()
    values = scores.flatten().unique().sort(descending=True).values.tolist()
    for hi, lo in zip(values, values[1:], strict=False):
        if hi - lo > gap and lo > floor and hi <= lowest_best:
            return (hi + lo) / 2
    pytest.fail("no gap between the scores to cut at")


def test_openvino_in_f32_when_half_is_false(weights, cache, inputs, detectors):
    """OpenVINO's default is bf16 where the CPU has it; half=False asks for f32."""
    det = YoloDetector(str(weights["yolo11n"]), conf=CONF, device="cpu", backend="openvino", batch=4,
                       cache_dir=str(cache), half=False)
    assert det.forward.precision == "fp32" and det.backend.endswith(", fp32") and not det.exported
    assert_same_boxes(*detect_both(det, detectors["yolo11n", "torch"], inputs["batch 4"]))


def test_rectangular_input_reaches_the_backend_unpadded(detectors, inputs):
    det = detectors["yolov8n", "openvino"]
    batch, boxes = det.preprocess(inputs["rectangular 640x272"])
    assert tuple(batch.shape) == (2, 3, 288, 640) and batch.is_contiguous() and batch.dtype == torch.float32
    assert boxes[0].dst == (288, 640)


def test_an_exported_model_is_used_as_it_is(detectors, inputs, cache):
    """Given the .onnx or the OpenVINO folder itself: no export, names and head from its metadata."""
    onnx = next(cache.glob("yolov8n/onnxruntime-*/model.onnx"))
    ov_folder = next(cache.glob("yolo26n-end2end/openvino-*/model_openvino_model"))
    for path, backend, model in ((onnx, "onnxruntime", "yolov8n"), (onnx, "openvino", "yolov8n"),
                                 (ov_folder, "auto", "yolo26n-end2end")):
        det = YoloDetector(str(path), conf=CONF, device="cpu", backend=backend)
        assert not det.exported and det.names == detectors[model, "torch"].names
        assert det.end2end == model.endswith("end2end")
        assert_same_boxes(*detect_both(det, detectors[model, "torch"], inputs["batch 4"]))


def test_auto_picks_the_fastest_installed():
    assert choose("auto", CPU, "m.pt") == Choice("openvino", "auto: the fastest installed for cpu")
    assert choose("auto", CPU, "m.onnx").name == "openvino"  # OpenVINO's CPU plugin reads ONNX
    assert choose("auto", CPU, "m_openvino_model") == Choice("openvino", "auto: the weights are an OpenVINO model")
    assert choose("auto", CPU, "yolov8n.yaml").name == "torch"
    assert choose("onnxruntime", CPU, "m.pt") == Choice("onnxruntime", "asked for")


def test_auto_on_cuda_without_tensorrt_or_a_cuda_provider_falls_back_to_torch():
    """The CUDA order (TensorRT, then ONNX Runtime's CUDA provider) on this machine, where
    neither is there: TensorRT is not installed and onnxruntime is the CPU build."""
    assert not backends.installed("tensorrt") and not backends.cuda_provider()
    choice = choose("auto", CUDA, "m.pt")
    assert choice.name == "torch" and "pip install 'streamer[tensorrt]'" in choice.reason


def test_auto_order_when_runtimes_are_missing(monkeypatch):
    """The choice when OpenVINO (then ONNX Runtime too) is not installed."""
    present = {"torch", "onnxruntime"}
    monkeypatch.setattr(backends, "installed", lambda name: name in present)
    assert choose("auto", CPU, "m.pt") == Choice("onnxruntime", "auto: the fastest installed for cpu; openvino not "
                                                               "installed")
    present.discard("onnxruntime")
    assert choose("auto", CPU, "m.pt").name == "torch"
    with pytest.raises(ModelError, match=r"m.onnx: an ONNX model needs onnxruntime or openvino: pip install"):
        choose("auto", CPU, "m.onnx")
    present.add("tensorrt")
    assert choose("auto", CUDA, "m.pt") == Choice("tensorrt", "auto: the fastest installed for cuda")


def test_a_missing_backend_is_one_line_naming_the_extra():
    with pytest.raises(ModelError, match=r"^detector backend 'tensorrt' is not installed: pip install "
                                         r"'streamer\[tensorrt\]'"):
        choose("tensorrt", CUDA, "m.pt")


def test_backend_and_weights_that_do_not_fit(monkeypatch):
    with pytest.raises(ModelError, match="save the model as a .pt first"):
        choose("onnxruntime", CPU, "yolov8n.yaml")
    with pytest.raises(ModelError, match="a openvino model cannot run on backend onnxruntime"):
        choose("onnxruntime", CPU, "m_openvino_model")
    with pytest.raises(ModelError, match="expected a .pt weights file"):
        choose("torch", CPU, "m.onnx")
    monkeypatch.setattr(backends, "installed", lambda name: True)  # as on a GPU machine with TensorRT
    with pytest.raises(ModelError, match="backend tensorrt needs a CUDA device"):
        choose("tensorrt", CPU, "m.pt")
    with pytest.raises(ModelError, match="a onnxruntime model cannot run on backend tensorrt"):
        choose("tensorrt", CUDA, "m.onnx")
    assert choose("tensorrt", CUDA, "m.engine") == Choice("tensorrt", "asked for")


def test_exported_kinds(tmp_path):
    (tmp_path / "folder").mkdir()
    assert [exported_kind(p) for p in ("a.pt", "a.yaml", "a.onnx", "a.engine", "a.xml", tmp_path / "folder")] == [
        None, None, "onnxruntime", "tensorrt", "openvino", "openvino"]


def test_threads_and_wait_policy(detectors):
    """ONNX Runtime without spinning workers; OpenVINO in latency mode, threads unpinned;
    torch's OpenMP workers wait passively (set when streamer is imported)."""
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    ort = detectors["yolov8n", "onnxruntime"].forward
    assert ort.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    ov = detectors["yolov8n", "openvino"].forward.compiled
    assert str(ov.get_property("PERFORMANCE_HINT")) == "LATENCY"
    assert ov.get_property("ENABLE_CPU_PINNING") is False
    assert ov.get_property("INFERENCE_NUM_THREADS") == os.cpu_count()


def test_int8_by_post_training_quantisation_calibrated_on_a_video(weights, cache, inputs, data, detectors):
    """OpenVINO INT8 (NNCF) calibrated on bikes.mp4's frames: a quarter of the weights'
    bytes, and its boxes on PETS09 frames against fp32's."""
    from streamer.detectors.compare import box_agreement

    det = YoloDetector(str(weights["yolov8n"]), conf=CONF, device="cpu", backend="auto", batch=4, cache_dir=str(cache),
                       int8_calibration=str(data / "video" / "bikes.mp4"))
    assert det.backend.startswith("openvino") and det.exported and det.forward.precision == "int8"
    entry = next(cache.glob("yolov8n/openvino-640-b4-int8-bikes"))
    fp32 = next(cache.glob("yolov8n/openvino-640-b4-fp32"))
    int8_bytes = (entry / "model_int8_openvino_model" / "model.bin").stat().st_size
    assert int8_bytes < 0.4 * (fp32 / "model_openvino_model" / "model.bin").stat().st_size
    reference = detectors["yolov8n", "openvino"]
    reference.conf = CONF
    agreement = box_agreement(reference(frames_from(inputs["batch 4"])), det(frames_from(inputs["batch 4"])))
    print(agreement)
    assert agreement.reference > 20
    assert agreement.recall >= 0.5 and agreement.precision >= 0.5 and agreement.mean_iou >= 0.8
    with pytest.raises(ModelError, match="INT8 .* runs on backend openvino, not onnxruntime"):
        YoloDetector(str(weights["yolov8n"]), device="cpu", backend="onnxruntime", int8_calibration="v.mp4")
