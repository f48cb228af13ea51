"""The held-out-band test of bench/bench_stay_put.py on scenes whose answer is known (issue 22 item 4)."""

import numpy as np

from bench.bench_stay_put import held_out_gain

L, P, K, N = 120, 3, 2, 400


def _scene(variability, seed=0):
    """Smooth references M0 (L, P) and directions D (L, P, K), and pixels M0 a + sum_p a_p D_p u_p + noise
    with codes u ~ N(0, variability^2) per pixel: the linear model the test fits."""
    rng = np.random.default_rng(seed)
    bands = np.linspace(0, 1, L)[:, None]
    M0 = 0.3 + 0.2 * np.sin(np.pi * (bands * np.arange(1, P + 1) + rng.uniform(0, 1, P)))
    D = 0.05 * np.cos(np.pi * (bands[:, :, None] * rng.uniform(1, 3, (1, P, K)) + rng.uniform(0, 1, (1, P, K))))
    A = rng.dirichlet(np.ones(P), N).T
    U = variability * rng.standard_normal((N, P, K))
    Y = M0 @ A + np.einsum("lpk,pn,npk->ln", D, A, U) + 0.002 * rng.standard_normal((L, N))
    return Y, M0, D


def test_no_variability_gives_no_gain():
    Y, M0, D = _scene(0.0)
    rho2 = np.median(((Y - M0 @ np.linalg.lstsq(M0, Y, rcond=None)[0]) ** 2).sum(0))
    assert held_out_gain(Y, M0, D, rho2) < 0.05          # noise fitted on some bands predicts nothing on others


def test_strong_variability_gives_a_large_gain():
    Y, M0, D = _scene(2.0)
    rho2 = np.median(((Y - M0 @ np.linalg.lstsq(M0, Y, rcond=None)[0]) ** 2).sum(0))
    assert held_out_gain(Y, M0, D, 0.01 * rho2) > 0.5
