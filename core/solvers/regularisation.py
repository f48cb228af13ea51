"""Regularisation weights that need no tuning: ``auto`` lambda_Z and lambda_A from the data.

DeepGU's cost weighs a data term ``1/2 ||y_n - G(Z_n) a_n||^2``, which scales with the square of
the data's units and with the band count, against ``lambda_Z/2 ||u||^2`` on the whitened codes
(:mod:`.latent`) and ``lambda_A TV(A)`` on the abundances. At ``auto`` both weights are set from
three levels measured on the initial fit (FCLS with the references ``M0``, abundances ``A0``):

- ``rho2`` = median over pixels of ``||y_n - M0 a_n||^2``: the misfit energy per pixel of the
  reference model (noise plus variability). ``lambda_Z = KAPPA_Z rho2`` is the Bayesian weight
  of a unit Gaussian prior on u against a Gaussian misfit of that energy.
- ``sigma_a``: the white-noise level of the abundance maps, estimated like an image's noise by
  the median absolute Haar diagonal detail, ``median |a(i,j) - a(i+1,j) - a(i,j+1) + a(i+1,j+1)| / 2
  / 0.6745`` (Donoho & Johnstone 1994) over 2 x 2 blocks of valid pixels and every material.
  Errors that vary from pixel to pixel (per-pixel variability, noise) raise it; errors that are
  smooth in space, and smooth true maps, barely do.
- ``curvature``: ``sqrt(h_min h_geo)``, with ``h`` the eigenvalues of ``M0^T M0`` on the sum-zero
  subspace (the directions in which abundances on the simplex can move; how strongly the data
  pin the abundances in each), ``h_min`` the smallest (small for two spectrally close materials)
  and ``h_geo`` their geometric mean (:func:`tv_curvature`).

``lambda_A = KAPPA_A sigma_a curvature``. Near pixel n the A-step is TV denoising of the
unconstrained estimate with the quadratic ``1/2 (a - a_hat)^T H (a - a_hat)``. In coordinates
where the data's noise is white (``b = H^1/2 a``, noise level ``sigma_y``) the TV weight that
suits a direction of curvature h is proportional to ``sigma_y sqrt(h)``, and the abundance noise
is largest, ``sigma_y / sqrt(h_min)``, along the weakest direction, so ``sigma_y ~ sigma_a
sqrt(h_min)``. One weight must serve all directions; it is set for the geometric mean of their
curvatures: ``lambda_A ~ sigma_a sqrt(h_min) sqrt(h_geo)``. (Setting it for the weakest direction
alone, ``sigma_a h_min``, the rule before, smoothed scenes with two close materials 2-4x too little:
``bench/bench_lambda_z.py --weight a``, README.) All three levels scale as they should: multiplying
the scene by c multiplies ``rho2`` and ``curvature`` by c^2 and leaves ``sigma_a`` unchanged, so
the abundances do not change (``tests/test_latent.py``). KAPPA_Z and KAPPA_A were chosen on the
scenes of ``bench/accuracy_scenes.py`` (several libraries, variability types and a real scene), not
on one scene; KAPPA_A = 1.25 keeps the weight of the earlier rule (2 sigma_a h_min) on the scenes
without a close pair, where ``sqrt(h_geo / h_min)`` is about 1.6.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import DeepGUError

AUTO = "auto"
KAPPA_Z = 1.0
KAPPA_A = 1.25
KAPPA_S = 1.0
_MAD = 0.6745


@dataclass(frozen=True)
class Levels:
    """rho2 (misfit energy per pixel), sigma_a (abundance noise), curvature (:func:`tv_curvature`), length2
    (:func:`abundance_length2`; None where not measured), noise2 (the image's white-noise variance per band,
    :func:`noise_variance`; NaN where not measured)."""

    rho2: float
    sigma_a: float
    curvature: float
    length2: float = None
    noise2: float = float("nan")


def is_auto(value):
    """True for None, "auto" (any case)."""
    return value is None or (isinstance(value, str) and value.strip().lower() == AUTO)


def abundance_noise(A, valid=None):
    """sigma_a of abundance maps ``A`` (P, rows, cols) (module docstring); 0 when no 2 x 2 block is valid.

    ``valid``: (rows, cols) for every material (default: where every band of A is finite), or
    (P, rows, cols) per material; a material's block counts where all four of its pixels are valid.
    """
    A = np.asarray(A, dtype=np.float64)
    valid = np.all(np.isfinite(A), axis=0) if valid is None else np.asarray(valid, dtype=bool)
    r, c = (A.shape[1] // 2) * 2, (A.shape[2] // 2) * 2
    a, v = A[:, :r, :c], np.broadcast_to(valid, A.shape)[:, :r, :c]
    detail = (a[:, 0::2, 0::2] - a[:, 1::2, 0::2] - a[:, 0::2, 1::2] + a[:, 1::2, 1::2]) / 2
    full = v[:, 0::2, 0::2] & v[:, 1::2, 0::2] & v[:, 0::2, 1::2] & v[:, 1::2, 1::2]
    values = np.abs(detail[full])
    return float(np.median(values) / _MAD) if values.size else 0.0


def abundance_length2(A, valid=None):
    """The squared correlation length (pixels^2) of abundance maps ``A`` (P, rows, cols): per material, the
    variance of its map over the valid pixels divided by the mean squared difference of horizontal and vertical
    neighbours (both valid); the median over materials, at least 1. For a smooth stationary field of correlation
    function exp(-r^2 / (2 l^2)) this is about l^2; for white noise 1/2 (hence the floor). 1 when no two valid
    pixels are neighbours.
    """
    A = np.asarray(A, dtype=np.float64)
    valid = np.all(np.isfinite(A), axis=0) if valid is None else np.asarray(valid, dtype=bool)
    h, v = valid[:, 1:] & valid[:, :-1], valid[1:] & valid[:-1]
    if not (h.any() or v.any()):
        return 1.0
    ratios = []
    for a in A:
        squares = np.concatenate([(a[:, 1:] - a[:, :-1])[h], (a[1:] - a[:-1])[v]]) ** 2
        ratios.append(np.var(a[valid]) / max(float(squares.mean()), np.finfo(float).tiny))
    return float(max(np.median(ratios), 1.0))


def curvature_directions(M):
    """Eigenvalues h (P-1,), ascending, of M^T M (M (L, P)) on the sum-zero subspace of R^P, and their unit
    directions W (P, P-1) in R^P (columns, each summing to zero)."""
    M = np.asarray(M, dtype=np.float64)
    P = M.shape[1]
    basis = np.linalg.qr(np.vstack([np.ones(P), np.eye(P)[:P - 1] - np.eye(P)[P - 1]]).T)[0][:, 1:]
    h, V = np.linalg.eigh(basis.T @ M.T @ M @ basis)
    return h, basis @ V


def sum_zero_curvatures(M):
    """The eigenvalues of :func:`curvature_directions`: how strongly the data pin abundances in each direction."""
    return curvature_directions(M)[0]


def tv_curvature(M):
    """``sqrt(h_min h_geo)`` of :func:`sum_zero_curvatures` (module docstring); 0 when M's columns are degenerate."""
    h = sum_zero_curvatures(M)
    if h[0] <= 0:
        return 0.0
    return float(np.sqrt(h[0] * np.exp(np.mean(np.log(h)))))


