from fractions import Fraction

import cv2
import numpy as np
import pytest
from helpers import OBJECTS

from streamer.errors import SourceError
from streamer.sampling import Sampler
from streamer.sources import ImageSequenceSource, VideoSource, open_source
from streamer.synthetic import render, write_video


def test_decodes_every_frame_with_exact_pts(tiny_video):
    path, truth = tiny_video
    src = open_source(str(path))
    assert isinstance(src, VideoSource)
    assert src.fps == 25 and src.total_frames == 40 and src.size == (240, 320) and src.id == "tiny"
    frames = list(src.frames(Sampler()))
    assert [f.index for f in frames] == list(range(40))
    assert [f.pts for f in frames] == [Fraction(k, 25) for k in range(40)]
    f = frames[17]
    assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
    # the object's colour is where the ground truth says (RGB order kept through H.264)
    _, (x1, y1, x2, y2) = truth[17][0]
    centre = f.image[(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
    assert np.abs(centre - OBJECTS[0].color).max() <= 12


def test_ntsc_rate_pts(tmp_path):
    path = tmp_path / "ntsc.mkv"
    write_video(path, OBJECTS, 30, (64, 96), Fraction(30000, 1001))
    src = open_source(str(path))
    assert src.fps == Fraction(30000, 1001)
    pts = [f.pts for f in src.frames(Sampler())]
    assert len(pts) == 30
    assert all(abs(p - Fraction(k * 1001, 30000)) <= Fraction(1, 1000) for k, p in enumerate(pts))


def test_sampler_decides_before_conversion(tiny_video):
    path, _ = tiny_video
    frames = list(open_source(str(path)).frames(Sampler(every=4, detect_every=2)))
    assert [f.index for f in frames] == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]
    assert [f.detect for f in frames] == [True, False] * 5


def test_image_folder_mot_layout(tmp_path):
    seq = tmp_path / "SEQ-01"
    (seq / "img1").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-01\nframeRate=14\nseqLength=5\n")
    for k in range(5):
        image, _ = render(OBJECTS, k, 48, 64)
        cv2.imwrite(str(seq / "img1" / f"{k + 1:06d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    src = open_source(str(seq))
    assert isinstance(src, ImageSequenceSource) and src.id == "SEQ-01" and src.fps == 14
    frames = list(src.frames(Sampler()))
    assert [f.pts for f in frames] == [Fraction(k, 14) for k in range(5)]
    expected, _ = render(OBJECTS, 3, 48, 64)
    assert np.array_equal(frames[3].image, expected)  # PNG is lossless, RGB order kept
    glob_src = open_source(str(seq / "img1" / "*.png"), fps=5)
    assert glob_src.total_frames == 5 and glob_src.fps == 5


def test_missing_file():
    with pytest.raises(SourceError, match="nope.mp4: no such file"):
        open_source("nope.mp4")


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 100)
    with pytest.raises(SourceError, match="notes.mp4: cannot be opened as a video"):
        open_source(str(bad))


def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path))


def test_truncated_video_yields_what_is_there_then_fails(tmp_path):
    path = tmp_path / "cut.mkv"
    write_video(path, OBJECTS, 60, (120, 160), 25)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    src = open_source(str(path))
    got = []
    with pytest.raises(SourceError, match="cut.mkv: .*(truncated|corrupt)"):
        for frame in src.frames(Sampler()):
            got.append(frame.index)
    assert 10 < len(got) < 60 and got == list(range(len(got)))


def test_truncated_mp4_without_index(tmp_path):
    path = tmp_path / "cut.mp4"
    write_video(path, OBJECTS, 30, (120, 160), 25)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    with pytest.raises(SourceError, match="cut.mp4: cannot be opened as a video"):
        open_source(str(path))


def test_corrupt_packets_are_reported_after_the_good_frames(tmp_path):
    path = tmp_path / "noisy.mkv"
    write_video(path, OBJECTS, 60, (120, 160), 25)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    data[middle : middle + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(SourceError, match="noisy.mkv: .*(corrupt|truncated)"):
        for frame in open_source(str(path)).frames(Sampler()):
            got.append(frame.index)
    assert len(got) >= 20


def test_a_stopped_file_ends_quietly(tiny_video):
    """Stopping a file early (SIGTERM, --duration) is no truncation."""
    import threading

    stop = threading.Event()
    frames = []
    for frame in VideoSource(str(tiny_video[0])).frames(Sampler(), stop):
        frames.append(frame.index)
        if frame.index == 9:
            stop.set()
    assert frames[:10] == list(range(10)) and len(frames) < 40
