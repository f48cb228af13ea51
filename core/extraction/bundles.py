"""Bundles: the pixels each VAE is trained on (Algorithm 1, step 3).

For reference endmembers ``M = [m_1 ... m_P]`` (L, P) and pixels ``y_n`` the
spectral angle is

    theta_pn = arccos( <m_p, y_n> / (||m_p|| ||y_n||) )      in [0, pi].

A pixel is a candidate only for the material it is closest to
(``argmin_p theta_pn``), so bundles never share a pixel. Then

- ``"nearest"`` (the paper): material ``p`` keeps its ``n_pixels`` candidates
  with the smallest angle;
- ``"angle"`` (the authors' code): material ``p`` keeps every candidate with
  ``theta_pn <= max_angle_deg``, at most the :data:`MAX_ANGLE_PIXELS` nearest;
- ``"auto"``: automated bundle extraction in the spirit of Somers et al. (2012):
  VCA on random subsets of the image; every extracted pixel within
  ``max_angle_deg`` of its closest reference joins that material's bundle;
- ``"spatial"``: pixels inside homogeneous regions. With abundances ``A``
  (P, rows, cols) from a first unmixing (FCLS with ``M``), the local purity
  ``s_pn`` is the mean of ``a_p`` over the valid pixels of a ``window x window``
  neighbourhood of ``n`` (:func:`local_purity`); a pixel is a candidate for
  ``argmax_p s_pn`` only, and material ``p`` keeps its ``n_pixels`` candidates
  with the largest ``s_pn``. The spectral angle picks the purest pixels of
  the *reference's shape*, so with per-pixel variability of shape it misses
  the pure pixels whose spectra vary most and takes mixed pixels instead;
  averaging a neighbourhood cancels much of the error that variability puts
  into a single pixel's abundances, and pure pixels lie inside regions.

Ties are broken by the smaller global pixel index, so the selection does not
depend on how the image was cut into blocks. For ``"spatial"``, where whole
regions tie at purity 1, ties are broken by a seeded hash of the index
instead (:func:`tie_order`): a random sample of the equally pure pixels,
spread over all the regions rather than the top rows, and still independent
of the blocks (not by the angle: that would bring back the bias towards the
reference's shape). Pixels with non-finite values or zero norm are never selected.
"""

import numpy as np
from scipy.ndimage import uniform_filter

from ..defaults import BUNDLE_METHODS as METHODS, BUNDLES, PURITY_WINDOW
from ..errors import DeepGUError
from ..validation import MAX_ANGLE_PIXELS
from .vca import vca


