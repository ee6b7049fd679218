"""Crowded frames: the overlapping pairs alone, matched per group, agree with the dense path."""

import numpy as np
import pytest
from helpers import MOT15_SEQS

import trackers.sparse as sparse
from streamer.config import tracker_config
from streamer.evaluation import load_sequence
from streamer.types import Detections
from trackers.association import Pairs, assign, assign_sort, iou_cost, iou_matrix, similarity


DENSE_PAIRS = sparse.DENSE_PAIRS


def boxes(rng, n, scene=300.0):
    xy = rng.uniform(0, scene, (n, 2))
    wh = rng.uniform(5, 40, (n, 2))
    wh[0] = [250, 120]  # one wide box: the sweep's window is as wide as the widest box
    return np.c_[xy, xy + wh]


def dense_of(pairs: Pairs, fill=0.0) -> np.ndarray:
    out = np.full(pairs.shape, fill)
    out[pairs.rows, pairs.cols] = pairs.values
    return out


@pytest.mark.parametrize("classes", [False, True])
def test_overlaps_are_the_nonzero_entries_of_iou_matrix_bit_for_bit(classes):
    rng = np.random.default_rng(1)
    a, b = boxes(rng, 120), boxes(rng, 90)
    ca, cb = (rng.integers(0, 3, 120), rng.integers(0, 3, 90)) if classes else (np.empty(0, int),) * 2
    pairs = sparse.overlaps(a, b, ca, cb)
    dense = iou_matrix(a, b, ca, cb) if classes else iou_matrix(a, b)
    assert sorted(zip(pairs.rows.tolist(), pairs.cols.tolist(), strict=True)) == sorted(
        zip(*np.nonzero(dense > 0), strict=True))
    assert np.array_equal(pairs.values, dense[pairs.rows, pairs.cols])  # the same arithmetic
    assert len(pairs.values) > 60  # the scene is crowded enough to mean something


def test_a_box_as_wide_as_the_frame_meets_every_box_it_touches():
    rng = np.random.default_rng(5)
    a, b = boxes(rng, 300, 1000.0), boxes(rng, 300, 1000.0)
    b[7] = [0, 100, 1000, 140]  # a false positive across the frame
    pairs = sparse.overlaps(a, b, np.empty(0, int), np.empty(0, int))
    dense = iou_matrix(a, b)
    assert sorted(zip(pairs.rows.tolist(), pairs.cols.tolist(), strict=True)) == sorted(
        zip(*np.nonzero(dense > 0), strict=True))
    assert (pairs.cols == 7).sum() == (dense[:, 7] > 0).sum() > 10


def test_similarity_switches_to_pairs_past_the_dense_limit():
    rng = np.random.default_rng(2)
    a = boxes(rng, 600, scene=4000.0)
    assert isinstance(similarity(a[:400], a[:400]), np.ndarray)  # 160,000 pairs: dense
    pairs = similarity(a, a)  # 360,000: only the overlapping ones
    assert isinstance(pairs, Pairs) and pairs.shape == (600, 600)
    assert 600 <= len(pairs.values) < 3000  # linear in the boxes, not 600 x 600


def test_assign_on_pairs_equals_the_dense_assign():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = boxes(rng, 60, 150.0), boxes(rng, 50, 150.0)
        scores = rng.uniform(0.3, 1.0, 50)
        pairs = sparse.overlaps(a, b, np.empty(0, int), np.empty(0, int))
        want = assign(iou_cost(iou_matrix(a, b), scores), 0.8)
        got = assign(iou_cost(pairs, scores), 0.8)
        for w, g in zip(want, got, strict=True):
            assert w.tolist() == g.tolist()


def test_assign_sort_on_pairs_trades_as_the_dense_solver_does():
    # ADL-Rundle-8's frame 205: detection 0 overlaps track 0 by 0.424 and track 1 by
    # 0.166; detection 1 overlaps track 0 by 0.358. The maximum summed IoU gives track 0 to
    # detection 1 and drops (0, 1), below the threshold: detection 0 is left unmatched.
    iou = np.array([[0.424, 0.166], [0.358, 0.0]])
    rows, cols = np.nonzero(iou)
    pairs = Pairs(2, 2, rows, cols, iou[rows, cols])
    for matrix in (iou, pairs):
        m, free_rows, free_cols = assign_sort(matrix, 0.3)
        assert m.tolist() == [[1, 0]] and free_rows.tolist() == [0] and free_cols.tolist() == [1]


