"""Exact solves with a shifted grid Laplacian, ``(s I + L) X = R``, by the discrete cosine transform.

``L`` is the graph Laplacian of a rows x cols pixel grid with an edge between horizontal and vertical
neighbours and none across the border, ``L = D_h^T D_h + D_v^T D_v`` with the forward differences of
:class:`.astep.PixelGrid` on a fully valid grid. It is the Kronecker sum of two path-graph Laplacians,
``L = L_rows (x) I + I (x) L_cols``, and the path graph's Laplacian on n nodes is diagonalised by the
orthonormal DCT-II matrix Q_n: ``L_n = Q_n^T diag(2 - 2 cos(pi k / n)) Q_n`` (Strang 1999, "The discrete
cosine transform", SIAM Review 41). So, for s > 0 and R (..., rows, cols),

    X = Q_rows^T [ (Q_rows R Q_cols^T) / (s + lambda_i + mu_j) ] Q_cols,
    lambda_i = 2 - 2 cos(pi i / rows),  mu_j = 2 - 2 cos(pi j / cols),

exact to round-off. The transforms are dense matrix products, O(rows + cols) operations per pixel: on
the tiles the solver works on (a few hundred pixels a side) a matrix product is cheaper than an FFT.
"""

import math

import torch


def dct_matrix(n, dtype=torch.float64, device="cpu"):
    """Orthonormal DCT-II matrix Q (n, n): ``Q[k, j] = c_k cos(pi k (2j + 1) / (2n))``, c_0 = n^-1/2, else (2/n)^1/2."""
    k = torch.arange(n, dtype=dtype, device=device)
    Q = torch.cos(math.pi * k[:, None] * (2.0 * k[None, :] + 1.0) / (2.0 * n)) * math.sqrt(2.0 / n)
    Q[0] /= math.sqrt(2.0)
    return Q


class ShiftedLaplacianSolver:
    """``R -> (s I + L)^{-1} R`` on a ``rows x cols`` grid (module docstring); R (..., rows, cols).

    ``shift``: a number, or a tensor (Q,) of one shift per leading slice of R (Q, rows, cols).
    """

    def __init__(self, rows, cols, shift, dtype=torch.float64, device="cpu"):
        def eigenvalues(n):
            return 2.0 - 2.0 * torch.cos(math.pi * torch.arange(n, dtype=dtype, device=device) / n)

        self.q_rows, self.q_cols = dct_matrix(rows, dtype, device), dct_matrix(cols, dtype, device)
        if torch.is_tensor(shift):
            shift = shift.to(dtype=dtype, device=device)[:, None, None]
        self.denominator = shift + eigenvalues(rows)[:, None] + eigenvalues(cols)[None, :]

    def __call__(self, R):
        spectrum = self.q_rows @ R @ self.q_cols.T
        return self.q_rows.T @ (spectrum / self.denominator) @ self.q_cols
