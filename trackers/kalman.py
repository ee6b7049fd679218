"""Batched Kalman filtering for constant-velocity box models.

Every motion model used by the trackers here (SORT's ``x, y, s, r`` and ByteTrack's
``x, y, a, h``) has the same structure: each measured axis has a position and a velocity,
the transition ``F`` couples an axis only with its own velocity, and ``Q``, ``R`` and the
initial ``P`` are diagonal. The full ``(n, n)`` covariance is therefore block diagonal
with one 2x2 block per axis, and filtering reduces to closed-form element-wise arithmetic
over ``(N, A)`` arrays: no matrix product, no inverse, one numpy call per term for all
tracks at once. The results equal ``filterpy.kalman.KalmanFilter`` run on the full
matrices (tests check it step by step).

State layout (all float64):
    mean: ``(N, 2, A)``; ``mean[:, 0]`` positions, ``mean[:, 1]`` velocities.
    cov: ``(N, 3, A)``; per axis the block ``[[p00, p01], [p01, p11]]`` stored as
        ``cov[:, 0] = p00``, ``cov[:, 1] = p01``, ``cov[:, 2] = p11``.

Noise arguments broadcast against ``(N, A)``: pass ``(A,)`` for constant noise or
``(N, A)`` for per-track noise (ByteTrack scales it with box height).
"""

from __future__ import annotations

import numpy as np

__all__ = ["initiate", "predict", "update", "to_full"]


def initiate(
    z: np.ndarray, p_pos: np.ndarray, p_vel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """New tracks at measurements ``z`` ``(N, A)`` with zero velocity.

    Args:
        z: ``(N, A)`` measured positions.
        p_pos: Initial position variances, broadcastable to ``(N, A)``.
        p_vel: Initial velocity variances, broadcastable to ``(N, A)``.

    Returns:
        ``mean (N, 2, A)`` and ``cov (N, 3, A)``.
    """
    n, a = z.shape
    mean = np.zeros((n, 2, a))
    mean[:, 0] = z
    cov = np.zeros((n, 3, a))
    cov[:, 0] = p_pos
    cov[:, 2] = p_vel
    return mean, cov


def predict(
    mean: np.ndarray,
    cov: np.ndarray,
    q_pos: np.ndarray,
    q_vel: np.ndarray,
    dt: np.ndarray,
) -> None:
    """One time step ``x = F x``, ``P = F P F' + Q``, in place.

    Args:
        mean: ``(N, 2, A)``, updated in place.
        cov: ``(N, 3, A)``, updated in place.
        q_pos: Process noise variance of positions, broadcastable to ``(N, A)``.
        q_vel: Process noise variance of velocities, broadcastable to ``(N, A)``.
        dt: ``(A,)`` how much of the velocity enters the position per step (1 for a
            moving axis, 0 for an axis the model keeps constant, as SORT's aspect ratio).
    """
    p00, p01, p11 = cov[:, 0], cov[:, 1], cov[:, 2]
    mean[:, 0] += dt * mean[:, 1]
    # p00 first: it needs p01 and p11 before they change.
    p00 += dt * (2.0 * p01 + dt * p11) + q_pos
    p01 += dt * p11
    p11 += q_vel


def update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, r: np.ndarray) -> None:
    """Correct with measured positions ``z`` ``(N, A)`` of noise variance ``r``, in place.

    With ``S = p00 + r`` the gain is ``(p00, p01) / S`` and the posterior block is
    ``p00 r / S``, ``p01 r / S``, ``p11 - p01^2 / S``, which is what both the Joseph form
    (filterpy) and ``P - K S K'`` (ByteTrack) reduce to for a 2x2 block.
    """
    p00, p01, p11 = cov[:, 0], cov[:, 1], cov[:, 2]
    s = p00 + r
    innovation = z - mean[:, 0]
    k1 = p01 / s
    mean[:, 0] += (p00 / s) * innovation
    mean[:, 1] += k1 * innovation
    p11 -= k1 * p01
    shrink = r / s
    p00 *= shrink
    p01 *= shrink


def to_full(mean: np.ndarray, cov: np.ndarray, velocity_axes: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand to the usual ``(N, n)`` state and ``(N, n, n)`` covariance.

    The state is ordered as in SORT and ByteTrack: all positions, then the velocities of
    the first ``velocity_axes`` axes (SORT has 4 positions and 3 velocities).
    """
    n, _, a = mean.shape
    dim = a + velocity_axes
    x = np.concatenate([mean[:, 0], mean[:, 1, :velocity_axes]], axis=1)
    p = np.zeros((n, dim, dim))
    idx = np.arange(a)
    p[:, idx, idx] = cov[:, 0]
    v = np.arange(velocity_axes)
    p[:, v, a + v] = cov[:, 1, :velocity_axes]
    p[:, a + v, v] = cov[:, 1, :velocity_axes]
    p[:, a + v, a + v] = cov[:, 2, :velocity_axes]
    return x, p
