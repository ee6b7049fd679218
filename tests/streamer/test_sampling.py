from fractions import Fraction

import pytest

from streamer.sampling import Sampler


def kept(sampler, n, fps):
    out = []
    for i in range(n):
        if sampler.keep(i, Fraction(i) / fps):
            out.append((i, sampler.detect()))
    return out


def test_every_nth_and_detection_interval():
    s = Sampler(every=3, detect_every=2)
    assert kept(s, 12, Fraction(30)) == [(0, True), (3, False), (6, True), (9, False)]
    assert s.output_fps(Fraction(30)) == 10


def test_target_fps_on_ntsc_rate():
    """29.97 fps down to 10 fps: exact pts arithmetic, no drift over a minute."""
    fps = Fraction(30000, 1001)
    s = Sampler(target_fps=10)
    frames = [i for i, _ in kept(s, 1798, fps)]  # 60 s
    assert len(frames) == 600
    # every kept frame is the first at or after its 100 ms slot
    for n, i in enumerate(frames):
        assert Fraction(i) / fps >= Fraction(n, 10) > Fraction(i - 1) / fps
    assert s.output_fps(fps) == 10


def test_target_fps_above_source_keeps_all():
    s = Sampler(target_fps=50)
    assert len(kept(s, 25, Fraction(25))) == 25
    assert s.output_fps(Fraction(25)) == 25


@pytest.mark.parametrize("kwargs", [dict(every=0), dict(detect_every=0), dict(target_fps=0)])
def test_bad_values(kwargs):
    with pytest.raises(ValueError):
        Sampler(**kwargs)
