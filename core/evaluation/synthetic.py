"""Synthetic hyperspectral scenes with known truth (the paper's Section VII-A).

A scene follows the linear mixing model with per-pixel endmembers::

    y_n = sum_p a_pn m_pn + e_n,      m_pn = psi_pn (.) m_p,      a_n on the unit simplex,

where ``m_p`` is a library spectrum (the reference endmember), ``psi_pn`` a positive
band-wise scaling factor (the endmember variability, ``(.)`` the element-wise product)
and ``e_n`` white Gaussian noise at a requested SNR. Two variability models:

- ``DC1``: every pixel and material gets its own random piecewise-linear function of
  wavelength (the model of the paper's reference [9], Thouvenin et al.'s PLMM).
- ``DC2``: band-dependent scaling factors that vary smoothly in space and in wavelength
  (the model of the paper's reference [11], Imbiriba et al.'s GLMM).

Abundance maps are spatially correlated: softmax of Gaussian random fields, which gives
nearly pure regions for every material and smooth mixed transitions between them.

The library shipped in ``core/data/usgs_library.csv`` (4 USGS materials at 198 AVIRIS
bands, see ``core/data/PROVENANCE.md``) is the default source of reference spectra.
"""

import os
from dataclasses import dataclass

import numpy as np

from ..defaults import SCENE_KINDS as KINDS, SYNTHETIC
from ..errors import DeepGUError
from ..files.library import read_spectra

LIBRARY_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "usgs_library.csv")

SOFTMAX_TEMPERATURE = 0.3   # of the unit-variance abundance fields; smaller = purer maps
PURE_ABUNDANCE = 0.96       # every material gets at least one pixel this pure (when it dominates somewhere)
DC1_KNOTS = 4               # interior knots of each piecewise-linear factor (plus both ends)
DC1_SPREAD = 0.25           # DC1 knot values are uniform in [1 - spread, 1 + spread]
DC2_BASIS = 4               # spectral basis cos(pi j t), j < DC2_BASIS, t = normalised wavelength
DC2_AMPLITUDE = 0.2         # DC2 factors stay within [1 - amplitude, 1 + amplitude]
_CHUNK_ELEMENTS = 1 << 22   # pixels x bands handled at once when building per-pixel endmembers


@dataclass
class SyntheticScene:
    """A synthetic scene and its truth.

    image        (L, rows, cols) float32   observed reflectance, noise included
    abundances   (P, rows, cols) float32   true abundances, on the unit simplex per pixel
    endmembers   (L, P, rows, cols) float32  true per-pixel endmembers m_pn
    reference    (L, P) float64            library spectra m_p (the variability-free endmembers)
    wavelengths  (L,) float64              band centres, nm
    names        list of P str             material names
    """

    image: np.ndarray
    abundances: np.ndarray
    endmembers: np.ndarray
    reference: np.ndarray
    wavelengths: np.ndarray
    names: list


def load_library(path=None):
    """Spectral library as ``(wavelengths (L,) nm, M (L, P), names)``; the shipped USGS one by default."""
    path = LIBRARY_PATH if path is None else path
    library = read_spectra(path)
    if library.wavelengths is None:
        raise DeepGUError("spectral library %s needs a 'wavelength' header column" % path)
    return library.wavelengths, library.as_endmembers(), library.materials


def correlation_length(rows, cols):
    """Spatial correlation length (pixels) of the random fields: a tenth of the short side, in [1.5, 10]."""
    return float(np.clip(min(rows, cols) / 10.0, 1.5, 10.0))


def gaussian_fields(count, rows, cols, length, rng):
    """``count`` stationary Gaussian random fields ``(count, rows, cols)``, each of zero mean and unit variance.

    White noise convolved (periodically, by FFT) with a Gaussian kernel of standard deviation
    ``length`` pixels, whose transfer function is ``exp(-2 pi^2 length^2 (fx^2 + fy^2))``.
    """
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    transfer = np.exp(-2.0 * np.pi ** 2 * length ** 2 * (fx ** 2 + fy ** 2))
    fields = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((count, rows, cols))) * transfer, s=(rows, cols))
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= np.maximum(fields.std(axis=(1, 2), keepdims=True), np.finfo(float).tiny)
    return fields