def noise_variance(pixels):
    """The white-noise variance per band (mean over bands) of ``pixels`` (L, N), by the regression of every band on
    all the others (the noise estimate of HySime, Bioucas-Dias & Nascimento 2008): the signal of a mixture lies in a
    low-dimensional subspace that the other bands span, the noise does not. With ``R = X^T X`` (X the N x L pixels)
    the residual sum of squares of band l is ``1 / (R^-1)_ll``; each has ``N - L + 1`` degrees of freedom. A variance
    per band (not a sum over bands); it scales with the square of the data's units; with few bands the regressors' own
    noise biases it up. 0 when N < 2 L (too few
    pixels to regress on) or the bands are degenerate."""
    X = np.asarray(pixels, dtype=np.float64)
    L, n = X.shape
    if n < 2 * L:
        return 0.0
    R = X @ X.T
    R += 1e-12 * np.trace(R) / L * np.eye(L)
    try:
        rss = 1.0 / np.diag(np.linalg.inv(R))
    except np.linalg.LinAlgError:
        return 0.0
    return float(np.mean(rss) / (n - L + 1))


def measure_levels(Y, M, A, valid):
    """:class:`Levels` of an image ``Y`` (L, rows, cols) with references ``M`` (L, P).

    ``A`` (P, rows, cols) the abundances of the fit; ``valid`` (rows, cols) marks the pixels to use.
    """
    pixels, abundances = np.asarray(Y, dtype=np.float64)[:, valid], np.asarray(A, dtype=np.float64)[:, valid]
    if pixels.shape[1] == 0:
        raise DeepGUError("no valid pixel to measure the regularisation levels on")
    residual = pixels - np.asarray(M, dtype=np.float64) @ abundances
    return Levels(float(np.median(np.einsum("ln,ln->n", residual, residual))), abundance_noise(A, valid),
                  tv_curvature(M), abundance_length2(A, valid), noise_variance(pixels))


def resolve(lambda_z, lambda_a, levels):
    """(lambda_Z, lambda_A): each ``auto`` from ``levels`` (module docstring), numbers kept as given."""
    lz = KAPPA_Z * levels.rho2 if is_auto(lambda_z) else float(lambda_z)
    la = KAPPA_A * levels.sigma_a * max(levels.curvature, 0.0) if is_auto(lambda_a) else float(lambda_a)
    for name, value in (("lambda_Z", lz), ("lambda_A", la)):
        if not np.isfinite(value) or value < 0:
            raise DeepGUError("%s must be 'auto' or a finite number >= 0, got %r" % (name, value))
    return lz, la


def describe(levels):
    text = ("residual level rho^2 %.4g, abundance noise %.4g, data curvature %.4g"
            % (levels.rho2, levels.sigma_a, levels.curvature))
    return text + (", noise variance per band %.4g" % levels.noise2 if np.isfinite(levels.noise2) else "")


def weights_line(lambda_z, lambda_a, levels=None):
    """The log line stating DeepGU's weights (numbers), with the ``levels`` the auto ones came from when given;
    ``deepgu:compare`` reads it from the log (``regularisation: ...``)."""
    return "regularisation: lambda_Z %.4g, lambda_A %.4g%s" % (
        lambda_z, lambda_a, " (auto: %s)" % describe(levels) if levels is not None else "")


def resolve_smoothness(lambda_s, levels):
    """lambda_S of the codes' spatial prior (:mod:`.smooth_zstep`): ``auto`` is ``KAPPA_S rho2 length2`` (so that
    the prior's correlation length, sqrt(lambda_S / lambda_Z) pixels at auto lambda_Z, is the abundance maps'),
    a number is kept."""
    if is_auto(lambda_s) and (levels is None or levels.length2 is None):
        raise DeepGUError("auto lambda_S needs the abundance maps' correlation length")
    value = KAPPA_S * levels.rho2 * levels.length2 if is_auto(lambda_s) else float(lambda_s)
    if not np.isfinite(value) or value < 0:
        raise DeepGUError("lambda_S must be 'auto' or a finite number >= 0, got %r" % (lambda_s,))
    return value
