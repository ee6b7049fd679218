"""Batched Kalman filtering for constant-velocity box models.

Every motion model used by the trackers here (SORT's ``x, y, s, r`` and ByteTrack's
``x, y, a, h``) has the same structure: each measured axis has a position and a velocity,
the transition ``F`` couples an axis only with its own velocity, and ``Q``, ``R`` and the
initial ``P`` are diagonal. The full covariance is therefore block diagonal with one 2x2
block per axis, and filtering reduces to closed-form arithmetic per track and axis: no
matrix product, no inverse. An axis the model keeps constant (SORT's aspect ratio) is an
axis whose velocity has zero initial variance and zero process noise: its velocity and
cross-covariance stay exactly zero. The results equal ``filterpy.kalman.KalmanFilter``
run on the full matrices (tests check it step by step).

Each function processes all tracks in one call. They are compiled with numba: with a few
dozen tracks per frame numpy's fixed cost per call (about a microsecond for each of the
dozens of element-wise operations) would dominate the arithmetic itself.

State layout: one float64 array ``kf`` of shape ``(5, N, A)`` for ``N`` tracks and ``A``
axes::

    kf[0] position   kf[1] velocity   kf[2] p00   kf[3] p01   kf[4] p11

where ``[[p00, p01], [p01, p11]]`` is an axis' covariance block. Noise arguments are
``(A,)`` for noise shared by all tracks or ``(N, A)`` for per-track noise.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["initiate", "predict", "predict_kernel", "to_full", "update", "update_kernel"]


def initiate(z: np.ndarray, p_pos: np.ndarray, p_vel: np.ndarray) -> np.ndarray:
    """New tracks at measured positions ``z`` ``(N, A)``, at rest.

    Args:
        z: ``(N, A)`` measured positions.
        p_pos: Initial position variances, ``(A,)`` or ``(N, A)``.
        p_vel: Initial velocity variances, ``(A,)`` or ``(N, A)``.

    Returns:
        ``kf`` ``(5, N, A)``.
    """
    kf = np.zeros((5, *z.shape))
    kf[0] = z
    kf[2] = p_pos
    kf[4] = p_vel
    return kf


def _rows2d(noise: np.ndarray) -> np.ndarray:
    noise = np.asarray(noise, dtype=np.float64)
    return noise[None] if noise.ndim == 1 else noise


@numba.njit(cache=True)
def predict_kernel(kf, q_pos, q_vel):
    """:func:`predict` for compiled callers (the trackers' own kernels): noise is 2-D,
    ``(1, A)`` shared or ``(N, A)`` per track."""
    n, a = kf.shape[1], kf.shape[2]
    shared = q_pos.shape[0] == 1
    for i in range(n):
        q = 0 if shared else i
        for j in range(a):
            kf[0, i, j] += kf[1, i, j]
            p01 = kf[3, i, j]
            p11 = kf[4, i, j]
            kf[2, i, j] += 2.0 * p01 + p11 + q_pos[q, j]
            kf[3, i, j] = p01 + p11
            kf[4, i, j] = p11 + q_vel[q, j]


def predict(kf: np.ndarray, q_pos: np.ndarray, q_vel: np.ndarray) -> None:
    """One time step ``x = F x``, ``P = F P F' + Q`` for every track, in place.

    Args:
        kf: ``(5, N, A)`` state.
        q_pos: Process noise variance of positions, ``(A,)`` or ``(N, A)``.
        q_vel: Process noise variance of velocities, ``(A,)`` or ``(N, A)``.
    """
    predict_kernel(kf, _rows2d(q_pos), _rows2d(q_vel))


@numba.njit(cache=True)
def update_kernel(kf, rows, z, r):
    """:func:`update` for compiled callers: ``rows`` int64, ``r`` 2-D, ``(1, A)`` shared
    or ``(K, A)`` per measurement."""
    a = kf.shape[2]
    shared = r.shape[0] == 1
    for k in range(rows.shape[0]):
        i = rows[k]
        rk = 0 if shared else k
        for j in range(a):
            p00 = kf[2, i, j]
            p01 = kf[3, i, j]
            s = p00 + r[rk, j]
            innovation = z[k, j] - kf[0, i, j]
            k0 = p00 / s
            k1 = p01 / s
            kf[0, i, j] += k0 * innovation
            kf[1, i, j] += k1 * innovation
            kf[4, i, j] -= k1 * p01
            shrink = r[rk, j] / s
            kf[2, i, j] = p00 * shrink
            kf[3, i, j] = p01 * shrink


def update(kf: np.ndarray, z: np.ndarray, r: np.ndarray, rows: np.ndarray | None = None) -> None:
    """Correct tracks with measured positions ``z`` ``(K, A)``, in place.

    With ``S = p00 + r`` the gain is ``(p00, p01) / S`` and the posterior block is
    ``p00 r / S``, ``p01 r / S``, ``p11 - p01^2 / S``, which is what both the Joseph form
    (filterpy) and ``P - K S K'`` (ByteTrack) reduce to for a 2x2 block.

    Args:
        kf: ``(5, N, A)`` state.
        z: ``(K, A)`` measurements, one per updated track.
        r: Measurement noise variance, ``(A,)`` or ``(K, A)``.
        rows: The ``K`` tracks measured (default: all ``N``, in order).
    """
    if rows is None:
        rows = np.arange(kf.shape[1])
    update_kernel(kf, np.asarray(rows, dtype=np.int64), np.asarray(z, dtype=np.float64), _rows2d(r))


def to_full(kf: np.ndarray, velocity_axes: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand to the usual ``(N, n)`` state and ``(N, n, n)`` covariance.

    The state is ordered as in SORT and ByteTrack: all positions, then the velocities of
    the first ``velocity_axes`` axes (SORT has 4 positions and 3 velocities).
    """
    _, n, a = kf.shape
    v = velocity_axes
    dim = a + v
    x = np.concatenate([kf[0], kf[1, :, :v]], axis=1)
    p = np.zeros((n, dim, dim))
    idx = np.arange(a)
    p[:, idx, idx] = kf[2]
    w = np.arange(v)
    p[:, w, a + w] = kf[3, :, :v]
    p[:, a + w, w] = kf[3, :, :v]
    p[:, a + w, a + w] = kf[4, :, :v]
    return x, p