def test_assign_sort_on_pairs_equals_the_dense_one():
    rng = np.random.default_rng(4)
    for fast_path in (True, False):
        for _ in range(20):
            a, b = boxes(rng, 50, 150.0), boxes(rng, 45, 150.0)
            pairs = sparse.overlaps(a, b, np.empty(0, int), np.empty(0, int))
            want, got = assign_sort(iou_matrix(a, b), 0.3, fast_path=fast_path), assign_sort(pairs, 0.3,
                                                                                              fast_path=fast_path)
            assert want[0].tolist() == got[0].tolist()
            assert sorted(want[1].tolist()) == got[1].tolist() and want[2].tolist() == got[2].tolist()


def test_a_group_too_big_for_one_block_is_solved_by_its_pairs_past_the_threshold(monkeypatch):
    # a row of boxes 8 px apart all touch: one group of 40 x 40; past GROUP_PAIRS it is
    # grouped again by the pairs past 0.3 (still one chain here), then by their blocks
    x = 8.0 * np.arange(40)
    dets = np.c_[x, np.zeros(40), x + 20, np.full(40, 40.0)]
    tracks = dets + [2, 0, 2, 0]
    pairs = sparse.overlaps(dets, tracks, np.empty(0, int), np.empty(0, int))
    want = assign_sort(iou_matrix(dets, tracks), 0.3, fast_path=False)
    monkeypatch.setattr(sparse, "GROUP_PAIRS", 100)
    got = assign_sort(pairs, 0.3, fast_path=False)
    assert got[0].tolist() == want[0].tolist() == [[k, k] for k in range(40)]
    # still one chain past the split: matched greedily, best pair first (each box's own track)
    got = assign(iou_cost(pairs), 0.8)
    assert got[0].tolist() == [[k, k] for k in range(40)] and not len(got[1]) and not len(got[2])


def run(name, frames, dense_pairs, monkeypatch):
    monkeypatch.setattr(sparse, "DENSE_PAIRS", dense_pairs)
    tracker = tracker_config(name).build(30)
    return [(o.tracker_id.copy(), o.data["track_xyxy"].copy()) for o in map(tracker.update, frames)]


def same_up_to_ids(want, got) -> int:
    """Frames whose boxes differ; asserts one id mapping holds across all the others."""
    mapping, differ = {}, 0
    for (w_ids, w_box), (g_ids, g_box) in zip(want, got, strict=True):
        w = {tuple(b): i for i, b in zip(w_ids.tolist(), w_box.tolist(), strict=True)}
        g = {tuple(b): i for i, b in zip(g_ids.tolist(), g_box.tolist(), strict=True)}
        if set(w) != set(g):
            differ += 1
            continue
        for b, i in w.items():
            assert mapping.setdefault(i, g[b]) == g[b], "an id switch against the dense path"
    return differ


@pytest.mark.parametrize("name, seqs, differing", [
    # every MOT15 frame the same (ByteTrack: the ids too)
    ("bytetrack", MOT15_SEQS, 0),
    ("sort", MOT15_SEQS, 0),
    # OC-SORT's momentum term is summed over pairs that do not overlap as well: the one
    # place the groups can differ (Venice-2: 28 of 600 frames, KITTI-13: 44 of 340)
    ("ocsort", ["ADL-Rundle-6", "ETH-Bahnhof", "PETS09-S2L1", "TUD-Stadtmitte"], 0),
])
def test_trackers_on_pairs_track_mot15_as_the_dense_path(data, monkeypatch, name, seqs, differing):
    for seq in seqs:
        frames, _ = load_sequence(data / "mot15" / seq)
        want = run(name, frames, 10**15, monkeypatch)
        got = run(name, frames, 0, monkeypatch)  # every frame through Pairs
        assert same_up_to_ids(want, got) == differing, seq
        if name == "bytetrack":
            assert all(np.array_equal(w[0], g[0]) for w, g in zip(want, got, strict=True))


@pytest.mark.parametrize("name", ["sort", "bytetrack", "ocsort"])
def test_two_thousand_boxes_a_frame_tracked_as_the_dense_path_does(monkeypatch, name):
    xy = np.random.default_rng(0).uniform(0, 2000, (2000, 2))  # 1 in 10 boxes overlaps another
    frames = [Detections(np.c_[xy + 2 * k, xy + 2 * k + [20, 40]].astype(np.float32), np.full(2000, 0.9, np.float32))
              for k in range(5)]
    want = run(name, frames, 10**15, monkeypatch)
    got = run(name, frames, DENSE_PAIRS, monkeypatch)  # 4,000,000 pairs: crowded
    assert [len(ids) for ids, _ in got] == [2000] * 5
    assert sparse.crowded(2000, 2000) and DENSE_PAIRS == 250_000
    assert same_up_to_ids(want, got) == 0
