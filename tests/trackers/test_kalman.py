"""The batched Kalman filter against filterpy on the same models, step by step."""

import numpy as np
from filterpy.kalman import KalmanFilter

from trackers import kalman
from trackers.core import SortModel


def sort_filterpy(z0: np.ndarray) -> KalmanFilter:
    """SORT's reference filter: state x, y, s, r, vx, vy, vs."""
    kf = KalmanFilter(dim_x=7, dim_z=4)
    kf.F = np.eye(7)
    kf.F[0, 4] = kf.F[1, 5] = kf.F[2, 6] = 1
    kf.H = np.eye(4, 7)
    kf.R[2:, 2:] *= 10.0
    kf.P[4:, 4:] *= 1000.0
    kf.P *= 10.0
    kf.Q[-1, -1] *= 0.01
    kf.Q[4:, 4:] *= 0.01
    kf.x[:4] = z0.reshape(4, 1)
    return kf


def test_sort_model_matches_filterpy_step_by_step():
    rng = np.random.default_rng(0)
    n = 5
    z = np.column_stack([rng.uniform(0, 500, n), rng.uniform(0, 400, n), rng.uniform(500, 5000, n),
                         rng.uniform(0.3, 0.6, n)])
    refs = [sort_filterpy(z[i]) for i in range(n)]
    state = kalman.initiate(z, SortModel.P0_POS, SortModel.P0_VEL)
    for step in range(30):
        kalman.predict(state, SortModel.Q_POS, SortModel.Q_VEL)
        for kf in refs:
            kf.predict()
        observed = rng.random(n) < 0.7  # some tracks miss a measurement
        z = z + np.column_stack([rng.normal(3, 1, n), rng.normal(-2, 1, n), rng.normal(20, 5, n),
                                 rng.normal(0, 0.01, n)])
        rows = np.flatnonzero(observed)
        sub = state[:, rows]
        kalman.update(sub, z[rows], SortModel.R)
        state[:, rows] = sub
        for i in rows:
            refs[i].update(z[i].reshape(4, 1))
        x, p = kalman.to_full(state, velocity_axes=3)
        assert (state[1, :, 3] == 0).all() and (state[3, :, 3] == 0).all()  # r stays without velocity
        for i, kf in enumerate(refs):
            np.testing.assert_allclose(x[i], kf.x[:, 0], rtol=1e-9, atol=1e-9, err_msg=f"step {step}")
            np.testing.assert_allclose(p[i], kf.P, rtol=1e-9, atol=1e-9, err_msg=f"step {step}")


def test_bytetrack_model_matches_filterpy_with_per_track_noise():
    """ByteTrack's x, y, a, h model: noise scales with each track's height."""
    wp, wv = 1 / 20, 1 / 160
    rng = np.random.default_rng(1)
    n = 4
    z = np.column_stack([rng.uniform(0, 500, n), rng.uniform(0, 400, n), rng.uniform(0.3, 0.6, n),
                         rng.uniform(50, 200, n)])
    h = z[:, 3]
    p_pos = np.column_stack([2 * wp * h, 2 * wp * h, np.full(n, 1e-2), 2 * wp * h]) ** 2
    p_vel = np.column_stack([10 * wv * h, 10 * wv * h, np.full(n, 1e-5), 10 * wv * h]) ** 2
    kf_ours = kalman.initiate(z, p_pos, p_vel)
    refs = []
    for i in range(n):
        kf = KalmanFilter(dim_x=8, dim_z=4)
        kf.F = np.eye(8)
        for a in range(4):
            kf.F[a, 4 + a] = 1
        kf.H = np.eye(4, 8)
        kf.x = np.r_[z[i], np.zeros(4)].reshape(8, 1)
        kf.P = np.diag(np.r_[p_pos[i], p_vel[i]])
        refs.append(kf)
    for step in range(20):
        h = kf_ours[0, :, 3].copy()
        q_pos = np.column_stack([wp * h, wp * h, np.full(n, 1e-2), wp * h]) ** 2
        q_vel = np.column_stack([wv * h, wv * h, np.full(n, 1e-5), wv * h]) ** 2
        kalman.predict(kf_ours, q_pos, q_vel)
        for i, kf in enumerate(refs):
            kf.Q = np.diag(np.r_[q_pos[i], q_vel[i]])
            kf.predict()
        z = z + rng.normal(0, 2, z.shape) * [1, 1, 0.001, 1]
        h = kf_ours[0, :, 3].copy()
        r = np.column_stack([wp * h, wp * h, np.full(n, 1e-1), wp * h]) ** 2
        kalman.update(kf_ours, z, r)
        for i, kf in enumerate(refs):
            kf.update(z[i].reshape(4, 1), R=np.diag(r[i]))
        x, p = kalman.to_full(kf_ours, velocity_axes=4)
        for i, kf in enumerate(refs):
            np.testing.assert_allclose(x[i], kf.x[:, 0], rtol=1e-9, atol=1e-7, err_msg=f"step {step}")
            np.testing.assert_allclose(p[i], kf.P, rtol=1e-9, atol=1e-9, err_msg=f"step {step}")
