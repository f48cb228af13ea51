"""Fully constrained least squares (FCLS): abundances on the unit simplex.

For every pixel ``n`` the problem is the convex quadratic program

    minimise  1/2 a^T G a - b^T a   subject to  a >= 0,  1^T a = 1,

with ``G = M^T M`` (P x P) and ``b = M^T y_n`` (P,): this is
``min ||y_n - M a||^2`` over the simplex, up to a constant.

Exact solver (support enumeration). The minimiser with the smallest support
``S`` satisfies the equality-constrained KKT system on ``S``

    [G_SS  1] [a_S]   [b_S]
    [1^T   0] [mu ] = [ 1 ],

whose matrix is invertible there (if the columns of ``M_S`` were affinely
dependent, moving along the dependency would keep the objective and shrink the
support). So solving that system on each of the ``2^P - 1`` supports (by
pseudo-inverse, which also copes with singular ``G_SS``), keeping the
candidates that are feasible (``a_S >= 0``, ``1^T a_S = 1``) and taking per
pixel the candidate with the least objective (evaluated directly, so an
inexact candidate can never win over a better feasible one) returns the
global optimum. All pixels are solved at once per support; pixels are
processed in chunks of :data:`CHUNK` so memory stays bounded.

The enumeration costs ``O(2^P P^2)`` per pixel, so it is used up to
:data:`MAX_MATERIALS` materials; more raises :class:`DeepGUError`.
"""

import itertools

import numpy as np

from .errors import DeepGUError
from .feedback import ensure

CHUNK = 65536
MAX_MATERIALS = 10
_FEASIBLE_TOL = 1e-9
_RCOND = 1e-12


def _supports(p):
    """All non-empty supports of ``range(p)``, smallest first, as index arrays."""
    return [np.array(s) for k in range(1, p + 1) for s in itertools.combinations(range(p), k)]


def _kkt_matrix(g_ss):
    """``[[G_SS, 1], [1^T, 0]]`` for a (..., s, s) stack of Gram blocks."""
    s = g_ss.shape[-1]
    k = np.zeros(g_ss.shape[:-2] + (s + 1, s + 1))
    k[..., :s, :s] = g_ss
    k[..., :s, s] = 1.0
    k[..., s, :s] = 1.0
    return k


def _keep_best(best_a, best_obj, support, a_s, g_ss, b_s):
    """Replace the current best where the candidate ``a_s`` (n, s) on ``support`` is feasible and better."""
    g_a = a_s @ g_ss if g_ss.ndim == 2 else np.einsum("nij,nj->ni", g_ss, a_s)
    obj = np.einsum("ni,ni->n", 0.5 * g_a - b_s, a_s)
    feasible = (a_s.min(axis=1) >= -_FEASIBLE_TOL) & (np.abs(a_s.sum(axis=1) - 1.0) <= _FEASIBLE_TOL)
    better = feasible & (obj < best_obj)
    best_obj[better] = obj[better]
    rows = np.flatnonzero(better)
    best_a[rows] = 0.0
    best_a[rows[:, None], support[None, :]] = a_s[better]


def _finish(best_a):
    """Clip the tolerated round-off below zero and renormalise onto the simplex."""
    np.maximum(best_a, 0.0, out=best_a)
    best_a /= best_a.sum(axis=1, keepdims=True)
    return best_a


class _SharedSolver:
    """Simplex QP with one Gram matrix ``G`` (P, P) shared by all pixels.

    The KKT pseudo-inverse of every support is computed once; solving a chunk
    is then one small matmul per support.
    """

    def __init__(self, G):
        self.scale = _positive(np.mean(np.diag(G)))
        self.G = G / self.scale
        self.plans = []
        for support in _supports(G.shape[0]):
            g_ss = self.G[np.ix_(support, support)]
            kinv = np.linalg.pinv(_kkt_matrix(g_ss), rcond=_RCOND)
            s = len(support)
            self.plans.append((support, g_ss, kinv[:s, :s].T.copy(), kinv[:s, s].copy()))

    def solve(self, b):
        """b (n, P) -> a (n, P) on the simplex."""
        b = b / self.scale
        best_a = np.zeros_like(b)
        best_obj = np.full(len(b), np.inf)
        for support, g_ss, lin, const in self.plans:
            b_s = b[:, support]
            _keep_best(best_a, best_obj, support, b_s @ lin + const, g_ss, b_s)
        return _finish(best_a)


