import numpy as np
import pytest
import torch

from streamer.letterbox import Letterbox, letterbox_shape

SHAPES = [(576, 768), (1080, 1920), (480, 640), (272, 640), (301, 517), (640, 480), (1000, 100), (99, 1001), (32, 32)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rect", [True, False])
def test_box_round_trip(shape, rect):
    dst = letterbox_shape(shape, 640, 32, rect)
    assert dst[0] % 32 == 0 and dst[1] % 32 == 0 and max(dst) == 640
    lb = Letterbox.fit(shape, dst)
    rng = np.random.default_rng(0)
    h, w = shape
    x1, y1 = rng.uniform(0, w, 50), rng.uniform(0, h, 50)
    x2, y2 = np.minimum(x1 + rng.uniform(1, w, 50), w), np.minimum(y1 + rng.uniform(1, h, 50), h)
    boxes = np.column_stack([x1, y1, x2, y2])
    back = lb.boxes_to_source(lb.boxes_to_input(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    # the whole image maps onto the resized region exactly
    full = lb.boxes_to_input(np.array([[0, 0, w, h]], float))[0]
    assert full.tolist() == [lb.left, lb.top, lb.left + lb.size[1], lb.top + lb.size[0]]


@pytest.mark.parametrize("shape", SHAPES)
def test_numpy_and_torch_paths_agree_to_one_grey_level(shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    lb = Letterbox.fit(shape, letterbox_shape(shape, 320, 32, True))
    a = lb.apply(image).astype(int)
    b = lb.apply_torch(torch.from_numpy(image).permute(2, 0, 1)).permute(1, 2, 0).numpy().astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1


@pytest.mark.parametrize("shape", SHAPES)
def test_pixels_equal_ultralytics_letterbox(shape):
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    theirs = LetterBox((640, 640), auto=True, stride=32)(image=image)
    lb = Letterbox.fit(shape, letterbox_shape(shape, 640, 32, True))
    assert np.array_equal(lb.apply(image), theirs)


def test_padding_and_placement():
    lb = Letterbox.fit((100, 200), (128, 256))
    assert lb.size == (128, 256) and (lb.top, lb.left) == (0, 0)
    lb = Letterbox.fit((100, 300), (320, 320))
    assert lb.size == (107, 320) and lb.top == 106 and lb.left == 0
    out = lb.apply(np.zeros((100, 300, 3), np.uint8))
    assert out[0, 0, 0] == 114 and out[106, 0, 0] == 0 and out[106 + 107, 0, 0] == 114
