"""Pure association functions: the IoU matrix with class gating, and matching.

Every tracker here gates classes the same way: :func:`iou_matrix` given the classes of
both sides scores a pair of different classes :data:`OTHER_CLASS` (-1), an IoU that no
threshold admits and that no solver prefers; :func:`iou_cost` turns it into an infinite
cost. Matching comes in the two orders the published trackers use, both returning
``matches (K, 2)`` as ``(row, col)`` pairs plus the unmatched rows and columns:

- :func:`assign` (ByteTrack, on :func:`iou_cost`): pairs past the threshold are
  admissible, then the minimum-cost matching among them;
- :func:`assign_sort` (SORT, OC-SORT): the maximum-similarity matching first, then pairs
  below the threshold are dropped, as the reference implementations do (their results
  are reproduced only in this order).

Past :data:`trackers.sparse.DENSE_PAIRS` pairs (crowded frames) :func:`similarity` gives
:class:`trackers.sparse.Pairs` instead of a matrix, and every function here takes them:
only overlapping pairs are held, and matching is solved per group of competing pairs.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment

from trackers import sparse
from trackers.sparse import BIG_COST, EMPTY_MATCHES, Pairs, unmatched

__all__ = ["EMPTY_MATCHES", "OTHER_CLASS", "Pairs", "assign", "assign_sort", "iou_cost", "iou_matrix", "similarity",
           "unmatched"]

OTHER_CLASS = -1.0  # the IoU of a pair of different classes: never matched


@numba.njit(cache=True)
def _iou(a, b, class_a, class_b, out):
    for i in range(a.shape[0]):
        area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
        for j in range(b.shape[0]):
            if class_a.shape[0] and class_a[i] != class_b[j]:
                out[i, j] = -1.0  # OTHER_CLASS
                continue
            w = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
            h = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
            inter = max(0.0, w) * max(0.0, h)
            area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            out[i, j] = inter / (area_a + area_b - inter)


_NO_CLASSES = np.empty(0, np.int64)
_NO_SCORES = np.empty(0, np.float32)


def iou_matrix(
    a: np.ndarray, b: np.ndarray, class_a: np.ndarray | None = None, class_b: np.ndarray | None = None
) -> np.ndarray:
    """IoU of every box in ``a`` ``(N, 4)`` with every box in ``b`` ``(M, 4)``, xyxy.

    Returns ``(N, M)`` float64. The same arithmetic as SORT's ``iou_batch`` (union
    without clamping degenerate areas), so that its results are reproduced bit for bit.
    With ``class_a`` ``(N,)`` and ``class_b`` ``(M,)``, pairs of different classes get
    :data:`OTHER_CLASS`.
    """
    out = np.empty((len(a), len(b)))
    if class_a is None:
        class_a = class_b = _NO_CLASSES
    _iou(
        np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
        np.asarray(class_a, dtype=np.int64), np.asarray(class_b, dtype=np.int64), out,
    )
    return out


def similarity(
    a: np.ndarray, b: np.ndarray, class_a: np.ndarray | None = None, class_b: np.ndarray | None = None
) -> np.ndarray | Pairs:
    """:func:`iou_matrix`, or past :data:`trackers.sparse.DENSE_PAIRS` pairs the same IoU
    of only the overlapping pairs (memory and time linear in the boxes, in practice)."""
    if not sparse.crowded(len(a), len(b)):
        return iou_matrix(a, b, class_a, class_b)
    if class_a is None:
        class_a = class_b = _NO_CLASSES
    return sparse.overlaps(a, b, class_a, class_b)


@numba.njit(cache=True)
def _iou_cost(iou, scores, out):
    fuse = scores.shape[0] > 0
    for i in range(iou.shape[0]):
        for j in range(iou.shape[1]):
            if iou[i, j] == OTHER_CLASS:
                out[i, j] = np.inf
            else:
                out[i, j] = 1.0 - (iou[i, j] * scores[j] if fuse else iou[i, j])


def iou_cost(iou: np.ndarray | Pairs, scores: np.ndarray | None = None) -> np.ndarray | Pairs:
    """ByteTrack's cost ``1 - IoU`` (``1 - IoU * score`` with the column ``scores``
    ``(M,)``), infinite for pairs of other classes: :func:`assign` then never admits
    them, whatever its threshold (``1 - OTHER_CLASS * score`` would be admitted by a
    threshold of ``1 + score``)."""
    if isinstance(iou, Pairs):
        return sparse.cost(iou, scores)
    out = np.empty(iou.shape)
    _iou_cost(iou, _NO_SCORES if scores is None else np.asarray(scores), out)
    return out


def assign(cost: np.ndarray | Pairs, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching among pairs with ``cost <= threshold``.

    Fast path: when every row and column has at most one admissible pair, those pairs are
    the optimal matching and the Hungarian solver is skipped.

    Args:
        cost: ``(N, M)``; ``inf`` (or NaN) forbids a pair.
        threshold: Largest admissible cost.

    Returns:
        ``matches (K, 2)`` of ``(row, col)`` sorted by row, ``unmatched_rows``,
        ``unmatched_cols`` (sorted).
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return EMPTY_MATCHES, np.arange(n), np.arange(m)
    if isinstance(cost, Pairs):
        return sparse.assign(cost, threshold)
    ok = cost <= threshold
    if ok.sum(1).max() <= 1 and ok.sum(0).max() <= 1:
        matches = np.argwhere(ok)
    else:
        rows, cols = linear_sum_assignment(np.where(ok, cost, BIG_COST))
        keep = ok[rows, cols]
        matches = np.stack([rows[keep], cols[keep]], axis=1)
    return (matches, *unmatched(matches, n, m))


@numba.njit(cache=True)
def _pairs_above(iou, threshold):
    """The pairs with ``iou > threshold`` as ``(K, 2)``, whether they are one-to-one,
    and the rows and columns in none of them (one pass, no temporaries: this runs on
    every frame)."""
    n, m = iou.shape
    pairs = np.empty((n * m, 2), np.intp)
    row_used = np.zeros(n, np.bool_)
    col_used = np.zeros(m, np.bool_)
    k = 0
    unique = True
    for i in range(n):
        for j in range(m):
            if iou[i, j] > threshold:
                pairs[k, 0] = i
                pairs[k, 1] = j
                k += 1
                if row_used[i] or col_used[j]:
                    unique = False
                row_used[i] = True
                col_used[j] = True
    return pairs[:k], unique, np.flatnonzero(~row_used), np.flatnonzero(~col_used)


def assign_sort(
    iou: np.ndarray | Pairs, threshold: float, bonus: np.ndarray | sparse.Block | None = None, fast_path: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SORT's matching, exactly: the assignment maximizing ``iou + bonus`` first, then
    the pairs with ``iou < threshold`` dropped.

    With ``fast_path``, when the pairs with ``iou > threshold`` are already one-to-one
    they are the result and the solver is skipped (the reference's shortcut, which can
    keep a pair the full solver would trade away).

    Args:
        iou: ``(N, M)`` similarities (detections by tracks in SORT).
        threshold: Smallest IoU of a kept pair.
        bonus: ``(N, M)`` added to ``iou`` for the solver only (OC-SORT's momentum term);
            with :class:`Pairs`, a function of ``(rows, cols)`` giving that block of it.

    Returns:
        ``matches (K, 2)`` sorted by row; the unmatched rows in the reference's order
        (first those never assigned, then those dropped: new tracks are born in this
        order; with :class:`Pairs`, sorted); the unmatched columns, sorted.
    """
    n, m = iou.shape
    if n == 0 or m == 0:
        return EMPTY_MATCHES, np.arange(n), np.arange(m)
    if isinstance(iou, Pairs):
        return sparse.assign_sort(iou, threshold, bonus, fast_path)
    pairs, unique, free_rows, free_cols = _pairs_above(iou, threshold)
    if not len(pairs):  # nothing above the threshold: nothing can pass it
        return EMPTY_MATCHES, free_rows, free_cols
    if fast_path and unique:
        return pairs, free_rows, free_cols
    rows, cols = linear_sum_assignment(-(iou if bonus is None else iou + bonus))
    return _keep_above(iou, rows, cols, threshold)


@numba.njit(cache=True)
def _keep_above(iou, rows, cols, threshold):
    """The solver's pairs with ``iou >= threshold``; unmatched rows as the reference
    orders them (never assigned, then dropped); unmatched columns."""
    n, m = iou.shape
    matches = np.empty((rows.shape[0], 2), np.intp)
    dropped = np.empty(rows.shape[0], np.intp)
    assigned = np.zeros(n, np.bool_)
    col_free = np.ones(m, np.bool_)
    k = d = 0
    for p in range(rows.shape[0]):
        i, j = rows[p], cols[p]
        assigned[i] = True
        if iou[i, j] >= threshold:
            matches[k, 0] = i
            matches[k, 1] = j
            col_free[j] = False
            k += 1
        else:
            dropped[d] = i
            d += 1
    free_rows = np.concatenate((np.flatnonzero(~assigned), dropped[:d]))
    return matches[:k], free_rows, np.flatnonzero(col_free)
