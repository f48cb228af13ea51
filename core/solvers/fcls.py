"""Fully constrained least squares (FCLS): abundances on the unit simplex, by support enumeration.

For every pixel ``n`` the problem is the convex quadratic program

    minimise  f(a) = 1/2 a^T G a - b^T a   subject to  a >= 0,  1^T a = 1,

with ``G = M^T M`` (P x P) and ``b = M^T y_n`` (P,): this is
``min ||y_n - M a||^2`` over the simplex, up to a constant.

Exact solver (support enumeration). The minimiser with the smallest support
``S`` satisfies the equality-constrained KKT system on ``S``

    K_S [a_S; mu] = [b_S; 1],    K_S = [[G_SS, 1], [1^T, 0]],

and ``K_S`` is invertible there (if the columns of ``M_S`` were affinely
dependent, moving along the dependency would keep the objective and shrink the
support). So solving that system on each of the ``2^P - 1`` supports, keeping
the candidates that are feasible and taking per pixel the candidate of least
objective returns the global optimum (:func:`best_on_supports`). A candidate is
feasible when ``a_S >= -tol`` and ``|1^T a_S - 1| <= tol``, ``tol = sqrt(eps)``
of the dtype (the round-off of the solve); it is then clipped at zero and
rescaled to sum to one, and its objective is evaluated at that point, so every
kept point lies exactly on the simplex and an inexact candidate can never win
over a better feasible one. ``G`` and ``b`` are divided by the mean diagonal of
``G`` first (same minimiser, well-scaled KKT systems).

Two front ends run this one enumeration, on numpy arrays or torch tensors alike:

- :func:`fcls` (numpy; ``deepgu:fcls``, the endmember refinement, no torch needed)
  and the torch A-step's shared-endmember case, via :class:`SharedGram`: with one ``G``
  for all pixels, ``a_S = L_S b_S + c_S`` with ``L_S``, ``c_S`` blocks of the
  pseudo-inverse of ``K_S`` (which also copes with a singular ``K_S``), computed once;
- :func:`core.solvers.astep.fcls_gram` (torch; one ``G`` per pixel): batched solves of the ``K_S``.

The enumeration costs ``O(2^P P^2)`` per pixel, so at most
:data:`.validation.MAX_MATERIALS` materials are accepted; pixels go in chunks
(:func:`pixels_per_chunk`) so memory stays bounded.
"""

import functools
import itertools
import math

import numpy as np

from ..errors import DeepGUError
from ..feedback import ensure
from ..validation import MAX_MATERIALS
from ..validation import check_materials as _check_count

#: most pixels solved at once.
CHUNK = 65536
#: most values in one candidate array (pixels x supports of one size x values per support).
CHUNK_VALUES = 2 ** 22
_RCOND = 1e-12


def check_materials(p):
    """Refuse fewer than one or more than :data:`.validation.MAX_MATERIALS` endmembers."""
    if p < 1:
        raise DeepGUError("FCLS needs at least one endmember")
    _check_count("the endmember matrix", p)


@functools.lru_cache(maxsize=MAX_MATERIALS)
def supports(p):
    """The non-empty supports of ``range(p)`` by size: ``supports(p)[k - 1]`` is a (C(p, k), k) int64 array."""
    tables = tuple(np.array(list(itertools.combinations(range(p), k)), dtype=np.int64) for k in range(1, p + 1))
    for table in tables:
        table.flags.writeable = False
    return tables


