"""One FCLS: the numpy solver (core.solvers.fcls) and the torch A-step's (core.solvers.astep) agree, and both match
SLSQP."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from core.solvers.astep import fcls_batched
from core.errors import DeepGUError
from core.solvers.fcls import fcls
from core.validation import MAX_MATERIALS

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = ("generic", "collinear", "duplicate", "affine")


def cases(sizes):
    """(P, kind) for every size and kind (the mid-point of two endmembers needs a third)."""
    return [(P, kind) for P in sizes for kind in KINDS if not (kind == "affine" and P < 3)]


def problem(P, kind, seed, L=None):
    """Endmembers M (L, P) and pixels Y (L, N): random, far outside the simplex cone, inside it, at the vertices.

    ``collinear``: the last endmember is twice the first (G singular, the KKT systems are not: the minimiser is
    unique); ``duplicate`` / ``affine``: the last one repeats the first / is the mid-point of the first two (affinely
    dependent: the minimiser need not be unique, M a is).
    """
    rng = np.random.default_rng(seed)
    L = L or 2 * P + 6
    M = rng.random((L, P))
    if kind == "collinear":
        M[:, -1] = 2.0 * M[:, 0]
    elif kind == "duplicate":
        M[:, -1] = M[:, 0]
    elif kind == "affine":
        M[:, -1] = 0.5 * (M[:, 0] + M[:, 1])
    Y = np.hstack([rng.random((L, 25)), 5.0 * rng.standard_normal((L, 15)),
                   M @ rng.dirichlet(np.ones(P), 15).T, M])
    return M, Y


def torch_fcls(M, Y, dtype, per_pixel):
    """The A-step's FCLS, (P, N) as float64: shared endmembers, or the same ones repeated for every pixel."""
    Mt, Yt = torch.as_tensor(M, dtype=dtype), torch.as_tensor(Y.T, dtype=dtype)
    if per_pixel:
        Mt = Mt.expand(Yt.shape[0], -1, -1)
    return fcls_batched(Mt, Yt).double().numpy().T


def unique_minimiser(kind, M):
    return kind in ("generic", "collinear") and M.shape[0] >= M.shape[1]


def slsqp_fcls(M, y):
    """Independent reference: scipy's SLSQP on min ||y - M a||^2, a >= 0, sum(a) = 1."""
    P = M.shape[1]
    result = minimize(lambda a: np.sum((y - M @ a) ** 2), np.full(P, 1.0 / P), method="SLSQP",
                      jac=lambda a: 2.0 * M.T @ (M @ a - y), bounds=[(0.0, 1.0)] * P,
                      constraints=[{"type": "eq", "fun": lambda a: np.sum(a) - 1.0, "jac": lambda a: np.ones(P)}],
                      options={"ftol": 1e-15, "maxiter": 1000})
    return result.x


def objective(M, Y, A):
    return np.sum((Y - M @ A) ** 2, axis=0)


@pytest.mark.parametrize("P,kind", cases(range(2, MAX_MATERIALS + 1)))
def test_numpy_and_torch_agree_in_float64(P, kind):
    M, Y = problem(P, kind, seed=P)
    A = fcls(Y, M)
    for per_pixel in (False, True):
        A_torch = torch_fcls(M, Y, torch.float64, per_pixel)
        assert A_torch.min() >= 0 and np.allclose(A_torch.sum(0), 1.0, atol=1e-12)
        if unique_minimiser(kind, M):
            assert np.max(np.abs(A_torch - A)) < 1e-6
        assert np.max(np.abs(M @ A_torch - M @ A)) < 1e-6
        np.testing.assert_allclose(objective(M, Y, A_torch), objective(M, Y, A), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("P,kind", cases([2, 4, 7, MAX_MATERIALS]))
def test_numpy_and_torch_agree_in_float32(P, kind):
    M, Y = problem(P, kind, seed=100 + P)
    M, Y = M.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)  # the same data in both
    A = fcls(Y, M)
    for per_pixel in (False, True):
        A_torch = torch_fcls(M, Y, torch.float32, per_pixel)
        if unique_minimiser(kind, M):
            assert np.max(np.abs(A_torch - A)) < 1e-4
        assert np.max(np.abs(M @ A_torch - M @ A)) < 1e-4 * max(1.0, np.abs(M @ A).max())


@pytest.mark.parametrize("P,kind,L", [(3, "generic", None), (5, "collinear", None), (6, "generic", 4),
                                      (4, "duplicate", None), (MAX_MATERIALS, "generic", None)])
def test_both_match_slsqp(P, kind, L):
    M, Y = problem(P, kind, seed=7 * P, L=L)
    pixels = [0, 1, 30, 45, Y.shape[1] - 1]          # random, outside the cone, inside, a vertex
    Y = Y[:, pixels]
    reference = np.stack([slsqp_fcls(M, y) for y in Y.T], axis=1)
    for A in (fcls(Y, M), torch_fcls(M, Y, torch.float64, False), torch_fcls(M, Y, torch.float64, True)):
        assert np.all(objective(M, Y, A) <= objective(M, Y, reference) + 1e-10)   # exact: never worse
        np.testing.assert_allclose(objective(M, Y, A), objective(M, Y, reference), rtol=1e-6, atol=1e-10)
        if unique_minimiser(kind, M):
            assert np.max(np.abs(A - reference)) < 1e-4


def test_one_limit_one_message():
    M, Y = np.ones((20, MAX_MATERIALS + 1)), np.ones((20, 3))
    messages = set()
    for solve in (lambda: fcls(Y, M), lambda: torch_fcls(M, Y, torch.float64, False),
                  lambda: torch_fcls(M, Y, torch.float64, True)):
        with pytest.raises(DeepGUError) as error:
            solve()
        messages.add(str(error.value))
    assert messages == {"the endmember matrix has %d materials; DeepGU handles at most %d"
                        % (MAX_MATERIALS + 1, MAX_MATERIALS)}
