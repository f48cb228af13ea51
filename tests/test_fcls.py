"""FCLS (numpy) against an independent per-pixel reference (NNLS with a heavily weighted sum-to-one row).

The torch A-step's FCLS is compared with this one in test_fcls_torch.py.
"""

import numpy as np
import pytest
from scipy.optimize import nnls

import core.solvers.fcls as fcls_module
from core.errors import Canceled, DeepGUError
from core.solvers.fcls import fcls, reconstruction_rmse
from core.validation import MAX_MATERIALS
from helpers import Recorder


def reference_fcls(Y, M, delta=1e4):
    """Per-pixel loop: min ||[y; d] - [M; d 1^T] a||^2, a >= 0, with d = delta ||M|| (scipy NNLS)."""
    d = delta * max(np.linalg.norm(M), 1.0)
    augmented = np.vstack([M, np.full((1, M.shape[1]), d)])
    return np.stack([nnls(augmented, np.append(y, d), maxiter=10000)[0] for y in Y.T], axis=1)


def objective(Y, M, A):
    return 0.5 * np.sum((Y - M @ A) ** 2, axis=0)


def assert_on_simplex(A):
    assert A.dtype == np.float64
    assert np.all(A >= 0)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, atol=1e-12)


def assert_kkt(Y, M, A, tol=1e-8):
    """Optimality certificate: the gradient g = G a - b equals -mu on the support and >= -mu off it."""
    g = M.T @ (M @ A - Y)
    scale = np.linalg.norm(M) ** 2 + np.abs(Y).max() * np.linalg.norm(M)
    mu = -np.sum(g * A, axis=0)  # 1^T a = 1 and complementarity give mu = -g^T a
    assert np.all(g + mu >= -tol * scale)
    assert np.all(np.abs((g + mu) * A) <= tol * scale)


@pytest.mark.parametrize("L,P,seed", [(20, 1, 0), (20, 2, 1), (30, 3, 2), (40, 5, 3), (8, 6, 4), (4, 6, 5)])
def test_matches_reference_on_random_problems(L, P, seed):
    rng = np.random.default_rng(seed)
    M = rng.random((L, P))
    Y = np.hstack([rng.random((L, 60)),                    # generic pixels
                   5.0 * rng.standard_normal((L, 20)),     # far outside the simplex
                   M @ rng.dirichlet(np.ones(P), 20).T])   # inside the simplex
    A = fcls(Y, M)
    assert A.shape == (P, Y.shape[1])
    assert_on_simplex(A)
    assert_kkt(Y, M, A)
    if L >= P:  # full column rank: the minimiser is unique, compare it directly
        np.testing.assert_allclose(A, reference_fcls(Y, M), atol=1e-6)
    else:       # rank deficient: compare the optimal value
        np.testing.assert_allclose(objective(Y, M, A), objective(Y, M, reference_fcls(Y, M)), rtol=1e-7, atol=1e-9)


def test_noiseless_mixtures_vertices_and_edges_are_recovered_exactly():
    rng = np.random.default_rng(7)
    M = rng.random((25, 4))
    truth = np.hstack([rng.dirichlet(np.ones(4), 50).T,
                       np.eye(4),                                 # exactly on each vertex
                       np.array([[0.3, 0.0], [0.7, 0.5], [0.0, 0.5], [0.0, 0.0]])])  # on edges
    A = fcls(M @ truth, M)
    np.testing.assert_allclose(A, truth, atol=1e-9)
    assert np.all(A[truth == 0] <= 1e-12)


@pytest.mark.parametrize("kind", ["duplicate", "collinear", "affine"])
def test_degenerate_endmembers_reach_the_optimal_value(kind):
    rng = np.random.default_rng(11)
    M = rng.random((15, 3))
    extra = {"duplicate": M[:, 0],
             "collinear": 2.0 * M[:, 1],                   # same direction as m2
             "affine": 0.5 * M[:, 0] + 0.5 * M[:, 2]}[kind]  # on the edge m1-m3
    M = np.column_stack([M, extra])
    Y = np.hstack([rng.random((15, 40)), 3.0 * rng.standard_normal((15, 10)), M])
    A = fcls(Y, M)
    assert_on_simplex(A)
    assert_kkt(Y, M, A)
    reference = reference_fcls(Y, M)
    np.testing.assert_allclose(objective(Y, M, A), objective(Y, M, reference), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(M @ A, M @ reference, atol=1e-5)


def test_chunks_give_the_unchunked_result(monkeypatch):
    rng = np.random.default_rng(3)
    M = rng.standard_normal((6, 5))
    Y = 2.0 * rng.standard_normal((6, 30))
    whole = fcls(Y, M)
    np.testing.assert_allclose(whole, reference_fcls(Y, M), atol=1e-6)
    monkeypatch.setattr(fcls_module, "CHUNK", 7)
    np.testing.assert_array_equal(fcls(Y, M), whole)


def test_the_largest_problem_accepted():
    rng = np.random.default_rng(12)
    M = rng.random((40, MAX_MATERIALS))
    Y = np.hstack([rng.random((40, 10)), M @ rng.dirichlet(np.ones(MAX_MATERIALS), 10).T])
    A = fcls(Y, M)
    assert_on_simplex(A)
    assert_kkt(Y, M, A)
    np.testing.assert_allclose(A, reference_fcls(Y, M), atol=1e-6)


def test_reconstruction_rmse():
    rng = np.random.default_rng(1)
    Y, M, A = rng.random((6, 4)), rng.random((6, 2)), rng.dirichlet(np.ones(2), 4).T
    expected = [np.sqrt(np.mean((Y[:, n] - M @ A[:, n]) ** 2)) for n in range(4)]
    np.testing.assert_allclose(reconstruction_rmse(Y, M, A), expected)
    np.testing.assert_allclose(reconstruction_rmse(M @ A, M, A), 0.0, atol=1e-15)


def test_progress_and_cancel(monkeypatch):
    monkeypatch.setattr(fcls_module, "CHUNK", 10)
    rng = np.random.default_rng(0)
    M, Y = rng.random((5, 2)), rng.random((5, 35))
    recorder = Recorder()
    fcls(Y, M, recorder)
    assert recorder.progress == pytest.approx([100 * 10 / 35, 100 * 20 / 35, 100 * 30 / 35, 100.0])
    with pytest.raises(Canceled):
        fcls(Y, M, Recorder(cancel_after=0))


@pytest.mark.parametrize("call,message", [
    (lambda Y, M: fcls(Y[0], M), "Y must be"),
    (lambda Y, M: fcls(Y[:3], M), "bands"),
    (lambda Y, M: fcls(Y, M[:, 0]), "M must be"),
    (lambda Y, M: fcls(np.where(Y > 0.9, np.nan, Y), M), "Y contains NaN"),
    (lambda Y, M: fcls(Y, np.where(M > 0.9, np.inf, M)), "M contains NaN"),
    (lambda Y, M: fcls(Y, np.zeros((5, 0))), "at least one"),
    (lambda Y, M: fcls(np.ones((20, 3)), np.ones((20, MAX_MATERIALS + 1))), "at most %d" % MAX_MATERIALS),
    (lambda Y, M: reconstruction_rmse(Y, M, np.ones((3, 20))), "shapes"),
])
def test_bad_input_raises_clear_errors(call, message):
    rng = np.random.default_rng(0)
    with pytest.raises(DeepGUError, match=message):
        call(rng.random((5, 20)), rng.random((5, 2)))