def pixels_per_chunk(p, per_pixel_gram=False):
    """Pixels per chunk so that no candidate array holds more than :data:`CHUNK_VALUES` values.

    A support of size k takes k + 1 values per pixel with a shared ``G`` and (k + 1)^2 with one ``G`` per pixel.
    """
    largest = max(math.comb(p, k) * (k + 1) ** (2 if per_pixel_gram else 1) for k in range(1, p + 1))
    return max(1, min(CHUNK, CHUNK_VALUES // largest))


def kkt_matrices(g_ss, xp):
    """``K_S = [[G_SS, 1], [1^T, 0]]`` (..., s + 1, s + 1) for Gram blocks ``g_ss`` (..., s, s).

    ``xp`` is numpy or torch, the module of ``g_ss``.
    """
    ones = xp.ones_like(g_ss[..., :1])
    return xp.concatenate([xp.concatenate([g_ss, ones], axis=-1),
                           xp.concatenate([ones.swapaxes(-1, -2), xp.zeros_like(ones[..., :1, :])], axis=-1)],
                          axis=-2)


def best_on_supports(b, candidates, xp):
    """Per pixel, the feasible candidate of least objective ``1/2 a^T G a - b^T a`` (module docstring).

    Parameters
    ----------
    b : (n, P) scaled like the Gram blocks.
    candidates : for each support size k, a tuple ``(S, g_ss, a)``: ``S`` (C, k) the supports
        (:func:`supports`, as ``xp`` indices), ``g_ss`` their Gram blocks, (C, k, k) shared or
        (n, C, k, k) per pixel, and ``a`` (n, C, k) the KKT solutions (NaN where there is none).
    xp : numpy or torch, the module of the arrays.

    Returns
    -------
    a : (n, P) on the unit simplex.
    """
    tol = math.sqrt(xp.finfo(b.dtype).eps)
    best_a = xp.zeros_like(b)
    best_f = xp.full_like(b[:, 0], math.inf)
    for support, g_ss, a in candidates:
        total = a.sum(-1)
        feasible = (a >= -tol).all(-1) & (abs(total - 1.0) <= tol)      # NaN and inf fail the sum test
        a = xp.where(feasible[..., None], a.clip(0.0), 0.0)
        a = a / xp.where(feasible, a.sum(-1), 1.0)[..., None]
        f = ((0.5 * xp.einsum("...ij,...j->...i", g_ss, a) - b[:, support]) * a).sum(-1)
        f = xp.where(feasible, f, math.inf)                             # (n, C)
        choice, f_min = f.argmin(1), xp.amin(f, 1)
        rows = xp.where(f_min < best_f)[0]
        best_f[rows] = f_min[rows]
        best_a[rows] = 0.0
        best_a[rows[:, None], support[choice[rows]]] = a[rows, choice[rows]]
    return best_a


class SharedGram:
    """The simplex QP of one Gram matrix ``G`` (P, P) shared by all pixels, for numpy or torch pixels.

    The KKT pseudo-inverse of every support is computed once (in float64 numpy); solving a chunk is
    then one small product per support size. ``to_array`` turns those numpy tables into the arrays of
    ``xp`` (e.g. torch tensors of the pixels' dtype and device).
    """

    def __init__(self, G, xp=np, to_array=lambda table: table):
        G = np.asarray(G, dtype=np.float64)
        scale = float(np.mean(np.diag(G)))
        self.scale = scale if scale > 0 else 1.0        # the mean Gram diagonal, conditions the KKT systems
        G = G / self.scale
        self.xp = xp
        self.tables = []
        for support in supports(G.shape[0]):
            k = support.shape[1]
            g_ss = G[support[:, :, None], support[:, None, :]]
            k_inv = np.linalg.pinv(kkt_matrices(g_ss, np), rcond=_RCOND)
            self.tables.append(tuple(to_array(t) for t in (support, g_ss, k_inv[:, :k, :k], k_inv[:, :k, k])))

    def solve(self, b):
        """b = M^T y for (n, P) pixels -> a (n, P) on the simplex."""
        b = b / self.scale
        return best_on_supports(b, ((support, g_ss, self.xp.einsum("cij,ncj->nci", lin, b[:, support]) + const)
                                    for support, g_ss, lin, const in self.tables), self.xp)


def _check_finite(name, array):
    if not np.all(np.isfinite(array)):
        raise DeepGUError("%s contains NaN or infinite values" % name)


def fcls(Y, M, feedback=None):
    """Fully constrained least squares with shared endmembers.

    ``A[:, n] = argmin_{a >= 0, 1^T a = 1} ||Y[:, n] - M a||^2``, solved exactly
    (module docstring) with ``G = M^T M`` and ``b = M^T Y[:, n]``.

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
    check_materials(M.shape[1])
    _check_finite("M", M)
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise DeepGUError("Y must be (bands, pixels), got shape %s" % (Y.shape,))
    if Y.shape[0] != M.shape[0]:
        raise DeepGUError("Y has %d bands but the endmembers have %d" % (Y.shape[0], M.shape[0]))
    _check_finite("Y", Y)
    solver = SharedGram(M.T @ M)
    n, p = Y.shape[1], M.shape[1]
    chunk = pixels_per_chunk(p)
    A = np.empty((p, n))
    for start in range(0, n, chunk):
        feedback.check_canceled()
        sl = slice(start, start + chunk)
        A[:, sl] = solver.solve((M.T @ Y[:, sl]).T).T
        feedback.set_progress(100.0 * min(start + chunk, n) / n)
    return A


def reconstruction_rmse(Y, M, A):
    """Per-pixel reconstruction RMSE ``sqrt(mean_l (Y[l, n] - (M A)[l, n])^2)``.

    Y : (L, N); M : (L, P); A : (P, N). Returns (N,).
    """
    Y = np.asarray(Y, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    if Y.ndim != 2 or A.ndim != 2 or M.ndim != 2:
        raise DeepGUError("reconstruction_rmse expects Y (L, N), M (L, P), A (P, N)")
    if M.shape != (Y.shape[0], A.shape[0]) or A.shape[1] != Y.shape[1]:
        raise DeepGUError("shapes do not match: Y %s, M %s, A %s" % (Y.shape, M.shape, A.shape))
    return np.sqrt(np.mean((Y - M @ A) ** 2, axis=0))
