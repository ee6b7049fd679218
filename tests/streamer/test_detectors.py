"""Our batched YOLO against ultralytics' own predict on the same weights; the MOT replay."""

import numpy as np
import pytest
import torch
from helpers import video_images

from streamer.detectors.mot import MotDetector
from streamer.detectors.yolo import YoloDetector
from streamer.errors import ModelError
from streamer.types import Frame


@pytest.fixture(scope="module")
def detector():
    """yolov8n from its yaml with random weights, its class head biased so that
    random weights give boxes at a low threshold."""
    torch.manual_seed(0)
    det = YoloDetector("yolov8n.yaml", conf=0.18, device="cpu")
    with torch.no_grad():
        for seq in det.model.model[-1].cv3:
            seq[-1].bias.normal_(-4, 1)
            seq[-1].weight.normal_(0, 0.1)
    return det


def frames_from(images):
    return [Frame("s", i, 0, im) for i, im in enumerate(images)]


def sorted_rows(xyxy, conf, cls):
    """Rows ordered by score then position: random weights give many tied scores, whose
    order NMS does not define."""
    r = np.column_stack([xyxy, conf, cls]).astype(np.float64)
    keys = [r[:, i].round(1) for i in (3, 2, 1, 0)] + [-r[:, 4].round(4)]
    return r[np.lexsort(keys)]


def assert_same_as_ultralytics(detector, images):
    from ultralytics import YOLO

    ours = detector(frames_from(images))
    yolo = YOLO("yolov8n.yaml")
    yolo.model = detector.model
    theirs = yolo.predict([im[:, :, ::-1].copy() for im in images], conf=detector.conf, verbose=False, device="cpu")
    for o, t in zip(ours, theirs, strict=True):
        assert len(o) == len(t.boxes) > 0
        a = sorted_rows(o.xyxy, o.confidence, o.class_id)
        b = sorted_rows(t.boxes.xyxy.numpy(), t.boxes.conf.numpy(), t.boxes.cls.numpy())
        assert np.abs(a[:, :4] - b[:, :4]).max() <= 1.0
        assert np.abs(a[:, 4] - b[:, 4]).max() <= 0.01
        assert np.array_equal(a[:, 5], b[:, 5])


def test_batch_equals_ultralytics_predict_on_real_frames(detector, data):
    images = video_images(data / "video" / "pets09-s2l1-vtest.avi", 4)
    assert_same_as_ultralytics(detector, images)


def test_odd_sizes_equal_ultralytics(detector, tiny_video):
    images = video_images(tiny_video[0], 2)
    assert_same_as_ultralytics(detector, [np.ascontiguousarray(images[0][:201, :317]), images[1]])


def test_batch_equals_one_by_one(detector, tiny_video):
    images = video_images(tiny_video[0], 3)
    batch = detector(frames_from(images))
    for i, im in enumerate(images):
        single = detector(frames_from([im]))[0]
        np.testing.assert_allclose(single.xyxy, batch[i].xyxy, atol=1e-3)


def test_boxes_in_original_pixels(detector, data):
    images = video_images(data / "video" / "pets09-s2l1-vtest.avi", 1)
    (d,) = detector(frames_from(images))
    assert (d.xyxy[:, [0, 2]] <= 768).all() and (d.xyxy[:, [1, 3]] <= 576).all() and (d.xyxy >= 0).all()


def test_missing_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="no such weights file"):
        YoloDetector(str(tmp_path / "models" / "mine.pt"), device="cpu")
    with pytest.raises(ModelError, match="expected a .pt weights file"):
        YoloDetector("weights.onnx", device="cpu")


def test_unknown_device():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ModelError, match="no CUDA device"):
        YoloDetector("yolov8n.yaml", device="cuda")


def test_mot_replay(tmp_path):
    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,0,0,5,5,0.3,-1,-1,-1\n3,-1,1,2,3,4,0.8,-1,-1,-1\n")
    mot = MotDetector(det)
    out = mot(frames_from([None, None, None]))
    assert out[0].xyxy.tolist() == [[10, 20, 40, 60], [0, 0, 5, 5]]
    assert len(out[1]) == 0
    assert out[2].xyxy.tolist() == [[1, 2, 4, 6]]
    assert [len(d) for d in MotDetector(det, conf=0.5)(frames_from([None]))] == [1]
    assert mot.names == {0: "person"}


def test_unknown_weights_name_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = r"could not load weights 'yolo99x.pt'.*--weights /path/to/yolo99x.pt.*--detector mot"
    with pytest.raises(ModelError, match=message):
        YoloDetector("yolo99x.pt", device="cpu")


def test_torch_letterbox_path_matches_cv2_path(detector, data):
    """The path CUDA uses (torch letterbox on the model's device), run on the CPU."""
    images = video_images(data / "video" / "pets09-s2l1-vtest.avi", 2)
    images.append(np.ascontiguousarray(images[0][:301, :517]))
    a, boxes_a = detector.preprocess(images[:2])
    detector.torch_letterbox = True
    try:
        b, boxes_b = detector.preprocess(images[:2])
        assert boxes_a == boxes_b and a.shape == b.shape
        assert (a - b).abs().max().item() <= 1 / 255 + 1e-6  # one grey level
        ours_torch = detector(frames_from(images))
    finally:
        detector.torch_letterbox = False
    ours_cv2 = detector(frames_from(images))
    for t, c in zip(ours_torch, ours_cv2, strict=True):
        assert len(t) == len(c) > 0
        ra = sorted_rows(t.xyxy, t.confidence, t.class_id)
        rb = sorted_rows(c.xyxy, c.confidence, c.class_id)
        assert np.abs(ra[:, :4] - rb[:, :4]).max() <= 1.0
        assert np.abs(ra[:, 4] - rb[:, 4]).max() <= 0.01


def test_half_precision_path_runs_on_cpu(data):
    """fp16 (the CUDA default) on the CPU: same boxes as fp32 within fp16 rounding."""
    torch.manual_seed(0)
    full = YoloDetector("yolov8n.yaml", conf=0.18, device="cpu", imgsz=320)
    with torch.no_grad():
        for seq in full.model.model[-1].cv3:
            seq[-1].bias.normal_(-4, 1)
            seq[-1].weight.normal_(0, 0.1)
    half = YoloDetector("yolov8n.yaml", conf=0.18, device="cpu", imgsz=320, half=True)
    half.model.load_state_dict({k: v.half() for k, v in full.model.state_dict().items()})
    images = video_images(data / "video" / "pets09-s2l1-vtest.avi", 1)
    (a,), (b,) = full(frames_from(images)), half(frames_from(images))
    assert next(half.model.parameters()).dtype == torch.float16
    assert len(a) > 0 and abs(len(a) - len(b)) <= max(2, len(a) // 10)


def test_detectors_speak_the_protocol_and_report_their_steps(detector, tiny_video, tmp_path):
    from streamer.protocols import Detector
    from streamer.sampling import Sampler
    from streamer.sources import VideoSource

    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n")
    mot = MotDetector(det)
    assert isinstance(detector, Detector) and isinstance(mot, Detector)
    assert mot.stage_seconds() == {}
    images = [f.image for f in VideoSource(str(tiny_video[0])).frames(Sampler())][:4]
    before = detector.stage_seconds()
    detector(frames_from(images))
    after = detector.stage_seconds()
    assert set(after) == {"preprocess", "forward", "nms"}
    assert all(after[k] > before[k] for k in after)  # each step of the batch was timed
    after["forward"] = -1.0  # a copy: the caller cannot change the detector's figures
    assert detector.stage_seconds()["forward"] > 0
