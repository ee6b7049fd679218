"""Pure association functions: cost matrices and optimal assignment.

``assign(cost, threshold)`` returns ``matches (K, 2)`` as ``(row, col)`` pairs plus the
unmatched rows and columns; pairs whose cost exceeds the threshold are never matched.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["iou_matrix", "assign", "unmatched", "forbid_cross_class", "EMPTY_MATCHES"]

EMPTY_MATCHES = np.empty((0, 2), dtype=np.intp)
_BIG = 1e6


@numba.njit(cache=True)
def _iou(a, b, class_a, class_b, out):
    for i in range(a.shape[0]):
        area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
        for j in range(b.shape[0]):
            if class_a.shape[0] and class_a[i] != class_b[j]:
                out[i, j] = 0.0
                continue
            w = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
            h = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
            inter = max(0.0, w) * max(0.0, h)
            area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            out[i, j] = inter / (area_a + area_b - inter)


_NO_CLASSES = np.empty(0, np.int64)


def iou_matrix(
    a: np.ndarray, b: np.ndarray, class_a: np.ndarray | None = None, class_b: np.ndarray | None = None
) -> np.ndarray:
    """IoU of every box in ``a`` ``(N, 4)`` with every box in ``b`` ``(M, 4)``, xyxy.

    Returns ``(N, M)`` float64. The same arithmetic as SORT's ``iou_batch`` (union
    without clamping degenerate areas), so that its results are reproduced bit for bit.
    With ``class_a`` ``(N,)`` and ``class_b`` ``(M,)``, pairs of different classes get 0.
    """
    out = np.empty((len(a), len(b)))
    if class_a is None:
        class_a = class_b = _NO_CLASSES
    _iou(
        np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
        np.asarray(class_a, dtype=np.int64), np.asarray(class_b, dtype=np.int64), out,
    )
    return out


def forbid_cross_class(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``cost`` with an infinite cost wherever the row's class differs from the column's."""
    if cost.size and (rows[:, None] != cols[None, :]).any():
        cost = np.where(rows[:, None] == cols[None, :], cost, np.inf)
    return cost


def assign(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching among pairs with ``cost <= threshold``.

    Fast path: when every row and column has at most one admissible pair, those pairs are
    the optimal matching and the Hungarian solver is skipped.

    Args:
        cost: ``(N, M)``; ``inf`` forbids a pair.
        threshold: Largest admissible cost.

    Returns:
        ``matches (K, 2)`` of ``(row, col)`` sorted by row, ``unmatched_rows``,
        ``unmatched_cols`` (sorted).
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return EMPTY_MATCHES, np.arange(n), np.arange(m)
    ok = cost <= threshold
    if ok.sum(1).max() <= 1 and ok.sum(0).max() <= 1:
        matches = np.argwhere(ok)
    else:
        rows, cols = linear_sum_assignment(np.where(ok, cost, _BIG))
        keep = ok[rows, cols]
        matches = np.stack([rows[keep], cols[keep]], axis=1)
    return (matches, *unmatched(matches, n, m))


def unmatched(matches: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``range(n)`` and columns of ``range(m)`` absent from ``matches`` ``(K, 2)``."""
    row_free = np.ones(n, bool)
    row_free[matches[:, 0]] = False
    col_free = np.ones(m, bool)
    col_free[matches[:, 1]] = False
    return np.flatnonzero(row_free), np.flatnonzero(col_free)
