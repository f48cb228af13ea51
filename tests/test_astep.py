"""A-step: exact FCLS, simplex projection, masked differences and TV-regularised ADMM."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, nnls

from core.solvers.astep import (PixelGrid, TV_KINDS, abundance_objective, astep, fcls_batched, normal_equations,
                        project_simplex)
from core.errors import DeepGUError

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def nnls_fcls(M, y, weight=1e5):
    """Reference FCLS: NNLS on the system augmented with a heavily weighted sum-to-one row."""
    Ma = np.vstack([M, weight * np.ones((1, M.shape[1]))])
    return nnls(Ma, np.append(y, weight))[0]


def random_problem(n, L=25, P=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    M = torch.rand(n, L, P, generator=g, dtype=F64)
    Y = torch.rand(n, L, generator=g, dtype=F64) * 0.8
    return M, Y


def piecewise_scene(rows=16, cols=16, L=40, noise=0.05, seed=0):
    """Three constant regions, per-pixel endmembers with 5% variability, noisy pixels."""
    g = torch.Generator().manual_seed(seed)
    A = np.zeros((rows, cols, 3))
    A[: rows // 2, :, 0] = 1.0
    A[rows // 2:, : cols // 2, 1] = 1.0
    A[rows // 2:, cols // 2:] = [0.2, 0.3, 0.5]
    A = torch.as_tensor(A.reshape(-1, 3))
    M0 = torch.rand(L, 3, generator=g, dtype=F64)
    M = M0 * (1 + 0.05 * torch.randn(rows * cols, 1, 3, generator=g, dtype=F64))
    Y = torch.einsum("nlp,np->nl", M, A) + noise * torch.randn(rows * cols, L, generator=g, dtype=F64)
    return M, Y, A


def test_project_simplex_matches_bisection():
    V = torch.randn(500, 4, generator=torch.Generator().manual_seed(1), dtype=F64) * 2
    X = project_simplex(V)
    lo, hi = V.min(1).values - 1, V.max(1).values
    for _ in range(200):  # theta with sum(max(v - theta, 0)) = 1
        mid = (lo + hi) / 2
        big = torch.clamp(V - mid[:, None], min=0).sum(1) > 1
        lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
    assert torch.allclose(X, torch.clamp(V - lo[:, None], min=0), atol=1e-12)
    assert torch.allclose(project_simplex(X), X, atol=1e-15)


@pytest.mark.parametrize("P", [1, 3, 5])
def test_fcls_batched_matches_nnls(P):
    M, Y = random_problem(60, P=P, seed=P)
    A = fcls_batched(M, Y).numpy()
    ref = np.array([nnls_fcls(M[n].numpy(), Y[n].numpy()) for n in range(60)])
    np.testing.assert_allclose(A, ref, atol=1e-6)
    assert A.min() >= 0 and np.allclose(A.sum(1), 1, atol=1e-12)


def test_fcls_batched_shared_endmembers_and_duplicates():
    M, Y = random_problem(40, P=3, seed=7)
    shared = M[0]
    np.testing.assert_allclose(fcls_batched(shared, Y).numpy(),
                               fcls_batched(shared.expand(40, -1, -1), Y).numpy(), atol=1e-12)
    # two identical endmembers make some KKT systems singular: still the FCLS optimum
    dup = torch.cat([shared, shared[:, :1]], dim=1)
    A = fcls_batched(dup, Y)
    ref = np.array([nnls_fcls(dup.numpy(), Y[n].numpy()) for n in range(40)])
    np.testing.assert_allclose((dup @ A.T).numpy(), dup.numpy() @ ref.T, atol=1e-6)


def test_grid_differences_skip_nodata_and_are_adjoint():
    mask = np.array([[1, 1, 0, 1],
                     [1, 0, 1, 1],
                     [1, 1, 1, 1]], dtype=bool)
    grid = PixelGrid(mask)
    A = torch.arange(grid.n_pixels, dtype=F64)[:, None] ** 2
    dh, dv = grid.diff(A)
    full = np.full(mask.shape, np.nan)
    full[mask] = A[:, 0].numpy()
    ref_h = np.where(mask[:, :-1] & mask[:, 1:], full[:, 1:] - full[:, :-1], 0)
    ref_v = np.where(mask[:-1] & mask[1:], full[1:] - full[:-1], 0)
    got_h, got_v = np.zeros(mask.shape), np.zeros(mask.shape)
    got_h[mask], got_v[mask] = dh[:, 0].numpy(), dv[:, 0].numpy()
    np.testing.assert_array_equal(got_h[:, :-1], ref_h)
    np.testing.assert_array_equal(got_v[:-1], ref_v)
    assert not got_h[:, -1].any() and not got_v[-1].any()
    assert grid.n_edges == int((mask[:, :-1] & mask[:, 1:]).sum() + (mask[:-1] & mask[1:]).sum())
    g = torch.Generator().manual_seed(0)
    X, U, V = (torch.randn(grid.n_pixels, 3, generator=g, dtype=F64) for _ in range(3))
    dh, dv = grid.diff(X)
    assert float((dh * U).sum() + (dv * V).sum()) == pytest.approx(float((X * grid.diff_adjoint(U, V)).sum()))


@pytest.mark.parametrize("kind", ["box", "holes", "long"])
def test_shifted_laplacian_solve_matches_a_dense_solve(kind):
    """(2 I + D^T D) X = R: by DCTs on a full grid (with a nodata border), by preconditioned CG with holes,
    by plain CG on a grid too long for dense DCTs."""
    mask = np.zeros((9, 12), dtype=bool)
    mask[1:8, 2:12] = True                                 # nodata border: the valid pixels fill a 7 x 10 box
    if kind == "holes":
        mask[3, 4:7] = mask[6, 9] = False
    if kind == "long":
        mask = np.ones((2, 1030), dtype=bool)
    grid = PixelGrid(mask)
    n = grid.n_pixels
    laplacian = grid.laplacian(torch.eye(n, dtype=F64))                  # column i: D^T D e_i
    rhs = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    expected = torch.linalg.solve(2.0 * torch.eye(n, dtype=F64) + laplacian, rhs)
    np.testing.assert_allclose(grid.solve_shifted(rhs, torch.zeros_like(rhs)).numpy(), expected.numpy(), atol=1e-9)


def test_tv_kinds_on_a_hand_example():
    grid = PixelGrid(np.ones((1, 2), dtype=bool))
    A = torch.tensor([[0.0, 1.0], [0.6, 0.4]], dtype=F64)       # difference (0.6, -0.6)
    assert float(grid.tv(A, "anisotropic")) == pytest.approx(1.2)
    assert float(grid.tv(A, "group")) == pytest.approx(0.6 * 2 ** 0.5)
    assert float(grid.tv(A, "isotropic")) == pytest.approx(1.2)
    grid = PixelGrid(np.ones((2, 2), dtype=bool))
    B = torch.tensor([[0.0], [3.0], [4.0], [0.0]], dtype=F64)   # pixel 0: dh = 3, dv = 4
    assert float(grid.tv(B, "isotropic")) == pytest.approx(5.0 + 4.0 + 3.0)
    with pytest.raises(DeepGUError):
        grid.tv(B, "l2")


def test_lambda_zero_is_exact_fcls():
    M, Y = random_problem(30, P=4, seed=3)
    grid = PixelGrid(np.ones((5, 6), dtype=bool))
    A, info = astep(*normal_equations(M, Y), grid, 0.0)
    ref = np.array([nnls_fcls(M[n].numpy(), Y[n].numpy()) for n in range(30)])
    np.testing.assert_allclose(A.numpy(), ref, atol=1e-6)
    assert info["iterations"] == 0


@pytest.mark.parametrize("tv", TV_KINDS)
def test_tv_lowers_the_objective_stays_on_simplex_and_denoises(tv):
    M, Y, A_true = piecewise_scene(noise=0.2)
    grid = PixelGrid(np.ones((16, 16), dtype=bool))
    G, b = normal_equations(M, Y)
    yy = (Y * Y).sum(1)
    lam = 0.3
    A_fcls = fcls_batched(M, Y)
    A_init = project_simplex(A_fcls + 0.2)                 # a different, worse start
    A, info = astep(G, b, grid, lam, A_init=A_init, tv=tv, tol=1e-4, max_iter=2000)
    assert info["converged"]
    assert A.min() >= -1e-6 and torch.allclose(A.sum(1), torch.ones(256, dtype=F64), atol=1e-5)
    obj = abundance_objective(G, b, yy, A, grid, lam, tv)[0]
    assert obj <= abundance_objective(G, b, yy, A_fcls, grid, lam, tv)[0]
    assert obj <= abundance_objective(G, b, yy, A_init, grid, lam, tv)[0]

    def rmse(X):
        return float(((X - A_true) ** 2).mean().sqrt())

    assert rmse(A) < 0.5 * rmse(A_fcls)


def test_admm_reaches_the_optimum_of_a_smooth_reformulation():
    """min 1/2 sum ||y - M a||^2 + lam sum t,  -t <= D A <= t,  A on the simplex, by SLSQP."""
    rows, cols, P, L = 3, 3, 2, 6
    M, Y = random_problem(rows * cols, L=L, P=P, seed=11)
    grid = PixelGrid(np.ones((rows, cols), dtype=bool))
    G, b = normal_equations(M, Y)
    yy = (Y * Y).sum(1)
    lam = 0.2
    A, _ = astep(G, b, grid, lam, tol=1e-8, max_iter=20000)
    n = rows * cols
    pairs = [(i * cols + j, i * cols + j + 1) for i in range(rows) for j in range(cols - 1)]
    pairs += [(i * cols + j, (i + 1) * cols + j) for i in range(rows - 1) for j in range(cols)]
    Mn, Yn = M.numpy(), Y.numpy()

    def split(x):
        return x[:n * P].reshape(n, P), x[n * P:].reshape(len(pairs), P)

    def objective(x):
        a, t = split(x)
        r = Yn - np.einsum("nlp,np->nl", Mn, a)
        return 0.5 * (r * r).sum() + lam * t.sum()

    def ineq(x):
        a, t = split(x)
        d = np.array([a[j] - a[i] for i, j in pairs])
        return np.concatenate([(t - d).ravel(), (t + d).ravel()])

    x0 = np.concatenate([np.full(n * P, 1.0 / P), np.ones(len(pairs) * P)])
    sol = minimize(objective, x0, method="SLSQP", bounds=[(0, None)] * (n * P) + [(None, None)] * len(pairs) * P,
                   constraints=[{"type": "ineq", "fun": ineq},
                                {"type": "eq", "fun": lambda x: split(x)[0].sum(1) - 1}],
                   options={"maxiter": 1000, "ftol": 1e-12})
    assert sol.success
    ours = abundance_objective(G, b, yy, A, grid, lam)[0]
    assert ours == pytest.approx(sol.fun, rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(A.numpy(), split(sol.x)[0], atol=1e-3)


def test_resuming_from_a_previous_state_reaches_the_same_optimum():
    """A-step warm-started from the ADMM state of a problem with perturbed endmembers = a cold start."""
    M, Y, _ = piecewise_scene(noise=0.1, seed=4)
    grid = PixelGrid(np.ones((16, 16), dtype=bool))
    lam = 0.2
    G0, b0 = normal_equations(M * 1.05, Y)                 # the previous outer iteration's endmembers
    _, previous = astep(G0, b0, grid, lam, tol=1e-6, max_iter=5000)
    G, b = normal_equations(M, Y)
    cold, cold_info = astep(G, b, grid, lam, tol=1e-6, max_iter=5000)
    warm, warm_info = astep(G, b, grid, lam, tol=1e-6, max_iter=5000, state=previous["state"])
    assert cold_info["converged"] and warm_info["converged"]
    assert warm_info["iterations"] < cold_info["iterations"]
    yy = (Y * Y).sum(1)
    assert abundance_objective(G, b, yy, warm, grid, lam)[0] == pytest.approx(
        abundance_objective(G, b, yy, cold, grid, lam)[0], rel=1e-5)
    np.testing.assert_allclose(warm.numpy(), cold.numpy(), atol=2e-3)
    assert previous["state"].abundances.shape == (256, 3)            # the state itself was not modified in place
    again = astep(G0, b0, grid, lam, tol=1e-6, max_iter=5000)[1]["state"]
    np.testing.assert_array_equal(again.abundances.numpy(), previous["state"].abundances.numpy())


def test_nodata_column_decouples_the_two_sides():
    M, Y, _ = piecewise_scene(rows=6, cols=7, L=20, noise=0.1, seed=2)
    mask = np.ones((6, 7), dtype=bool)
    mask[:, 3] = False
    keep = mask.ravel()
    G, b = normal_equations(M[keep], Y[keep])
    lam = 0.2
    whole, _ = astep(G, b, PixelGrid(mask), lam, tol=1e-9, max_iter=20000)
    left = np.zeros_like(mask)
    left[:, :3] = True
    in_left = torch.as_tensor(left[mask])
    part, _ = astep(G[in_left], b[in_left], PixelGrid(left[:, :3]), lam, tol=1e-9, max_iter=20000)
    np.testing.assert_allclose(whole[in_left].numpy(), part.numpy(), atol=1e-6)
    # with the column valid the two sides are coupled (through it) and the left side changes
    Gf, bf = normal_equations(M, Y)
    full, _ = astep(Gf, bf, PixelGrid(np.ones((6, 7), dtype=bool)), lam, tol=1e-9, max_iter=20000)
    assert not np.allclose(full[torch.as_tensor(left.ravel())].numpy(), part.numpy(), atol=1e-4)


def test_bad_arguments():
    M, Y = random_problem(4)
    G, b = normal_equations(M, Y)
    grid = PixelGrid(np.ones((2, 2), dtype=bool))
    with pytest.raises(DeepGUError):
        astep(G, b, grid, -1.0)
    with pytest.raises(DeepGUError):
        astep(G, b, grid, 0.1, tv="huber")
    with pytest.raises(DeepGUError):
        astep(G, b, PixelGrid(np.ones((2, 3), dtype=bool)), 0.1)


def test_a_start_at_the_fcls_optimum_is_refined_in_few_iterations():
    """From exact FCLS with a small lambda_A (the first A-step of DeepGU), ADMM starts from FCLS's own KKT
    duals: it meets its tolerance quickly, lowers the objective, and lands on the optimum of a tight solve."""
    M, Y, _ = piecewise_scene(noise=0.1, seed=2)
    grid = PixelGrid(np.ones((16, 16), dtype=bool))
    G, b = normal_equations(M, Y)
    yy = (Y * Y).sum(1)
    lam = 0.002
    A_fcls = fcls_batched(M, Y)
    A, info = astep(G, b, grid, lam, A_init=A_fcls, tol=1e-3, max_iter=100)
    assert info["converged"] and info["iterations"] <= 30, info["iterations"]
    assert abundance_objective(G, b, yy, A, grid, lam)[0] < abundance_objective(G, b, yy, A_fcls, grid, lam)[0]
    tight, tight_info = astep(G, b, grid, lam, A_init=project_simplex(A_fcls + 0.3), tol=1e-8, max_iter=20000)
    assert tight_info["converged"]
    np.testing.assert_allclose(A.numpy(), tight.numpy(), atol=2e-3)