def abundance_maps(n_materials, rows, cols, rng):
    """Spatially correlated abundances ``(P, rows, cols)`` float32 on the simplex.

    ``a_p = exp(f_p / T) / sum_q exp(f_q / T)`` for unit-variance Gaussian random fields ``f_p``:
    where one field clearly dominates the pixel is nearly pure, where two are close it is mixed.
    ``T`` is ``SOFTMAX_TEMPERATURE``, lowered where needed so that every material that dominates
    somewhere has a pixel with abundance above ``PURE_ABUNDANCE``: with the largest margin
    ``g_p = max_n (f_pn - max_{q != p} f_qn) > 0``, ``T <= g_p / log((P - 1) a / (1 - a))`` gives ``a_p >= a``.
    """
    logits = gaussian_fields(n_materials, rows, cols, correlation_length(rows, cols), rng)
    temperature = SOFTMAX_TEMPERATURE
    if n_materials > 1:
        ranked = np.sort(logits, axis=0)
        runner_up = np.where(logits == ranked[-1], ranked[-2], ranked[-1])          # max over q != p
        margins = (logits - runner_up).reshape(n_materials, -1).max(axis=1)
        margins = margins[margins > 0]
        odds = (n_materials - 1) * PURE_ABUNDANCE / (1.0 - PURE_ABUNDANCE)
        if margins.size:
            temperature = min(temperature, margins.min() / np.log(odds))
    logits /= temperature
    logits -= logits.max(axis=0, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=0, keepdims=True)
    return weights.astype(np.float32)


def cap_abundances(abundances, max_abundance):
    """Abundances ``(P, ...)`` with no value above ``max_abundance``, still on the simplex (no pure pixels).

    A pixel whose largest abundance ``m`` exceeds the cap ``c`` is pulled towards the uniform mixture:
    ``a' = w a + (1 - w) / P`` with ``w = (c - 1/P) / (m - 1/P)``, so its largest abundance becomes
    exactly ``c``; the other pixels are unchanged. Needs ``1/P < c <= 1``.
    """
    P = abundances.shape[0]
    largest = abundances.max(axis=0, keepdims=True).astype(np.float64)
    weight = np.where(largest > max_abundance, (max_abundance - 1.0 / P) / np.maximum(largest - 1.0 / P, 1e-12), 1.0)
    return (weight * abundances + (1.0 - weight) / P).astype(np.float32)


def piecewise_linear_factors(count, wavelengths, rng):
    """``count`` random piecewise-linear functions of wavelength, sampled at the bands: ``(L, count)`` float32.

    Each function has knots at the shortest and longest wavelengths plus ``DC1_KNOTS`` distinct
    interior knots at random bands, values uniform in ``[1 - DC1_SPREAD, 1 + DC1_SPREAD]`` at the
    knots, and is linear in wavelength between consecutive knots. Bands need not be sorted.
    Evaluated along the sorted wavelengths by integrating the slope, which changes at the knots:
    ``f(lambda_{l+1}) = f(lambda_l) + s_l (lambda_{l+1} - lambda_l)``.
    """
    order = np.argsort(wavelengths, kind="stable")
    lam = np.asarray(wavelengths, dtype=np.float64)[order]
    n_bands = lam.size
    interior = min(DC1_KNOTS, n_bands - 2)
    # Distinct sorted interior knots in 1..L-2: a sorted draw with replacement plus 0, 1, ..., K-1.
    picks = np.sort(rng.integers(0, n_bands - 1 - interior, size=(count, interior)), axis=1)
    picks += np.arange(1, interior + 1)
    knots = np.concatenate([np.zeros((count, 1), int), picks, np.full((count, 1), n_bands - 1)], axis=1)
    values = rng.uniform(1.0 - DC1_SPREAD, 1.0 + DC1_SPREAD, size=knots.shape)
    slopes = np.diff(values, axis=1) / np.diff(lam[knots], axis=1)          # (count, K + 1)
    # Slope of the step from sorted band l to l + 1: the first slope plus the changes at knots <= l.
    changes = np.zeros((n_bands - 1, count), np.float32)
    changes[0] = slopes[:, 0]
    changes[picks.T, np.arange(count)] = np.diff(slopes, axis=1).T
    spacing = np.diff(lam)
    factors = np.empty((n_bands, count), np.float32)
    factors[0] = values[:, 0]
    slope = changes[0].copy()
    for band in range(n_bands - 1):        # a loop over bands, each step vectorised over all curves
        if band:
            slope += changes[band]
        np.multiply(slope, spacing[band], out=factors[band + 1])
        factors[band + 1] += factors[band]
    return factors[np.argsort(order)]


