"""Vertex Component Analysis (Nascimento & Bioucas-Dias, IEEE TGRS 2005).

VCA finds ``P`` pixels that are the vertices of the data simplex. With ``Y``
(L, N), the steps of the paper (and of the authors' ``vca.m``) are:

1. SNR estimate. ``r_m`` = mean pixel, ``U_c`` = top-``P`` eigenvectors
   of the covariance ``C = (Y - r_m)(Y - r_m)^T / N``, ``P_y = E ||y||^2``,
   ``P_x = trace(U_c^T C U_c) + ||r_m||^2`` and
   ``SNR = 10 log10((P_x - P/L P_y) / (P_y - P_x))``.
2. Projection. If ``SNR >= 15 + 10 log10(P)`` dB (projective projection):
   ``x = U_d^T Y`` with ``U_d`` the top-``P`` eigenvectors of ``Y Y^T / N``,
   ``u = mean(x)`` and ``y_n = x_n / (x_n^T u)``. Otherwise (PCA):
   ``x = U_c[:, :P-1]^T (Y - r_m)``, ``c = max_n ||x_n||`` and ``y_n = [x_n; c]``.
3. ``A = [e_P, 0, ..., 0]`` (P x P); for ``i = 1..P``: draw ``w ~ N(0, I_P)``,
   ``f = (I - A A^+) w / ||(I - A A^+) w||``, ``v = f^T y``,
   ``k_i = argmax_n |v_n|`` and ``A[:, i] = y_{k_i}``.

The endmembers returned are the original pixels ``Y[:, k]``.

Determinism: ``w`` comes from ``numpy.random.default_rng(seed).standard_normal``
and each eigenvector's sign is fixed so that its largest-magnitude entry is
positive. Pixels whose projective denominator ``x_n^T u`` is exactly zero
(e.g. all-zero pixels) get ``y_n = 0`` and so are never picked.

Cost: ``Y Y^T`` is accumulated in float64 over chunks of :data:`CHUNK` pixels
and the projections are computed chunk by chunk, so no full-size copy of ``Y``
is made.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import DeepGUError

CHUNK = 65536


@dataclass
class VCAResult:
    """Output of :func:`vca`.

    endmembers : (L, P) the selected pixels ``Y[:, indices]`` (float64).
    indices : (P,) int column indices into ``Y``, in the order they were found.
    snr_db : the SNR used to choose the projection (estimated, or the one given).
    projective : True for the projective projection, False for the PCA one.
    """

    endmembers: np.ndarray
    indices: np.ndarray
    snr_db: float
    projective: bool


def _chunks(n):
    return (slice(start, start + CHUNK) for start in range(0, n, CHUNK))


def _moments(Y):
    """Mean pixel (L,) and correlation ``Y Y^T / N`` (L, L), accumulated in float64 per chunk."""
    L, n = Y.shape
    total = np.zeros(L)
    corr = np.zeros((L, L))
    for sl in _chunks(n):
        block = np.ascontiguousarray(Y[:, sl], dtype=np.float64)
        total += block.sum(axis=1)
        corr += block @ block.T
    return total / n, corr / n


def _top_eigenvectors(S, d):
    """Top-``d`` eigenvalues (descending) and eigenvectors (L, d) of a symmetric matrix.

    Signs are fixed: the largest-magnitude entry of each eigenvector is positive.
    """
    values, vectors = np.linalg.eigh(S)
    values, vectors = values[::-1][:d], vectors[:, ::-1][:, :d]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(d)])
    return values, vectors * signs


def _project(Y, U, offset):
    """``U^T (Y - offset)`` (d, N) computed per chunk in float64."""
    x = np.empty((U.shape[1], Y.shape[1]))
    shift = U.T @ offset
    for sl in _chunks(Y.shape[1]):
        x[:, sl] = U.T @ Y[:, sl].astype(np.float64, copy=False)
        x[:, sl] -= shift[:, None]
    return x


def estimate_snr(mean, corr, n_endmembers):
    """SNR in dB (step 1 above) from the mean pixel (L,) and correlation ``Y Y^T / N`` (L, L).

    Returns ``inf`` when the data lie (numerically) in a rank-``P`` affine
    subspace, ``-inf`` when the signal estimate is not positive.
    """
    L = len(mean)
    p_y = np.trace(corr)
    cov_values, _ = _top_eigenvectors(corr - np.outer(mean, mean), n_endmembers)
    p_x = cov_values.sum() + mean @ mean
    noise = p_y - p_x
    signal = p_x - n_endmembers / L * p_y
    if noise <= 1e-12 * p_y:
        return float("inf")
    if signal <= 0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def _projective(Y, corr, p):
    """y_n = x_n / (x_n^T u) with x = U_d^T Y on the top-P correlation eigenvectors. Returns (P, N)."""
    _, U = _top_eigenvectors(corr, p)
    x = _project(Y, U, np.zeros(Y.shape[0]))
    denominator = x.mean(axis=1) @ x
    zero = denominator == 0
    x[:, zero] = 0.0
    denominator[zero] = 1.0
    return x / denominator


def _pca(Y, mean, corr, p):
    """y_n = [x_n; c] with x = top-(P-1) PCA scores and c = max_n ||x_n||. Returns (P, N)."""
    _, U = _top_eigenvectors(corr - np.outer(mean, mean), p - 1)
    x = _project(Y, U, mean)
    c = np.sqrt(np.max(np.einsum("dn,dn->n", x, x)))
    return np.vstack([x, np.full((1, Y.shape[1]), c)])


def _find_vertices(y, p, rng):
    """The VCA iterations on the projected data ``y`` (P, N); returns the P picked indices."""
    A = np.zeros((p, p))
    A[p - 1, 0] = 1.0
    indices = np.empty(p, dtype=np.int64)
    for i in range(p):
        w = rng.standard_normal(p)
        f = w - A @ (np.linalg.pinv(A) @ w)
        f /= np.linalg.norm(f)
        indices[i] = np.argmax(np.abs(f @ y))
        A[:, i] = y[:, indices[i]]
    return indices


def vca(Y, P, seed=0, snr=None):
    """Vertex Component Analysis.

    Parameters
    ----------
    Y : (L, N) pixels (float32 or float64; not copied as a whole).
    P : number of endmembers, 2 <= P <= min(L, N).
    seed : seed of the Gaussian directions.
    snr : SNR in dB to use instead of the estimate (selects the projection).

    Returns
    -------
    VCAResult with endmembers (L, P), indices (P,), snr_db, projective.
    """
    return vca_runs(Y, P, [seed], snr)[0]


def vca_runs(Y, P, seeds, snr=None):
    """:func:`vca` for each of ``seeds``: a list of VCAResult, each the one ``vca(Y, P, seed, snr)`` returns.

    Steps 1 and 2 (the moments, the SNR and the projection) do not depend on the seed: they are computed
    once for all runs, and only step 3 runs per seed.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise DeepGUError("VCA needs pixels as (bands, pixels), got shape %s" % (Y.shape,))
    L, n = Y.shape
    if not isinstance(P, (int, np.integer)) or P < 2:
        raise DeepGUError("VCA needs an integer number of endmembers >= 2, got %r" % (P,))
    if P > L:
        raise DeepGUError("VCA cannot find %d endmembers in %d bands" % (P, L))
    if P > n:
        raise DeepGUError("VCA cannot find %d endmembers among %d pixels" % (P, n))
    if not np.issubdtype(Y.dtype, np.number):
        raise DeepGUError("VCA needs numeric pixels, got dtype %s" % Y.dtype)
    mean, corr = _moments(Y)
    if not np.all(np.isfinite(np.diag(corr))):
        raise DeepGUError("VCA input contains NaN or infinite values")
    snr_db = estimate_snr(mean, corr, P) if snr is None else float(snr)
    projective = snr_db >= 15.0 + 10.0 * np.log10(P)
    y = _projective(Y, corr, P) if projective else _pca(Y, mean, corr, P)
    runs = []
    for seed in seeds:
        indices = _find_vertices(y, P, np.random.default_rng(seed))
        runs.append(VCAResult(Y[:, indices].astype(np.float64), indices, snr_db, bool(projective)))
    return runs