def _solve_per_pixel(G, b):
    """Simplex QP with one Gram matrix per pixel: G (n, P, P), b (n, P) -> a (n, P)."""
    scale = _positive(np.einsum("nii->n", G) / G.shape[-1])[:, None]
    G = G / scale[:, :, None]
    b = b / scale
    best_a = np.zeros_like(b)
    best_obj = np.full(len(b), np.inf)
    for support in _supports(G.shape[-1]):
        g_ss = G[:, support[:, None], support[None, :]]
        kkt = _kkt_matrix(g_ss)
        rhs = np.concatenate([b[:, support], np.ones((len(b), 1))], axis=1)
        try:
            sol = np.linalg.solve(kkt, rhs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            sol = np.einsum("nij,nj->ni", np.linalg.pinv(kkt, rcond=_RCOND), rhs)
        _keep_best(best_a, best_obj, support, sol[:, :len(support)], g_ss, b[:, support])
    return _finish(best_a)


def _positive(scale):
    """The problem scale (mean Gram diagonal) used to condition the KKT systems; 1 where it is zero."""
    return np.where(scale > 0, scale, 1.0)


def _check_materials(p):
    if p < 1:
        raise DeepGUError("FCLS needs at least one endmember")
    if p > MAX_MATERIALS:
        raise DeepGUError("FCLS supports at most %d endmembers (got %d)" % (MAX_MATERIALS, p))


def _check_finite(name, array):
    if not np.all(np.isfinite(array)):
        raise DeepGUError("%s contains NaN or infinite values" % name)


def solve_simplex_qp(G, b):
    """Solve ``min 1/2 a^T G a - b^T a`` s.t. ``a >= 0, sum(a) = 1`` for many problems exactly.

    Parameters
    ----------
    G : (P, P) shared by all problems, or (N, P, P) one per problem; symmetric PSD.
    b : (N, P).

    Returns
    -------
    a : (N, P) float64, each row on the unit simplex.
    """
    G = np.asarray(G, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if b.ndim != 2:
        raise DeepGUError("b must be (N, P), got shape %s" % (b.shape,))
    n, p = b.shape
    if G.shape not in ((p, p), (n, p, p)):
        raise DeepGUError("G must be (%d, %d) or (%d, %d, %d) to match b, got shape %s"
                          % (p, p, n, p, p, G.shape))
    _check_materials(p)
    _check_finite("G", G)
    _check_finite("b", b)
    a = np.empty((n, p))
    shared = _SharedSolver(G) if G.ndim == 2 else None
    for start in range(0, n, CHUNK):
        sl = slice(start, start + CHUNK)
        a[sl] = shared.solve(b[sl]) if shared else _solve_per_pixel(G[sl], b[sl])
    return a


def _check_pixels(Y, n_bands):
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise DeepGUError("Y must be (bands, pixels), got shape %s" % (Y.shape,))
    if Y.shape[0] != n_bands:
        raise DeepGUError("Y has %d bands but the endmembers have %d" % (Y.shape[0], n_bands))
    _check_finite("Y", Y)
    return Y


def fcls(Y, M, feedback=None):
    """Fully constrained least squares with shared endmembers.

    ``A[:, n] = argmin_{a >= 0, 1^T a = 1} ||Y[:, n] - M a||^2``, solved exactly
    via :func:`solve_simplex_qp` with ``G = M^T M`` and ``b = Y^T M``.

    Parameters
    ----------
    Y : (L, N) pixels.
    M : (L, P) endmembers.
    feedback : optional Feedback; progress is reported per chunk of pixels.

    Returns
    -------
    A : (P, N) float64 abundances on the unit simplex.
    """
    feedback = ensure(feedback)
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2:
        raise DeepGUError("M must be (bands, endmembers), got shape %s" % (M.shape,))
    _check_materials(M.shape[1])
    _check_finite("M", M)
    Y = _check_pixels(Y, M.shape[0])
    solver = _SharedSolver(M.T @ M)
    return _by_chunks(Y.shape[1], M.shape[1], lambda sl: solver.solve(Y[:, sl].T @ M), feedback)


def _by_chunks(n, p, solve, feedback):
    """Fill ``A`` (p, n) with ``solve(slice) -> (chunk, p)`` over chunks of CHUNK pixels, with progress/cancel."""
    A = np.empty((p, n))
    for start in range(0, n, CHUNK):
        feedback.check_canceled()
        sl = slice(start, start + CHUNK)
        A[:, sl] = solve(sl).T
        feedback.set_progress(100.0 * min(start + CHUNK, n) / n)
    return A


def fcls_per_pixel(Y, M, feedback=None):
    """FCLS with one endmember matrix per pixel.

    ``A[:, n] = argmin_{a >= 0, 1^T a = 1} ||Y[:, n] - M[:, :, n] a||^2``.

    Parameters
    ----------
    Y : (L, N) pixels.
    M : (L, P, N) per-pixel endmembers.
    feedback : optional Feedback; progress is reported per chunk of pixels.

    Returns
    -------
    A : (P, N) float64 abundances on the unit simplex.
    """
    feedback = ensure(feedback)
    M = np.asarray(M)
    if M.ndim != 3:
        raise DeepGUError("per-pixel M must be (bands, endmembers, pixels), got shape %s" % (M.shape,))
    _check_materials(M.shape[1])
    _check_finite("M", M)
    Y = _check_pixels(Y, M.shape[0])
    n = Y.shape[1]
    if M.shape[2] != n:
        raise DeepGUError("M has %d pixels but Y has %d" % (M.shape[2], n))

    def solve(sl):
        m = M[:, :, sl].astype(np.float64, copy=False)
        G = np.einsum("lpn,lqn->npq", m, m)
        b = np.einsum("ln,lpn->np", Y[:, sl].astype(np.float64, copy=False), m)
        return _solve_per_pixel(G, b)

    return _by_chunks(n, M.shape[1], solve, feedback)


def reconstruction_rmse(Y, M, A):
    """Per-pixel reconstruction RMSE ``sqrt(mean_l (Y[l, n] - (M A)[l, n])^2)``.

    Y : (L, N); M : (L, P) shared or (L, P, N) per pixel; A : (P, N). Returns (N,).
    """
    Y = np.asarray(Y, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    if Y.ndim != 2 or A.ndim != 2 or M.ndim not in (2, 3):
        raise DeepGUError("reconstruction_rmse expects Y (L, N), M (L, P) or (L, P, N), A (P, N)")
    expected = (Y.shape[0], A.shape[0]) + ((Y.shape[1],) if M.ndim == 3 else ())
    if M.shape != expected or A.shape[1] != Y.shape[1]:
        raise DeepGUError("shapes do not match: Y %s, M %s, A %s" % (Y.shape, M.shape, A.shape))
    recon = M @ A if M.ndim == 2 else np.einsum("lpn,pn->ln", M, A)
    return np.sqrt(np.mean((Y - recon) ** 2, axis=0))
