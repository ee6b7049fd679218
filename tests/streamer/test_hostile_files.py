"""Hostile files (issue 16, the rest): configs that bomb or are huge, crafted weights,
result files streamer eval cannot score, det files with far-off frames; and properties
(hypothesis) of the det-file reader and config loading."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import OBJECTS, clip_with_detections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.cli import main
from streamer.config import YAML_BYTES, Config, load_config
from streamer.errors import ConfigError, SourceError
from streamer.evaluation import IDLE_FRAMES, read_sequence, track_folder
from streamer.mot import read_detections


def alias_bomb(levels: int, width: int = 9) -> str:
    lines = ['a0: &a0 [' + ",".join(['"lol"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nsource: {{id: *a{levels - 1}}}\n"


@pytest.mark.parametrize(("text", "message"), [
    (alias_bomb(9), "bomb.yaml: holds 5,380,840 values or more (14,348,907 characters) with its aliases expanded, "
                    "over the bound of 1,000,000"),
    (alias_bomb(12), "bomb.yaml: holds "),
    ("a: &a [*a]\nsource: {id: *a}\n", "bomb.yaml: an alias refers to the value that holds it"),
    ("x" * (YAML_BYTES + 1), "bomb.yaml: 2,097,153 characters, over the bound of 2,097,152 for a config file"),
    ("source: {id: [" + ",".join(str(i) for i in range(100_000)) + "]}\n",
     "bomb.yaml: source.id: Input should be a valid string (got [0, 1, 2, 3, ...])"),
    ("source: {id: " + "[" * 5000 + "]" * 5000 + "}\n", "exceeded maximum nesting depth"),
    ("source: {uri: 'a\n", "bomb.yaml: not valid YAML (while scanning a quoted scalar"),
    ('source: {"a\\nb": 1}\n', "bomb.yaml: source.'a\\nb': unknown key (check its spelling and section)"),
])
def test_configs_that_would_exhaust_us_are_one_line_errors(text, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bomb.yaml").write_text(text)
    rc = main(["run", "x.mp4", "--config", "bomb.yaml"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err[:500]
    assert len(err) < 1000


def test_a_crafted_weights_file_runs_no_code(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    clip_with_detections(tmp_path, OBJECTS, 5, name="clip.mp4")
    rc = main(["run", "clip.mp4", "--weights", "evil.pt", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1] == ("streamer: error: evil.pt: refused: it holds Python objects that are not parts of "
                                   "a model, and a .pt can run code as it loads; use weights saved by ultralytics "
                                   "(YOLO(...).save()) from a source you trust")
    assert not marker.exists()


def test_weights_saved_by_ultralytics_still_load(tmp_path):
    from ultralytics import YOLO

    from streamer.detectors.export import load_yolo

    YOLO("yolov8n.yaml").save(str(tmp_path / "m.pt"))
    assert len(load_yolo(str(tmp_path / "m.pt")).names) == 80


GOOD = [f"{f},{i},{10 + f + 90 * (i - 1)},{20 + 40 * (i - 1)},30,40,1,-1,-1,-1" for f in range(1, 21) for i in (1, 2)]


@pytest.fixture()
def gt(tmp_path) -> Path:
    seq = tmp_path / "gt" / "S1"
    (seq / "gt").mkdir(parents=True)
    rows = (f"{f},{i},{10 + f + 90 * (i - 1)},{20 + 40 * (i - 1)},30,40,1,1,1" for f in range(1, 21) for i in (1, 2))
    (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=S1\nseqLength=20\nframeRate=25\nimWidth=320\nimHeight=240\n")
    return tmp_path / "gt"


@pytest.mark.parametrize(("lines", "message"), [
    ([*GOOD, "25,1,10,20,30,40,1,-1,-1,-1"], "S1.txt:41: frame 25 is outside the sequence (1 to 20, seqLength in "
                                             "seqinfo.ini)"),
    ([*GOOD, "0,1,10,20,30,40,1,-1,-1,-1"], "S1.txt:41: frame 0 is outside the sequence"),
    (["hello world"], "S1.txt:1: not MOT numbers ('hello world'); lines are frame,id,x,y,w,h,score,..."),
    ([*GOOD, "5,1,50,50,30,40,1,-1,-1,-1"], "S1.txt:41: id 1 appears twice in frame 5; one box per track and frame"),
    ([*GOOD, "6,3,nan,20,30,40,1,-1,-1,-1"], "S1.txt:41: a value is NaN or infinite"),
    ([*GOOD, "6,3,10,inf,30,40,1,-1,-1,-1"], "S1.txt:41: a value is NaN or infinite"),
    (["1,1,10,20"], "S1.txt:1: 4 values; MOT results need frame,id,x,y,w,h,score at least"),
    ([*GOOD, "2.5,1,10,20,30,40,1,-1,-1,-1"], "S1.txt:41: frame and id must be whole numbers, got 2.5 and 1"),
    (None, "S1.txt: not a text file (byte 0); MOT results are comma-separated numbers"),
    ([*GOOD, "6,99999999999999999999,10,20,30,40,1,-1,-1,-1"], "S1.txt:41: id 1e+20 is outside 0 to 2^31-1"),
    ([*GOOD, "6,-5,10,20,30,40,1,-1,-1,-1"], "S1.txt:41: id -5 is outside 0 to 2^31-1"),
    (["1,1,10,20,30,40,1,16,1"], "S1.txt:1: the 8th value is a class (16); results are pedestrians (1, or -1). "
                                 "Is this a gt.txt rather than results?"),
])
def test_eval_refuses_results_it_cannot_score_in_one_line(lines, message, gt, tmp_path, capsys):
    res = tmp_path / "res"
    res.mkdir()
    if lines is None:
        (res / "S1.txt").write_bytes(b"\xff\xfe\x00garbage")
    else:
        (res / "S1.txt").write_text("\n".join(lines) + "\n")
    rc = main(["eval", str(gt), str(res)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and message in err[0], err


def test_eval_scores_good_results(gt, tmp_path, capsys):
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "S1.txt").write_text("\n".join(GOOD) + "\n")
    assert main(["eval", str(gt), str(tmp_path / "res")]) == 0
    assert "COMBINED                  100.0  100.0  100.0     0" in capsys.readouterr().out


def write_det(root: Path, starts: list[int], length: int = 30) -> Path:
    """Two boxes moving apart for ``length`` frames from each of ``starts``."""
    (root / "seq" / "det").mkdir(parents=True, exist_ok=True)
    lines = []
    for start in starts:
        for k in range(length):
            lines.append(f"{start + k},-1,{100 + 3 * k},50,30,60,0.9")
            lines.append(f"{start + k},-1,{300 - 3 * k},150,30,60,0.8")
    (root / "seq" / "det" / "det.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("tracker", ["sort", "bytetrack", "ocsort"])
def test_track_skips_idle_gaps_with_the_same_results(tracker, tmp_path):
    from sinks.mot import format_mot
    from streamer.config import tracker_config
    from streamer.types import Detections

    root = write_det(tmp_path / "det", [1, 2_000, 2_040, 9_000])
    run = track_folder(root, tmp_path / "out", tracker)
    by_frame, length, fps = read_sequence(root / "seq")
    # every frame, one by one, as before
    trk, empty, expected = tracker_config(tracker).build(fps), Detections.empty(), []
    for number in range(1, length + 1):
        tracks = trk.update(by_frame.get(number, empty))
        if len(tracks):
            expected.append(format_mot(number, tracks, "track"))
    assert (tmp_path / "out" / "seq.txt").read_text() == "".join(expected)
    assert run.frames < length - 4_000  # the idle stretches were not run


def test_track_with_one_box_at_frame_100_million(tmp_path, capsys):
    root = tmp_path / "det"
    (root / "seq" / "det").mkdir(parents=True)
    (root / "seq" / "det" / "det.txt").write_text("1,-1,10,10,30,60,0.9\n100000000,-1,10,10,30,60,0.9\n")
    assert main(["track", str(root), "--out", str(tmp_path / "out"), "--tracker", "sort"]) == 0
    out = capsys.readouterr().out
    frames = int(out.split("sequences, ")[1].split()[0])
    assert frames <= 2 + IDLE_FRAMES + 2  # the frames with boxes and one idle stretch, not 100 million


def test_track_with_a_frame_past_2_to_the_31_is_one_line(tmp_path, capsys):
    root = tmp_path / "det"
    (root / "seq" / "det").mkdir(parents=True)
    (root / "seq" / "det" / "det.txt").write_text("1,-1,10,10,30,60,0.9\n9223372036854775807,-1,10,10,30,60,0.9\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's cast warning leaked before
        assert main(["track", str(root), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"streamer: error: {root}/seq/det/det.txt: frame 9.22337e+18 (row 2) is past 2^31-1; is this a "
                   f"MOT det file?"]


# ---- properties


@st.composite
def det_rows(draw):
    n = draw(st.integers(0, 30))
    finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)
    return [(draw(st.integers(1, 50)), draw(finite), draw(finite), draw(st.floats(0.0, 500.0, width=32)),
             draw(st.floats(0.0, 500.0, width=32)), draw(st.floats(0, 1, width=32))) for _ in range(n)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=det_rows())
def test_det_reader_returns_exactly_the_proper_boxes(rows, tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("".join(f"{f},-1,{x!r},{y!r},{w!r},{h!r},{s!r}\n" for f, x, y, w, h, s in rows))
    got = read_detections(path)
    assert sorted(got) == sorted({r[0] for r in rows})  # every frame named, in file order within it
    for f in got:
        boxes = np.asarray([[x, y, x + w, y + h] for g, x, y, w, h, _ in rows if g == f], np.float32).reshape(-1, 4)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # zero-size, also after rounding: dropped
        np.testing.assert_allclose(got[f].xyxy, boxes[keep], rtol=1e-6, atol=1e-3)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_det_reader_accepts_or_refuses_in_one_line(text, tmp_path):
    path = tmp_path / "det.txt"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        read_detections(path)
    except SourceError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sections=st.dictionaries(st.sampled_from(["source", "detector", "tracker", "sampler", "output", "analytics",
                                                  "buffer", "junk"]), yaml_values, max_size=4))
def test_config_loading_gives_a_config_or_a_config_error(sections, tmp_path):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(sections))
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 5000


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_config_loading_of_any_text_never_raises_anything_else(text, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_eval_refuses_ground_truth_that_is_not_finite(bad, gt, tmp_path, capsys):
    with open(gt / "S1" / "gt" / "gt.txt", "a") as f:
        f.write(f"5,9,10,10,20,{bad},1,1,1\n")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "S1.txt").write_text("\n".join(GOOD) + "\n")
    assert main(["eval", str(gt), str(tmp_path / "res")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"streamer: error: {gt}/S1/gt/gt.txt:41: a value is NaN or infinite; the ground truth must be "
                   f"numbers"]


def test_track_never_writes_over_its_detections(tmp_path, capsys):
    # a sequence named det: <out>/det.txt, with --out its own det folder, is its detections
    root = tmp_path / "r"
    (root / "det" / "det").mkdir(parents=True)
    det = root / "det" / "det" / "det.txt"
    det.write_text("1,-1,10,10,30,60,0.9\n2,-1,12,10,30,60,0.9\n")
    before = det.read_bytes()
    assert main(["track", str(root), "--out", str(root / "det" / "det")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"streamer: config error: the result of det: {root}/det/det/det.txt is the input det.txt of "
                       f"det; it would be overwritten. Write the output elsewhere")
    assert det.read_bytes() == before


def test_track_keeps_the_best_boxes_of_a_crowded_frame(tmp_path, caplog):
    root = tmp_path / "det"
    (root / "s" / "det").mkdir(parents=True)
    lines = [f"1,-1,{30 * i},10,20,40,{(i + 1) / 1000:.3f}" for i in range(900)]
    (root / "s" / "det" / "det.txt").write_text("\n".join(lines) + "\n")
    assert main(["track", str(root), "--out", str(tmp_path / "out"), "--max-det", "100", "--tracker", "sort"]) == 0
    rows = np.loadtxt(tmp_path / "out" / "s.txt", delimiter=",")
    assert len(rows) == 100 and rows[:, 2].min() == pytest.approx(30 * 800, abs=0.5)  # the 100 best scored
    assert "s: 1 frames hold more than 100 boxes; the best scoring 100 of each were tracked" in caplog.text
