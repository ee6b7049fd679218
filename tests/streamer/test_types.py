import numpy as np
import pytest

from streamer.types import Detections


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(xyxy=np.zeros((3, 4))), None),
        (dict(xyxy=np.zeros((3, 5))), "expected shape \\(N, 4\\), got \\(3, 5\\)"),
        (dict(xyxy=np.zeros((2, 4)), confidence=[0.5]), "confidence: expected shape \\(2,\\), got \\(1,\\)"),
        (dict(xyxy=np.zeros((2, 4)), class_id=[1, 2, 3]), "class_id: expected shape \\(2,\\), got \\(3,\\)"),
        (dict(xyxy=np.zeros((1, 4)), data={"x": np.zeros(2)}), "data\\['x'\\]: expected length 1, got 2"),
    ],
)
def test_shapes_checked(kwargs, error):
    if error is None:
        d = Detections(**kwargs)
        assert len(d) == 3 and d.tracker_id.tolist() == [-1, -1, -1]
        assert d.xyxy.dtype == np.float32 and d.class_id.dtype == np.int64
    else:
        with pytest.raises(ValueError, match=error):
            Detections(**kwargs)


def test_indexing_keeps_every_column():
    d = Detections(np.arange(12).reshape(3, 4), [0.9, 0.2, 0.6], [1, 2, 3], [7, 8, 9], {"k": np.array([10, 20, 30])})
    hi = d[d.confidence > 0.5]
    assert hi.xyxy.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert hi.class_id.tolist() == [1, 3] and hi.tracker_id.tolist() == [7, 9]
    assert hi.data["k"].tolist() == [10, 30]
    assert d[1].confidence.tolist() == pytest.approx([0.2])
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.confidence.shape == (0,)
    both = Detections.concat([d, hi])
    assert len(both) == 5 and both.data["k"].tolist() == [10, 20, 30, 10, 30]
