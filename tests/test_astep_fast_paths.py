"""The A-step's fast paths (issue 26): the simplex projection's sorting networks, the element-wise application of the
per-pixel inverses, differences written into a given array, K^T accumulated onto a given array, and the Laplacian
solve in float32 - each against an independent reference."""

import numpy as np
import pytest
import torch

from core.solvers.astep import PixelGrid, _apply_inverses, _data_inverses, _k, _k_adjoint, astep, project_simplex

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
MASKS = {"full": np.ones((5, 7), dtype=bool),
         "holes": np.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1], [1, 1, 1, 1, 0], [0, 1, 1, 1, 1]], dtype=bool)}


@pytest.mark.parametrize("P", [1, 2, 3, 4, 5, 7])
def test_project_simplex_matches_bisection_for_every_size(P):
    """Sorting networks (P <= 4) and torch.sort (P > 4), with ties, against the root of sum(max(v - theta, 0)) = 1."""
    V = torch.randn(3000, P, generator=torch.Generator().manual_seed(P), dtype=F64) * 2
    V[:300] = V[:300].round()                                  # ties
    X = project_simplex(V)
    lo, hi = V.min(1).values - 1, V.max(1).values
    for _ in range(200):
        mid = (lo + hi) / 2
        big = torch.clamp(V - mid[:, None], min=0).sum(1) > 1
        lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
    torch.testing.assert_close(X, torch.clamp(V - lo[:, None], min=0), rtol=0, atol=1e-12)
    assert float(X.min()) >= 0 and torch.allclose(X.sum(1), torch.ones(len(V), dtype=F64), atol=1e-12)


def test_the_inverses_are_applied_pixel_by_pixel():
    g = torch.Generator().manual_seed(0)
    M = torch.rand(50, 12, 4, generator=g, dtype=F64)
    G = M.transpose(1, 2) @ M
    v = torch.randn(50, 4, generator=g, dtype=F64)
    out = torch.empty_like(v)
    _apply_inverses(_data_inverses(G, 0.3), v, out)
    expected = torch.linalg.solve(G + 0.3 * torch.eye(4, dtype=F64), v[..., None])[..., 0]
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mask", MASKS)
def test_k_and_its_adjoint_into_given_arrays(mask):
    """K A written into a given array equals the stacked (A, A, D_h A, D_v A); K^T accumulated onto X_B + X_C equals
    X_B + X_C + D^T (X_h, X_v), with D and D^T the dense matrices of the masked differences (unit vectors)."""
    grid = PixelGrid(MASKS[mask])
    n = grid.n_pixels
    eye = torch.eye(n, dtype=F64)
    Dh, Dv = grid.diff(eye)                                    # column j: D e_j, so the dense D
    g = torch.Generator().manual_seed(1)
    A = torch.randn(n, 3, generator=g, dtype=F64)
    out = torch.full((4, n, 3), float("nan"), dtype=F64)
    assert _k(A, grid, out=out) is out
    torch.testing.assert_close(out, torch.stack((A, A, Dh @ A, Dv @ A)), rtol=0, atol=1e-14)
    X = torch.randn(4, n, 3, generator=g, dtype=F64)
    torch.testing.assert_close(_k_adjoint(X, grid), X[0] + X[1] + Dh.T @ X[2] + Dv.T @ X[3], rtol=0, atol=1e-13)


def test_the_float32_laplacian_solve_is_float32_accurate_and_the_default_exact():
    grid = PixelGrid(np.ones((30, 41), dtype=bool))
    rhs = torch.randn(grid.n_pixels, 4, generator=torch.Generator().manual_seed(2), dtype=F64)

    def residual(X):
        return float((2.0 * X + grid.laplacian(X) - rhs).abs().max() / rhs.abs().max())

    exact, single = grid.solve_shifted(rhs, None), grid.solve_shifted(rhs, None, dtype=torch.float32)
    assert exact.dtype == single.dtype == F64 and single.is_contiguous()
    assert residual(exact) < 1e-13
    assert 1e-9 < residual(single) < 1e-5                      # float32 round-off: neither exact nor worse


def test_admm_with_float32_solves_reaches_the_float64_result():
    """The same A-step with its Laplacian solves in float32 stops at the same abundances, to ADMM's tolerance."""
    rows, cols, P = 12, 10, 3
    g = torch.Generator().manual_seed(3)
    A_true = torch.distributions.Dirichlet(torch.ones(P, dtype=F64)).sample((rows * cols,))
    M = torch.rand(rows * cols, 30, P, generator=g, dtype=F64)
    y = (M @ A_true[..., None])[..., 0] + 0.02 * torch.randn(rows * cols, 30, generator=g, dtype=F64)
    G, b = M.transpose(1, 2) @ M, (M.transpose(1, 2) @ y[..., None])[..., 0]
    grid = PixelGrid(np.ones((rows, cols), dtype=bool))
    A64, info64 = astep(G, b, grid, 0.05, tol=1e-6, max_iter=5000)
    A32, info32 = astep(G, b, grid, 0.05, tol=1e-6, max_iter=5000, solve_dtype=torch.float32)
    assert info64["converged"] and info32["converged"]
    torch.testing.assert_close(A32, A64, rtol=0, atol=1e-4)
