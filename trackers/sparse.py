"""Association for crowded frames: the IoU of only the pairs of boxes that overlap, and
matching solved per group of competing pairs.

N detections against M tracks cost the dense path (:mod:`trackers.association`) N x M
memory and time, and its solver up to cubic time where pairs compete: 5,000 boxes a frame
took OC-SORT 1.7 s and 2 GB. Real boxes overlap only their neighbours, so past
:data:`DENSE_PAIRS` pairs the trackers hold :class:`Pairs` instead: the overlapping pairs
alone, found by a sweep over x (``O((N + M) log M + K)`` for K overlapping pairs), and
matched per connected group of the pairs that can be kept, each group by the same solver
on its own small block.

The result is the dense path's wherever the dense matching is decided inside such
groups: every frame whose pairs past the threshold are one-to-one (SORT's fast path), and
every ByteTrack matching (its inadmissible pairs never trade with admissible ones). The
one difference: SORT's and OC-SORT's solver maximises the IoU summed over every pair, kept
or not, so it may give up a pair past the threshold for two below it, which it then drops;
per group that trade cannot happen, and such a detection stays matched. Pairs of boxes
that do not overlap at all are never matched here, whatever the threshold (ByteTrack's
dense path admits them at ``match_thresh: 1``). Where two matchings cost exactly the same
(duplicate boxes) the two paths may pick different ones. A group still bigger than
:data:`GROUP_PAIRS` after that (thousands of boxes in one touching chain) is matched
greedily, best pair first, which keeps a crowd linear at the price of optimality there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

__all__ = ["BIG_COST", "DENSE_PAIRS", "EMPTY_MATCHES", "Pairs", "assign", "assign_sort", "cost", "crowded", "overlaps",
           "unmatched"]

DENSE_PAIRS = 250_000  # up to 500 x 500 the dense path runs (the reference trackers' results, exactly)
GROUP_PAIRS = 250_000  # the largest group of touching boxes solved as one dense block
BIG_COST = 1e6  # a forbidden pair's cost in a solver's matrix (the dense path's too)
EMPTY_MATCHES = np.empty((0, 2), np.intp)

Block = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Pairs:
    """A sparse ``(n, m)`` comparison: ``values[k]`` for the pair ``(rows[k], cols[k])``;
    a pair not held does not overlap (IoU 0), or is of another class."""

    n: int
    m: int
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.n, self.m

    def where(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` of the pairs where the boolean ``keep`` ``(K,)`` holds."""
        return self.rows[keep], self.cols[keep]


_warm = False


def warm() -> None:
    """Compiles (or loads from numba's cache) the kernels now, not on the first crowded
    frame hours into a run, where the compile (seconds) would stall the stream."""
    global _warm
    if not _warm:
        box = np.array([[0.0, 0.0, 1.0, 1.0]])
        overlaps(box, box, np.empty(0, np.int64), np.empty(0, np.int64))
        _greedy(np.zeros(1, np.intp), np.zeros(1, np.intp), 1, 1)
        _warm = True


def crowded(n: int, m: int) -> bool:
    """Whether an ``(n, m)`` comparison is held as :class:`Pairs`."""
    return n * m > DENSE_PAIRS


@numba.njit(cache=True)
def _overlapping(a, b, class_a, class_b):
    """Sweep and prune over x: boxes of both sides in order of x1, each side's boxes
    still open (x2 past the sweep) kept in a list; a box meets only the other side's open
    ones. Each pair overlapping in x is looked at once, so a very wide box costs one pass
    over the other side, not one per box."""
    n, m = a.shape[0], b.shape[0]
    x1 = np.concatenate((a[:, 0], b[:, 0]))
    order = np.argsort(x1, kind="mergesort")
    open_a = np.empty(n, np.intp)
    open_b = np.empty(m, np.intp)
    count_a = count_b = 0
    cap = 4 * (n + m) + 16
    rows = np.empty(cap, np.intp)
    cols = np.empty(cap, np.intp)
    vals = np.empty(cap)
    k = 0
    for e in order:
        from_a = e < n
        box = a[e] if from_a else b[e - n]
        x = box[0]
        others, count = (open_b, count_b) if from_a else (open_a, count_a)
        kept = 0
        for p in range(count):
            o = others[p]
            other = b[o] if from_a else a[o]
            if other[2] <= x:
                continue  # closed: dropped from the list
            others[kept] = o
            kept += 1
            i, j = (e, o) if from_a else (o, e - n)
            if class_a.shape[0] and class_a[i] != class_b[j]:
                continue
            w = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
            h = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
            if w <= 0.0 or h <= 0.0:
                continue
            inter = w * h
            area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
            area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
            if k == cap:
                cap *= 2
                rows, cols, vals = _grown(rows, cap), _grown(cols, cap), _grown(vals, cap)
            rows[k], cols[k] = i, j
            vals[k] = inter / (area_a + area_b - inter)  # iou_matrix's arithmetic: the same values
            k += 1
        if from_a:
            count_b = kept
            open_a[count_a] = e
            count_a += 1
        else:
            count_a = kept
            open_b[count_b] = e - n
            count_b += 1
    return rows[:k], cols[:k], vals[:k]