def smooth_spectral_basis(wavelengths):
    """``(DC2_BASIS, L)`` smooth curves ``cos(pi j t)`` of the normalised wavelength ``t`` in [0, 1]."""
    lam = np.asarray(wavelengths, dtype=np.float64)
    t = (lam - lam.min()) / max(np.ptp(lam), np.finfo(float).tiny)
    return np.cos(np.pi * np.arange(DC2_BASIS)[:, None] * t[None, :])


def _validate(kind, rows, cols, snr_db, n_materials, n_library, max_abundance):
    kind = str(kind).upper()
    if kind not in KINDS:
        raise DeepGUError("unknown scene kind %r: use one of %s" % (kind, ", ".join(KINDS)))
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise DeepGUError("%s must be an integer >= 2, got %r" % (name, value))
    if isinstance(n_materials, bool) or not isinstance(n_materials, (int, np.integer)) \
            or not 1 <= n_materials <= n_library:
        raise DeepGUError("n_materials must be an integer in [1, %d] (the library size), got %r"
                          % (n_library, n_materials))
    try:
        snr_ok = np.isfinite(float(snr_db))
    except (TypeError, ValueError):
        snr_ok = False
    if not snr_ok:
        raise DeepGUError("snr_db must be a finite number, got %r" % (snr_db,))
    try:
        cap_ok = 1.0 / n_materials < float(max_abundance) <= 1.0
    except (TypeError, ValueError):
        cap_ok = False
    if not cap_ok:
        raise DeepGUError("max_abundance must be in (1/%d, 1] (above the uniform mixture of %d materials), got %r"
                          % (n_materials, n_materials, max_abundance))
    return kind


def _library_spectra(library):
    """``library`` as (wavelengths, M, names): None = shipped, a CSV path, or a load_library-style tuple."""
    if library is None or isinstance(library, (str, os.PathLike)):
        library = load_library(library)
    try:
        wavelengths, spectra, names = library
        wavelengths = np.asarray(wavelengths, dtype=np.float64).ravel()
        spectra = np.asarray(spectra, dtype=np.float64)
        names = [str(name) for name in names]
    except (TypeError, ValueError):
        raise DeepGUError("library must be None, a CSV path or (wavelengths, M, names)") from None
    if spectra.ndim != 2 or spectra.shape != (wavelengths.size, len(names)) or wavelengths.size < 3:
        raise DeepGUError("library M must be (L, P) with L = len(wavelengths) >= 3 and P = len(names), got %s"
                          % (spectra.shape,))
    if not (np.all(np.isfinite(spectra)) and np.all(np.isfinite(wavelengths))):
        raise DeepGUError("library contains NaN or infinite values")
    if np.unique(wavelengths).size != wavelengths.size:
        raise DeepGUError("library wavelengths must be distinct")
    return wavelengths, spectra, names


