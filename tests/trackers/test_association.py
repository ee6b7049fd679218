import numpy as np
import pytest

from trackers.association import assign, forbid_cross_class, iou_matrix


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


def test_forbid_cross_class():
    cost = forbid_cross_class(np.zeros((2, 2)), np.array([0, 1]), np.array([1, 1]))
    assert cost.tolist() == [[np.inf, np.inf], [0, 0]]
