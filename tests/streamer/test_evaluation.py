"""`streamer eval` against TrackEval called directly, and the accuracy of our trackers."""

import shutil

import numpy as np
import pytest

from streamer.cli import main
from streamer.evaluation import evaluate, track_folder

SEQS = ["TUD-Campus", "TUD-Stadtmitte"]
# Figures of ../shared/data/README.md (TrackEval, MOT15 protocol).
REFERENCE_SORT = {"TUD-Campus": (45.3, 62.7, 60.7), "TUD-Stadtmitte": (53.0, 71.7, 73.5)}
ULTRALYTICS_BYTETRACK = {"TUD-Campus": (47.7, 54.0, 67.2), "TUD-Stadtmitte": (51.5, 70.0, 71.0)}


def test_eval_matches_trackeval_called_directly(data, tmp_path):
    import trackeval

    # TrackEval's own layout: gt/MOT15-train/<seq>, trackers/MOT15-train/<name>/data/<seq>.txt
    gt = tmp_path / "gt" / "MOT15-train"
    res = tmp_path / "trackers" / "MOT15-train" / "ref" / "data"
    res.mkdir(parents=True)
    for seq in SEQS:
        shutil.copytree(data / "mot15" / seq, gt / seq)
        shutil.copy(data / "mot15-sort-reference" / f"{seq}.txt", res / f"{seq}.txt")
    seqmap = tmp_path / "gt" / "seqmaps" / "MOT15-train.txt"
    seqmap.parent.mkdir(parents=True)
    seqmap.write_text("name\n" + "\n".join(SEQS) + "\n")
    evaluator = trackeval.Evaluator({"USE_PARALLEL": False, "PRINT_RESULTS": False, "OUTPUT_SUMMARY": False,
                                     "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "PRINT_CONFIG": False})
    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(tmp_path / "gt"), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
        "BENCHMARK": "MOT15", "SPLIT_TO_EVAL": "train", "PRINT_CONFIG": False})
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
    raw, _ = evaluator.evaluate([dataset], metrics)
    direct = raw["MotChallenge2DBox"]["ref"]

    ours = evaluate(gt, res.parent.parent / "ref" / "data")
    for seq in [*SEQS, "COMBINED_SEQ"]:
        d = direct[seq]["pedestrian"]
        assert ours[seq]["HOTA"] == pytest.approx(100 * d["HOTA"]["HOTA"].mean(), abs=1e-9)
        assert ours[seq]["MOTA"] == pytest.approx(100 * d["CLEAR"]["MOTA"], abs=1e-9)
        assert ours[seq]["IDF1"] == pytest.approx(100 * d["Identity"]["IDF1"], abs=1e-9)
        assert ours[seq]["IDSW"] == d["CLEAR"]["IDSW"]
    for seq, (hota, mota, idf1) in REFERENCE_SORT.items():
        assert ours[seq]["HOTA"] == pytest.approx(hota, abs=0.06)
        assert ours[seq]["MOTA"] == pytest.approx(mota, abs=0.06)
        assert ours[seq]["IDF1"] == pytest.approx(idf1, abs=0.11)


def gt_root(data, tmp_path):
    root = tmp_path / "gt"
    for seq in SEQS:
        shutil.copytree(data / "mot15" / seq, root / seq)
    return root


def test_default_tracker_beats_reference_sort_and_bytetrack(data, tmp_path):
    root = gt_root(data, tmp_path)
    track_folder(root, tmp_path / "ocsort", "ocsort")
    scores = evaluate(root, tmp_path / "ocsort")
    for seq in SEQS:
        for name, table in (("reference SORT", REFERENCE_SORT), ("BYTETracker", ULTRALYTICS_BYTETRACK)):
            hota, _, idf1 = table[seq]
            assert scores[seq]["HOTA"] > hota, f"{seq}: HOTA below {name}"
            assert scores[seq]["IDF1"] > idf1, f"{seq}: IDF1 below {name}"


def test_track_and_eval_commands(data, tmp_path, capsys):
    root = gt_root(data, tmp_path)
    assert main(["track", str(root), "--out", str(tmp_path / "sort"), "--tracker", "sort"]) == 0
    assert "frames/s" in capsys.readouterr().out
    # `streamer track` with SORT writes the reference output, line for line
    for seq in SEQS:
        ours = np.loadtxt(tmp_path / "sort" / f"{seq}.txt", delimiter=",")
        ref = np.loadtxt(data / "mot15-sort-reference" / f"{seq}.txt", delimiter=",")
        assert len(ours) == len(ref)
    assert main(["eval", str(root), str(tmp_path / "sort")]) == 0
    out = capsys.readouterr().out
    assert "TUD-Campus" in out and "45.3" in out and "COMBINED" in out


def test_track_with_config_params(data, tmp_path, capsys):
    root = gt_root(data, tmp_path)
    cfg = tmp_path / "t.yaml"
    cfg.write_text("tracker:\n  name: sort\n  params:\n    min_hits: 1\n")
    assert main(["track", str(root), "--out", str(tmp_path / "a"), "--config", str(cfg)]) == 0
    assert main(["track", str(root), "--out", str(tmp_path / "b"), "--tracker", "sort"]) == 0
    a = np.loadtxt(tmp_path / "a" / "TUD-Campus.txt", delimiter=",")
    b = np.loadtxt(tmp_path / "b" / "TUD-Campus.txt", delimiter=",")
    assert len(a) > len(b)  # min_hits=1 reports tracks sooner
    cfg.write_text("tracker:\n  name: sort\n  params:\n    min_hit: 1\n")
    assert main(["track", str(root), "--out", str(tmp_path / "c"), "--config", str(cfg)]) == 2
    assert "tracker.params" in capsys.readouterr().err


def test_eval_errors(data, tmp_path, capsys):
    root = gt_root(data, tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(root), str(tmp_path / "empty")]) == 1
    assert "no result file for TUD-Campus" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 1


def test_mot17_protocol_gives_100_for_the_ground_truth(data, tmp_path):
    """MOT17 (classes, visibility, distractors): the considered pedestrians of the ground
    truth, submitted as results, score 100."""
    seq = "MOT17-05"
    gt = tmp_path / "gt"
    shutil.copytree(data / "mot17-gt" / seq, gt / seq)
    rows = np.loadtxt(gt / seq / "gt" / "gt.txt", delimiter=",")
    keep = rows[(rows[:, 6] == 1) & (rows[:, 7] == 1)]
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / f"{seq}.txt").write_text(
        "".join(f"{int(f)},{int(i)},{x},{y},{w},{h},1,-1,-1,-1\n" for f, i, x, y, w, h, *_ in keep)
    )
    scores = evaluate(gt, tmp_path / "res", benchmark="MOT17")[seq]
    assert scores["HOTA"] == pytest.approx(100.0) and scores["MOTA"] == pytest.approx(100.0)
    assert scores["IDF1"] == pytest.approx(100.0) and scores["IDSW"] == 0