def make_scene(kind=SYNTHETIC["KIND"], rows=SYNTHETIC["ROWS"], cols=SYNTHETIC["COLS"], snr_db=SYNTHETIC["SNR"], seed=0,
               n_materials=SYNTHETIC["MATERIALS"], library=None, max_abundance=1.0):
    """Generate a synthetic scene with known abundances and per-pixel endmembers.

    The first ``n_materials`` spectra of ``library`` (default: the shipped USGS library) are
    the references ``m_p``; ``library`` is None, a library CSV path or a :func:`load_library`-style
    tuple. Abundances come from :func:`abundance_maps`, capped at ``max_abundance`` by
    :func:`cap_abundances` when it is below 1 (a scene with no pure pixels); per-pixel endmembers
    are ``m_pn = psi_pn (.) m_p`` with ``psi`` from :func:`piecewise_linear_factors` (DC1) or
    ``psi_p(lambda, x, y) = 1 + DC2_AMPLITUDE * sum_j c_pj b_j(lambda) g_pj(x, y)`` (DC2), where
    ``b_j`` is :func:`smooth_spectral_basis`, ``g_pj`` Gaussian random fields rescaled to
    [-1, 1] and ``c_pj`` random weights summing to one. White Gaussian noise of variance
    ``||Y_clean||^2 / (L N 10^(snr_db / 10))`` is added, so ``10 log10(||Y_clean||^2 / ||E||^2)``
    is ``snr_db`` up to sampling error. Same ``seed`` -> identical scene.

    Memory: the per-pixel endmembers take ``4 L P rows cols`` bytes (1000 x 1000 x 198 bands
    with P = 5: 4 GB); they are built in blocks of pixels without larger temporaries.
    """
    wavelengths, spectra, names = _library_spectra(library)
    kind = _validate(kind, rows, cols, snr_db, n_materials, spectra.shape[1], max_abundance)
    rows, cols, P = int(rows), int(cols), int(n_materials)
    reference = spectra[:, :P].copy()
    names = list(names[:P])
    L, N = reference.shape[0], rows * cols
    rng = np.random.default_rng(seed)

    abundances = abundance_maps(P, rows, cols, rng)
    if max_abundance < 1.0:
        abundances = cap_abundances(abundances, float(max_abundance))
    if kind == "DC2":
        basis = smooth_spectral_basis(wavelengths)                                  # (J, L)
        fields = gaussian_fields(P * DC2_BASIS, rows, cols, correlation_length(rows, cols), rng)
        fields /= np.abs(fields).max(axis=(1, 2), keepdims=True)
        weights = rng.dirichlet(np.ones(DC2_BASIS), size=P)                          # (P, J)
        spatial = fields.reshape(P, DC2_BASIS, N) * (DC2_AMPLITUDE * weights[:, :, None])

    endmembers = np.empty((L, P, N), np.float32)
    image = np.empty((L, N), np.float32)
    flat_abundances = abundances.reshape(P, N)
    reference32 = reference.astype(np.float32)
    step = max(1, _CHUNK_ELEMENTS // L)
    energy = 0.0
    for start in range(0, N, step):
        block = slice(start, min(start + step, N))
        for p in range(P):
            if kind == "DC1":
                factors = piecewise_linear_factors(block.stop - start, wavelengths, rng)
            else:
                factors = 1.0 + basis.T @ spatial[p, :, block]
            np.multiply(factors, reference32[:, p, None], out=endmembers[:, p, block])
        image[:, block] = np.einsum("lpn,pn->ln", endmembers[:, :, block], flat_abundances[:, block])
        energy += float(np.sum(np.square(image[:, block], dtype=np.float64)))

    sigma = float(np.sqrt(energy / (L * N * 10.0 ** (float(snr_db) / 10.0))))
    for band in range(L):
        image[band] += sigma * rng.standard_normal(N, dtype=np.float32)

    return SyntheticScene(
        image=image.reshape(L, rows, cols),
        abundances=abundances,
        endmembers=endmembers.reshape(L, P, rows, cols),
        reference=reference,
        wavelengths=wavelengths,
        names=names,
    )
