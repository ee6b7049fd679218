import numpy as np
import pytest

from trackers.association import OTHER_CLASS, assign, assign_sort, iou_cost, iou_matrix


def test_iou_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 50 / 150, 0], [1, 50 / 150, 0]])
    assert iou_matrix(a, np.empty((0, 4))).shape == (2, 0)


@pytest.mark.parametrize(
    "cost, threshold, matches, free_rows, free_cols",
    [
        # one-to-one after thresholding: the fast path
        ([[0.1, 0.9], [0.9, 0.2]], 0.5, [[0, 0], [1, 1]], [], []),
        # a conflict the Hungarian solver resolves for the lower total cost
        ([[0.1, 0.2], [0.15, 0.9]], 0.5, [[0, 1], [1, 0]], [], []),
        # nothing admissible
        ([[0.9, 0.8]], 0.5, [], [0], [0, 1]),
        # more rows than columns
        ([[0.3], [0.1], [0.2]], 0.5, [[1, 0]], [0, 2], []),
        # an infinite cost (other class) is never matched
        ([[np.inf, 0.4]], 0.5, [[0, 1]], [], [0]),
    ],
)
def test_assign(cost, threshold, matches, free_rows, free_cols):
    cost = np.array(cost, float)
    m, ur, uc = assign(cost, threshold)
    assert m.tolist() == matches
    assert ur.tolist() == free_rows
    assert uc.tolist() == free_cols


def test_assign_empty():
    m, ur, uc = assign(np.empty((0, 3)), 0.5)
    assert m.shape == (0, 2) and ur.tolist() == [] and uc.tolist() == [0, 1, 2]


def test_pairs_of_other_classes_are_gated_the_same_way_for_every_matcher():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    others = np.array([[0, 0, 10, 10], [0, 0, 10, 20]], float)
    iou = iou_matrix(boxes, others, np.array([0, 1]), np.array([1, 1]))
    assert iou.tolist() == [[OTHER_CLASS, OTHER_CLASS], [1.0, 0.5]]
    # assign on plain 1 - iou (cost 2) does not admit them below a threshold of 2
    m, ur, uc = assign(1.0 - iou, 0.999)
    assert m.tolist() == [[1, 0]] and ur.tolist() == [0] and uc.tolist() == [1]
    # through iou_cost they cost infinity: not admitted even past 1 + score, where
    # 1 - OTHER_CLASS * score would be
    cost = iou_cost(iou, np.array([0.5, 0.0], np.float32))
    assert cost.tolist() == [[np.inf, np.inf], [0.5, 1.0]]
    m, ur, uc = assign(cost, 3.0)
    assert m.tolist() == [[1, 0]] and ur.tolist() == [0] and uc.tolist() == [1]
    assert iou_cost(iou).tolist() == [[np.inf, np.inf], [0.0, 0.5]]
    # nor does assign_sort, even where its solver must place row 0 somewhere
    m, ur, uc = assign_sort(iou, 0.3, fast_path=False)
    assert m.tolist() == [[1, 0]] and ur.tolist() == [0] and uc.tolist() == [1]


@pytest.mark.parametrize(
    "iou, fast_path, matches, free_rows",
    [
        # the pairs above the threshold are one-to-one: taken as they are
        ([[0.35, 0.29], [0.29, 0.0]], True, [[0, 0]], [1]),
        # the full solver trades that pair for a higher total, then drops both (below 0.3)
        ([[0.35, 0.29], [0.29, 0.0]], False, [], [0, 1]),
        # the reference order of unmatched rows: never assigned first, then dropped
        ([[0.1, 0.0], [0.9, 0.8], [0.0, 0.9], [0.05, 0.0]], True, [[1, 0], [2, 1]], [0, 3]),
        ([[0.2, 0.25], [0.9, 0.95], [0.95, 0.0]], True, [[1, 1], [2, 0]], [0]),
    ],
)
def test_assign_sort(iou, fast_path, matches, free_rows):
    m, ur, _ = assign_sort(np.array(iou), 0.3, fast_path=fast_path)
    assert m.tolist() == matches and ur.tolist() == free_rows


def test_assign_sort_lists_unassigned_rows_before_dropped_ones():
    # 3 rows, 2 columns: row 1 takes column 1; of rows 0 and 2 the solver gives column 0
    # to row 0 (0.2 > 0), which the threshold drops; row 2 is never assigned
    iou = np.array([[0.2, 0.0], [0.9, 0.95], [0.0, 0.0]])
    m, ur, uc = assign_sort(iou, 0.3, fast_path=False)
    assert m.tolist() == [[1, 1]] and ur.tolist() == [2, 0] and uc.tolist() == [0]