def spectral_angles(Y, M):
    """Spectral angles (P, N), radians, between the columns of ``M`` (L, P) and of ``Y`` (L, N).

    A zero vector is taken as orthogonal to everything (angle ``pi/2``).
    """
    Y = np.asarray(Y, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    norm_y = np.linalg.norm(Y, axis=0)
    norm_m = np.linalg.norm(M, axis=0)
    denom = np.outer(norm_m, norm_y)
    cos = np.divide(M.T @ Y, denom, out=np.zeros(denom.shape), where=denom > 0)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def local_purity(A, valid=None, window=PURITY_WINDOW):
    """Mean abundance over the valid pixels of each pixel's ``window x window`` neighbourhood.

    ``A`` (P, rows, cols), ``valid`` (rows, cols) bool (default: where every
    abundance is finite). Returns (P, rows, cols) float64,
    ``s_pn = sum_{m in W(n), valid} a_pm / #{m in W(n), valid}``, NaN where
    ``n`` itself is invalid. Neighbourhoods are cut at the image border.
    """
    A = np.asarray(A, dtype=np.float64)
    if valid is None:
        valid = np.all(np.isfinite(A), axis=0)
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise DeepGUError("the purity window must be an odd number of pixels >= 1, got %s" % window)
    weight = valid.astype(np.float64)
    count = uniform_filter(weight, window, mode="constant")
    sums = np.stack([uniform_filter(np.where(valid, a, 0.0), window, mode="constant") for a in A])
    purity = np.divide(sums, count, out=np.full(A.shape, np.nan), where=count > 0)
    purity[:, ~valid] = np.nan
    return purity


def tie_order(indices, seed=0):
    """A seeded pseudo-random order key (uint64) of global pixel indices: the splitmix64 hash of index + seed."""
    with np.errstate(over="ignore"):
        x = np.asarray(indices, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(int(seed) + 1)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _material_label(p, names):
    return "material %d (%s)" % (p + 1, names[p]) if names is not None else "material %d" % (p + 1)


def _check_pixels(Y, n_bands):
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != n_bands:
        raise DeepGUError("pixels must be a (%d bands, pixels) array, got shape %s" % (n_bands, Y.shape))
    return Y


def _valid(Y):
    """(N,) True for pixels that are finite and not all zero."""
    return np.all(np.isfinite(Y), axis=0) & np.any(Y != 0, axis=0)


def _check_endmembers(M):
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[1] < 1:
        raise DeepGUError("reference endmembers must be a (bands, materials) array, got shape %s" % (M.shape,))
    if not np.all(np.isfinite(M)) or np.any(np.linalg.norm(M, axis=0) == 0):
        raise DeepGUError("reference endmembers must be finite and non-zero")
    return M


def _smallest(values, count):
    """Positions of the ``count`` smallest ``values``, plus any value tied with the largest of them."""
    if values.size <= count:
        return np.arange(values.size)
    return np.flatnonzero(values <= np.partition(values, count - 1)[count - 1])


class BundleSelector:
    """Running bundle selection over blocks of pixels (``"nearest"``, ``"angle"`` or ``"spatial"``).

    Memory is ``O(P * cap * L)`` with ``cap = n_pixels`` (``"nearest"``,
    ``"spatial"``) or :data:`MAX_ANGLE_PIXELS` (``"angle"``), whatever the image size.

    Parameters: ``M`` (L, P) reference endmembers; ``n_pixels`` bundle size for
    ``"nearest"`` and ``"spatial"``; ``max_angle_deg`` threshold, required for ``"angle"`` and
    ignored by ``"nearest"``; ``min_pixels`` the smallest acceptable bundle;
    ``names`` optional material names for messages; ``seed`` of the tie order of ``"spatial"``.
    """

    def __init__(self, M, method=BUNDLES["METHOD"], n_pixels=BUNDLES["N_PIXELS"], max_angle_deg=None,
                 min_pixels=BUNDLES["MIN_PIXELS"], names=None, seed=0):
        self.M = _check_endmembers(M)
        if method not in ("nearest", "angle", "spatial"):
            raise DeepGUError("bundle method must be 'nearest', 'angle' or 'spatial' for block-wise selection, "
                              "got %r" % (method,))
        if method != "angle" and int(n_pixels) < 1:
            raise DeepGUError("the number of pixels per bundle must be at least 1, got %s" % (n_pixels,))
        if method == "angle" and (max_angle_deg is None or not 0 < max_angle_deg < 180):
            raise DeepGUError("the 'angle' bundle method needs a maximum angle in (0, 180) degrees, got %s"
                              % (max_angle_deg,))
        self.method = method
        self.cap = MAX_ANGLE_PIXELS if method == "angle" else int(n_pixels)
        self.max_angle = np.deg2rad(max_angle_deg) if method == "angle" else np.inf
        self.min_pixels = int(min_pixels)
        self.names = names
        self.seed = seed
        n_bands, n_materials = self.M.shape
        self._keys = [np.empty(0) for _ in range(n_materials)]
        self._indices = [np.empty(0, dtype=np.int64) for _ in range(n_materials)]
        self._spectra = [np.empty((n_bands, 0)) for _ in range(n_materials)]
        # "spatial" also keeps each material's purest pixels among *all* pixels, for a material that is
        # the purest one nowhere (then its bundle may share pixels with others; see result())
        self._fallback = BundleSelector(M, "nearest", n_pixels, names=names) if method == "spatial" else None
        self.fallback_used = []

    def update(self, Y_block, index_block, purity=None):
        """Add a block of pixels ``Y_block`` (L, n) with global row-major indices ``index_block`` (n,).

        ``purity`` (P, n): the local purity of these pixels (:func:`local_purity`),
        required by ``"spatial"`` and ignored otherwise; NaN marks a pixel to skip.
        """
        Y_block = _check_pixels(Y_block, self.M.shape[0])
        index_block = np.asarray(index_block, dtype=np.int64).ravel()
        if index_block.shape[0] != Y_block.shape[1]:
            raise DeepGUError("got %d pixel indices for %d pixels" % (index_block.shape[0], Y_block.shape[1]))
        valid = _valid(Y_block)
        if self.method == "spatial":
            purity = np.asarray(purity, dtype=np.float64)
            if purity.shape != (self.M.shape[1], Y_block.shape[1]):
                raise DeepGUError("purity must be (%d materials, %d pixels), got %s"
                                  % (self.M.shape[1], Y_block.shape[1], purity.shape))
            valid &= np.all(np.isfinite(purity), axis=0)
            purity = purity[:, valid]
        Y_block, index_block = Y_block[:, valid], index_block[valid]
        # (P, n) scores, smaller is better: the spectral angle, or minus the purity
        scores = -purity if self.method == "spatial" else spectral_angles(Y_block, self.M)
        columns = np.arange(Y_block.shape[1])
        owner = np.argmin(scores, axis=0) if columns.size else np.empty(0, dtype=np.int64)
        keys = scores[owner, columns]
        for p in range(self.M.shape[1]):
            mine = np.flatnonzero((owner == p) & (keys <= self.max_angle))
            mine = mine[_smallest(keys[mine], self.cap)]
            self._merge(p, keys[mine], index_block[mine], Y_block[:, mine])
            if self._fallback is not None:
                anyone = _smallest(scores[p], self.cap)
                self._fallback._merge(p, scores[p, anyone], index_block[anyone], Y_block[:, anyone])

    def _merge(self, p, keys, indices, spectra):
        """Keep the ``cap`` first pixels in (key, tie order) among the kept and the new candidates.

        The key is the spectral angle, or ``-purity`` for ``"spatial"``; the tie order
        the index, or its :func:`tie_order` for ``"spatial"``.
        """
        keys = np.concatenate([self._keys[p], keys])
        indices = np.concatenate([self._indices[p], indices])
        ties = tie_order(indices, self.seed) if self.method == "spatial" else indices
        order = np.lexsort((ties, keys))[: self.cap]
        spectra = np.concatenate([self._spectra[p], spectra], axis=1)[:, order]
        self._keys[p], self._indices[p], self._spectra[p] = keys[order], indices[order], spectra

    def result(self):
        """List over materials of ``(spectra (L, n_p), indices (n_p,))``, nearest first.

        With ``"spatial"``, a material that is the purest one at fewer than ``min_pixels`` pixels
        gets its purest pixels among all pixels instead (listed in ``fallback_used``).
        """
        self.fallback_used = []
        for p, indices in enumerate(self._indices):
            if (indices.size < self.min_pixels and self._fallback is not None
                    and self._fallback._indices[p].size >= self.min_pixels):
                self._keys[p], self._indices[p], self._spectra[p] = (self._fallback._keys[p],
                                                                     self._fallback._indices[p],
                                                                     self._fallback._spectra[p])
                self.fallback_used.append(p)
                indices = self._indices[p]
            if indices.size < self.min_pixels:
                raise DeepGUError(
                    "%s has only %d bundle pixels (at least %d needed); use a larger angle or fewer pixels per bundle"
                    % (_material_label(p, self.names), indices.size, self.min_pixels)
                )
        return [(s.copy(), i.copy()) for s, i in zip(self._spectra, self._indices)]


def auto_bundles(Y, M, max_angle_deg=BUNDLES["ANGLE"], n_subsets=50, subset_fraction=0.1,
                 min_pixels=BUNDLES["MIN_PIXELS"], names=None, seed=0):
    """Bundles from VCA runs on random pixel subsets (Somers et al. 2012, simplified).

    Each of ``n_subsets`` subsets holds ``max(ceil(subset_fraction * N), 2 P)``
    pixels drawn without replacement (seeded); VCA extracts ``P`` endmember
    pixels from each; a pixel joins the bundle of its closest reference
    ``m_p`` when that angle is at most ``max_angle_deg``. Duplicates are
    dropped. Returns the same structure as :meth:`BundleSelector.result`.
    """
    M = _check_endmembers(M)
    Y = _check_pixels(Y, M.shape[0])
    valid = np.flatnonzero(_valid(Y))
    n_materials = M.shape[1]
    if valid.size < n_materials:
        raise DeepGUError("the image has only %d valid pixels for %d materials" % (valid.size, n_materials))
    rng = np.random.default_rng(seed)
    size = min(valid.size, max(int(np.ceil(subset_fraction * valid.size)), 2 * n_materials))
    picked = []
    for _ in range(int(n_subsets)):
        subset = rng.choice(valid, size=size, replace=False)
        result = vca(Y[:, subset], n_materials, seed=int(rng.integers(2**31)))
        picked.append(subset[np.asarray(result.indices)])
    candidates = np.unique(np.concatenate(picked))
    selector = BundleSelector(M, "angle", max_angle_deg=max_angle_deg, min_pixels=min_pixels, names=names)
    selector.update(Y[:, candidates], candidates)
    return selector.result()


def select_bundles(Y, M, method=BUNDLES["METHOD"], n_pixels=BUNDLES["N_PIXELS"], max_angle_deg=BUNDLES["ANGLE"],
                   min_pixels=BUNDLES["MIN_PIXELS"], names=None,
                   n_subsets=50, subset_fraction=0.1, seed=0, purity=None):
    """Bundles of a whole pixel array ``Y`` (L, N) for references ``M`` (L, P).

    ``n_pixels`` is used by ``"nearest"`` and ``"spatial"``; ``max_angle_deg`` by
    ``"angle"`` and ``"auto"``; ``n_subsets``, ``subset_fraction`` and ``seed`` by
    ``"auto"``; ``purity`` (P, N) (:func:`local_purity` of the pixels) by ``"spatial"``,
    whose ties ``seed`` also orders.
    Returns a list over materials of ``(spectra (L, n_p), indices (n_p,))``.
    """
    if method == "auto":
        return auto_bundles(Y, M, max_angle_deg, n_subsets, subset_fraction, min_pixels, names, seed)
    if method not in METHODS:
        raise DeepGUError("unknown bundle method %r (choose one of %s)" % (method, ", ".join(METHODS)))
    selector = BundleSelector(M, method, n_pixels, max_angle_deg if method == "angle" else None, min_pixels, names,
                              seed)
    if method == "spatial" and purity is None:
        raise DeepGUError("the 'spatial' bundle method needs abundances (e.g. the FCLS result) to measure purity")
    selector.update(Y, np.arange(np.shape(Y)[-1]), purity)
    return selector.result()
