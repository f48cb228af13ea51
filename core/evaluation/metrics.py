"""Accuracy metrics of an unmixing result against known truth (the paper's eq. 14-15).

- ``RMSE_X = sqrt(mean((X - X*)^2))`` over all entries, for abundances (A), per-pixel
  endmembers (M) and the reconstructed image (Y);
- ``SAM_M = (1/N) sum_n sum_p arccos(<m_pn, m*_pn> / (|m_pn| |m*_pn|))`` in radians
  (summed over materials, averaged over pixels).

Estimated materials come in an arbitrary order: :func:`match_materials` finds the
permutation that aligns them with the true ones before scoring.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import DeepGUError


def _sum_squares(X, X_true):
    """``sum((X - X_true)^2)`` in float64, with one temporary the size of the (broadcast) inputs."""
    diff = np.subtract(X, X_true, dtype=np.result_type(X, X_true, np.float32))
    np.square(diff, out=diff)
    return float(np.sum(diff, dtype=np.float64))


def rmse(X, X_true):
    """``sqrt(mean((X - X_true)^2))`` over all entries of two arrays of the same shape."""
    X, X_true = np.asarray(X), np.asarray(X_true)
    if X.shape != X_true.shape:
        raise DeepGUError("RMSE needs arrays of the same shape, got %s and %s" % (X.shape, X_true.shape))
    if X.size == 0:
        raise DeepGUError("RMSE of empty arrays")
    return float(np.sqrt(_sum_squares(X, X_true) / X.size))


def _per_pixel(M, name):
    """Endmembers as ``(L, P, N)``: per-pixel ``(L, P, N)`` / ``(L, P, rows, cols)``, or constant ``(L, P)``
    -> N = 1."""
    M = np.asarray(M)
    if M.ndim not in (2, 3, 4):
        raise DeepGUError("%s must be (L, P), (L, P, N) or (L, P, rows, cols), got %s" % (name, M.shape))
    return M.reshape(M.shape[0], M.shape[1], -1)


def _check_endmembers(M, M_true):
    """Both ``(L, P, N)``, same L and P, pixel counts equal or one of them 1 (constant endmembers)."""
    same_pixels = M.shape[2] == M_true.shape[2] or 1 in (M.shape[2], M_true.shape[2])
    if M.shape[:2] != M_true.shape[:2] or not same_pixels:
        raise DeepGUError("endmember shapes do not match: %s and %s" % (M.shape, M_true.shape))


def _norms(X):
    """Euclidean norms over the leading (band) axis, in float64."""
    return np.sqrt(np.einsum("l...,l...->...", X, X, dtype=np.float64))


def _arccos_ratio(dots, norm_products):
    """``arccos(<a, b> / (|a| |b|))`` from dot products and norm products; a zero spectrum gives pi/2."""
    return np.arccos(np.clip(dots / np.maximum(norm_products, np.finfo(np.float64).tiny), -1.0, 1.0))


def _angles(m, m_true):
    """Spectral angles (radians) between spectra ``(L, N)`` and ``(L, N)`` (N = 1 broadcasts): ``(N,)``."""
    return _arccos_ratio(np.einsum("ln,ln->n", m, m_true, dtype=np.float64), _norms(m) * _norms(m_true))


def _material_pairs(M, M_true, perm):
    """``[(M[:, perm[p]], M_true[:, p]) for each p]`` as broadcast ``(L, N)`` views, M and M_true ``(L, P, N)``.

    Working one material at a time on views makes no permuted copy of a large tensor.
    """
    _check_endmembers(M, M_true)
    return [np.broadcast_arrays(M[:, estimated], M_true[:, p]) for p, estimated in enumerate(perm)]


def _sam_of_pairs(pairs):
    """Sum over materials of the mean angle over pixels, for :func:`_material_pairs` output."""
    return float(sum(_angles(m, m_true).mean() for m, m_true in pairs))


def sam(M, M_true):
    """Spectral angle of endmembers, radians: ``(1/N) sum_n sum_p angle(m_pn, m*_pn)``.

    Either argument is per-pixel ``(L, P, N)`` / ``(L, P, rows, cols)`` or constant ``(L, P)``
    (broadcast over the N pixels of the other one).
    """
    M = _per_pixel(M, "M")
    return _sam_of_pairs(_material_pairs(M, _per_pixel(M_true, "M_true"), range(M.shape[1])))


def _flat_abundances(A, name):
    A = np.asarray(A)
    if A.ndim not in (2, 3):
        raise DeepGUError("%s must be (P, N) or (P, rows, cols), got %s" % (name, A.shape))
    return A.reshape(A.shape[0], -1)


def match_materials(A, A_true, M=None, M_true=None):
    """Permutation ``perm`` (P,) such that ``A[perm]`` (and ``M[:, perm]``) aligns with the truth.

    Hungarian assignment (``scipy.optimize.linear_sum_assignment``) minimising the summed cost
    of matched pairs; the cost of estimated material i against true material j is the mean
    spectral angle between their endmembers when ``M`` and ``M_true`` are both given, otherwise
    the RMSE between their abundance maps. Shapes as in :func:`evaluate`.
    """
    A, A_true = _flat_abundances(A, "A"), _flat_abundances(A_true, "A_true")
    if A.shape[0] != A_true.shape[0]:
        raise DeepGUError("estimated %d materials but the truth has %d: cannot match them"
                          % (A.shape[0], A_true.shape[0]))
    if A.shape[1] != A_true.shape[1]:
        raise DeepGUError("abundances cover %d pixels but the truth %d" % (A.shape[1], A_true.shape[1]))
    if M is not None and M_true is not None:
        M, M_true = _per_pixel(M, "M"), _per_pixel(M_true, "M_true")
        _check_endmembers(M, M_true)
        # Ranking needs no float64 sums: native precision keeps this P^2 pass cheap.
        norms = np.sqrt(np.einsum("lpn,lpn->pn", M, M))
        norms_true = np.sqrt(np.einsum("lpn,lpn->pn", M_true, M_true))
        cost = np.array([[_arccos_ratio(np.einsum("ln,ln->n", M[:, i], M_true[:, j]), norms[i] * norms_true[j]).mean()
                          for j in range(M.shape[1])] for i in range(M.shape[1])])
    else:
        # cost[i, j] = mean_n (a_in - a*_jn)^2, expanded to avoid a (P, P, N) array.
        A64, T64 = A.astype(np.float64), A_true.astype(np.float64)
        cost = (np.sum(A64 ** 2, axis=1)[:, None] + np.sum(T64 ** 2, axis=1)[None, :] - 2.0 * A64 @ T64.T)
        cost = np.sqrt(np.maximum(cost, 0.0) / A.shape[1])
    _, perm = linear_sum_assignment(cost.T)                 # rows: the true materials, in order
    return perm


def _select(X, mask, name, n_pixels):
    """``X`` (lead dims..., N) restricted to the valid pixels; NaN there -> DeepGUError."""
    if X.shape[-1] not in (1, n_pixels):
        raise DeepGUError("%s covers %d pixels, expected %d" % (name, X.shape[-1], n_pixels))
    if mask is not None and X.shape[-1] == n_pixels:
        X = X[..., mask]
    if np.isnan(X).any():
        raise DeepGUError("%s has NaN in valid pixels (pass a mask to exclude them)" % name)
    return X


def evaluate(A, A_true, M=None, M_true=None, Y=None, Y_hat=None, mask=None):
    """Scores of an unmixing result against the truth, after matching the materials.

    A, A_true      (P, N) or (P, rows, cols) abundances
    M, M_true      optional endmembers, per-pixel (L, P, N) / (L, P, rows, cols) or constant (L, P)
    Y, Y_hat       optional image and its reconstruction, (L, N) or (L, rows, cols)
    mask           optional (N,) or (rows, cols) bool, True for the pixels to score

    Returns ``{"RMSE_A", "perm"}`` plus ``"RMSE_M"`` and ``"SAM_M"`` when M and M_true are given
    and ``"RMSE_Y"`` when Y and Y_hat are given; ``perm`` is the :func:`match_materials`
    permutation applied to A and M. A constant M is broadcast over the pixels for RMSE_M.
    """
    for first, second, names in ((M, M_true, "M and M_true"), (Y, Y_hat, "Y and Y_hat")):
        if (first is None) != (second is None):
            raise DeepGUError("%s must be given together" % names)
    A, A_true = _flat_abundances(A, "A"), _flat_abundances(A_true, "A_true")
    n_pixels = A_true.shape[1]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.size != n_pixels:
            raise DeepGUError("mask must be a bool array of %d pixels, got %s %s" % (n_pixels, mask.dtype, mask.shape))
        mask = mask.ravel()
        if not mask.any():
            raise DeepGUError("mask leaves no valid pixel to score")
    A = _select(A, mask, "A", n_pixels)
    A_true = _select(A_true, mask, "A_true", n_pixels)
    if M is not None:
        M = _select(_per_pixel(M, "M"), mask, "M", n_pixels)
        M_true = _select(_per_pixel(M_true, "M_true"), mask, "M_true", n_pixels)

    perm = match_materials(A, A_true, M, M_true)
    scores = {"RMSE_A": rmse(A[perm], A_true), "perm": perm}
    if M is not None:
        pairs = _material_pairs(M, M_true, perm)
        squares = sum(_sum_squares(m, m_true) for m, m_true in pairs)
        scores["RMSE_M"] = float(np.sqrt(squares / sum(m.size for m, _ in pairs)))
        scores["SAM_M"] = _sam_of_pairs(pairs)
    if Y is not None:
        Y, Y_hat = np.asarray(Y), np.asarray(Y_hat)
        Y = _select(Y.reshape(Y.shape[0], -1), mask, "Y", n_pixels)
        Y_hat = _select(Y_hat.reshape(Y_hat.shape[0], -1), mask, "Y_hat", n_pixels)
        scores["RMSE_Y"] = rmse(Y, Y_hat)
    return scores


class MetricsAccumulator:
    """:func:`evaluate`'s RMSE_A, RMSE_M and SAM_M over pixels given block by block (bounded memory).

    For every pair (estimated material i, true material j) it keeps the sums over pixels of
    ``(a_in - a*_jn)^2`` and, with endmembers, of ``||m_in - m*_jn||^2`` and of the angle
    between ``m_in`` and ``m*_jn``. Matching then needs no second pass: the cost is the
    mean angle (with endmembers) or ``sqrt(mean (a_i - a*_j)^2)``, exactly as
    :func:`match_materials`, and each score is a sum over the matched pairs.
    """

    def __init__(self, n_materials, with_endmembers=False):
        P = int(n_materials)
        self.n_materials = P
        self.with_endmembers = bool(with_endmembers)
        self.n_pixels = 0
        self.n_bands = 0
        self._sse_a = np.zeros((P, P))
        self._sse_m = np.zeros((P, P))
        self._angles = np.zeros((P, P))

    def update(self, A, A_true, M=None, M_true=None):
        """Add pixels: abundances ``(P, n)``, endmembers ``(L, P, n)`` (required iff ``with_endmembers``)."""
        A, A_true = np.asarray(A, dtype=np.float64), np.asarray(A_true, dtype=np.float64)
        P = self.n_materials
        if A.shape != A_true.shape or A.ndim != 2 or A.shape[0] != P:
            raise DeepGUError("abundance blocks must both be (%d, n), got %s and %s" % (P, A.shape, A_true.shape))
        if (M is not None) != self.with_endmembers or (M is None) != (M_true is None):
            raise DeepGUError("give endmember blocks with every update, or never")
        self._sse_a += np.square(A[:, None, :] - A_true[None, :, :]).sum(axis=2)
        if M is not None:
            M, M_true = np.asarray(M, dtype=np.float64), np.asarray(M_true, dtype=np.float64)
            if M.shape != M_true.shape or M.shape[1:] != (P, A.shape[1]):
                raise DeepGUError("endmember blocks must both be (L, %d, %d), got %s and %s"
                                  % (P, A.shape[1], M.shape, M_true.shape))
            self.n_bands = M.shape[0]
            norms, norms_true = _norms(M), _norms(M_true)                         # (P, n) each
            for i in range(P):
                diff = M[:, i, None, :] - M_true                                   # (L, P, n)
                self._sse_m[i] += np.einsum("ljn,ljn->j", diff, diff)
                dots = np.einsum("ln,ljn->jn", M[:, i], M_true)
                self._angles[i] += _arccos_ratio(dots, norms[i] * norms_true).sum(axis=1)
        self.n_pixels += A.shape[1]

    def result(self):
        """``{"RMSE_A", "perm"}`` (+ ``"RMSE_M"``, ``"SAM_M"``) as :func:`evaluate` returns them."""
        if self.n_pixels == 0:
            raise DeepGUError("no pixel to score")
        N, P = self.n_pixels, self.n_materials
        cost = self._angles / N if self.with_endmembers else np.sqrt(self._sse_a / N)
        _, perm = linear_sum_assignment(cost.T)
        pairs = (perm, np.arange(P))
        scores = {"RMSE_A": float(np.sqrt(self._sse_a[pairs].sum() / (P * N))), "perm": perm}
        if self.with_endmembers:
            scores["RMSE_M"] = float(np.sqrt(self._sse_m[pairs].sum() / (self.n_bands * P * N)))
            scores["SAM_M"] = float(self._angles[pairs].sum() / N)
        return scores