@numba.njit(cache=True)
def _grown(array, size):
    out = np.empty(size, array.dtype)
    out[: array.shape[0]] = array
    return out


def overlaps(a: np.ndarray, b: np.ndarray, class_a: np.ndarray, class_b: np.ndarray) -> Pairs:
    """The IoU of every overlapping pair of ``a`` ``(N, 4)`` and ``b`` ``(M, 4)`` (xyxy,
    finite), as :func:`trackers.association.iou_matrix` computes it; with non-empty
    ``class_a`` and ``class_b`` only pairs of one class."""
    rows, cols, vals = _overlapping(
        np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(class_a, np.int64),
        np.asarray(class_b, np.int64),
    )
    return Pairs(len(a), len(b), rows, cols, vals)


def cost(pairs: Pairs, scores: np.ndarray | None = None) -> Pairs:
    """ByteTrack's ``1 - IoU`` (``1 - IoU * score`` of the columns) of the pairs held."""
    sim = pairs.values if scores is None else pairs.values * np.asarray(scores, np.float64)[pairs.cols]
    return Pairs(pairs.n, pairs.m, pairs.rows, pairs.cols, 1.0 - sim)


def unmatched(matches: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``range(n)`` and columns of ``range(m)`` absent from ``matches`` ``(K, 2)``."""
    row_free = np.ones(n, bool)
    row_free[matches[:, 0]] = False
    col_free = np.ones(m, bool)
    col_free[matches[:, 1]] = False
    return np.flatnonzero(row_free), np.flatnonzero(col_free)


def _result(matches: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    matches = matches[np.argsort(matches[:, 0], kind="stable")]
    return (matches, *unmatched(matches, n, m))


def _one_to_one(rows: np.ndarray, cols: np.ndarray, n: int, m: int) -> np.ndarray:
    """Mask of the pairs whose row and column are in no other pair."""
    return (np.bincount(rows, minlength=n)[rows] == 1) & (np.bincount(cols, minlength=m)[cols] == 1)


def _groups(pairs: Pairs, link: np.ndarray):
    """The connected groups of the ``link`` pairs: per group its sorted rows, sorted
    columns, and the pairs held inside it (as :class:`Pairs`)."""
    n, m = pairs.shape
    rows, cols = pairs.where(link)
    graph = coo_array((np.ones(len(rows)), (rows, n + cols)), shape=(n + m, n + m))
    _, label = connected_components(graph, directed=False)
    linked = np.zeros(n + m, bool)
    linked[rows], linked[n + cols] = True, True
    nodes = np.flatnonzero(linked)
    nodes = nodes[np.argsort(label[nodes], kind="stable")]  # by group; in each, rows then columns, sorted
    held = np.flatnonzero(linked[pairs.rows] & linked[n + pairs.cols] & (label[pairs.rows] == label[n + pairs.cols]))
    held = held[np.argsort(label[pairs.rows[held]], kind="stable")]
    node_cut = np.flatnonzero(np.diff(label[nodes])) + 1
    held_cut = np.searchsorted(label[pairs.rows[held]], label[nodes[node_cut]])
    for group, inside in zip(np.split(nodes, node_cut), np.split(held, held_cut), strict=True):
        yield group[group < n], group[group >= n] - n, Pairs(n, m, pairs.rows[inside], pairs.cols[inside],
                                                             pairs.values[inside])


def _solve(pairs: Pairs, link: np.ndarray, block: Callable[[np.ndarray, np.ndarray, Pairs], tuple],
           keep: Callable[[np.ndarray], np.ndarray], first: Callable[[np.ndarray], np.ndarray],
           split: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Matches ``(K, 2)``, solved per connected group of the ``link`` pairs, each group's
    solver pairs passing ``keep`` kept. ``block(rows, cols, held)`` gives a group's dense
    values and the costs its solver minimises. A group too big for a dense block (a crowd
    whose boxes all touch) is grouped again by the pairs passing ``split``; one still too
    big is matched greedily, the pairs in the order of ``first(values)`` (ascending)."""
    out = [EMPTY_MATCHES]
    for g_rows, g_cols, held in _groups(pairs, link):
        if len(g_rows) == 1 and len(g_cols) == 1:
            if keep(held.values[:1])[0]:
                out.append(np.stack([held.rows, held.cols], axis=1))
        elif len(g_rows) * len(g_cols) > GROUP_PAIRS:
            if split is not None:
                out.append(_solve(held, split(held.values), block, keep, first))
            else:
                ok = keep(held.values)
                order = np.argsort(first(held.values[ok]), kind="stable")
                out.append(_greedy(held.rows[ok][order], held.cols[ok][order], held.n, held.m))
        else:
            values, costs = block(g_rows, g_cols, held)
            r, c = linear_sum_assignment(costs)
            ok = keep(values[r, c])
            out.append(np.stack([g_rows[r[ok]], g_cols[c[ok]]], axis=1))
    return np.concatenate(out)


@numba.njit(cache=True)
def _greedy(rows, cols, n, m):
    """The pairs, in their order, whose row and column are both still free."""
    row_used = np.zeros(n, np.bool_)
    col_used = np.zeros(m, np.bool_)
    out = np.empty((min(n, m, rows.shape[0]), 2), np.intp)
    k = 0
    for p in range(rows.shape[0]):
        i, j = rows[p], cols[p]
        if not row_used[i] and not col_used[j]:
            row_used[i] = col_used[j] = True
            out[k, 0], out[k, 1] = i, j
            k += 1
    return out[:k]


def _dense(held: Pairs, g_rows: np.ndarray, g_cols: np.ndarray, fill: float) -> np.ndarray:
    """The block ``g_rows x g_cols`` (both sorted) of the ``held`` values, ``fill`` elsewhere."""
    out = np.full((len(g_rows), len(g_cols)), fill)
    out[np.searchsorted(g_rows, held.rows), np.searchsorted(g_cols, held.cols)] = held.values
    return out


def assign_sort(pairs: Pairs, threshold: float, bonus: Block | None = None,
                fast_path: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`trackers.association.assign_sort` on :class:`Pairs` of IoU: the matching
    maximising ``iou + bonus`` per group of overlapping boxes, its pairs below the
    threshold dropped (a group bigger than :data:`GROUP_PAIRS` is grouped by the pairs
    past the threshold instead). ``bonus(rows, cols)`` gives the ``(len(rows),
    len(cols))`` term of a group. Unmatched rows come sorted."""
    n, m = pairs.shape
    if fast_path:
        rows, cols = pairs.where(pairs.values > threshold)
        if _one_to_one(rows, cols, n, m).all():
            return _result(np.stack([rows, cols], axis=1), n, m)

    def block(g_rows, g_cols, held):
        sim = _dense(held, g_rows, g_cols, 0.0)
        return sim, -(sim if bonus is None else sim + bonus(g_rows, g_cols))

    def keep(values):
        return values >= threshold

    linked = np.ones(len(pairs.values), bool)
    return _result(_solve(pairs, linked, block, keep, np.negative, split=keep), n, m)


def assign(pairs: Pairs, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`trackers.association.assign` on :class:`Pairs` of costs: the minimum-cost
    matching among the pairs with ``cost <= threshold``, per group of them (exact: an
    inadmissible pair never trades with admissible ones)."""
    n, m = pairs.shape

    def block(g_rows, g_cols, held):
        values = _dense(held, g_rows, g_cols, BIG_COST)
        return values, np.where(values <= threshold, values, BIG_COST)

    def keep(values):
        return values <= threshold

    return _result(_solve(pairs, keep(pairs.values), block, keep, np.positive), n, m)
