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
  ``max_angle_deg`` of its closest reference joins that material's bundle.

Ties are broken by the smaller global pixel index, so the selection does not
depend on how the image was cut into blocks. Pixels with non-finite values or
zero norm are never selected.
"""

import numpy as np

from .errors import DeepGUError
from .vca import vca

METHODS = ("nearest", "angle", "auto")
MAX_ANGLE_PIXELS = 5000
"""Cap on a bundle of the ``"angle"`` method (its nearest pixels are kept), bounding memory."""


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
    """Running bundle selection over blocks of pixels (``"nearest"`` or ``"angle"``).

    Memory is ``O(P * cap * L)`` with ``cap = n_pixels`` (``"nearest"``) or
    :data:`MAX_ANGLE_PIXELS` (``"angle"``), whatever the image size.

    Parameters: ``M`` (L, P) reference endmembers; ``n_pixels`` bundle size for
    ``"nearest"``; ``max_angle_deg`` threshold, required for ``"angle"`` and
    ignored by ``"nearest"``; ``min_pixels`` the smallest acceptable bundle;
    ``names`` optional material names for messages.
    """

    def __init__(self, M, method="nearest", n_pixels=100, max_angle_deg=None, min_pixels=10, names=None):
        self.M = _check_endmembers(M)
        if method not in ("nearest", "angle"):
            raise DeepGUError("bundle method must be 'nearest' or 'angle' for block-wise selection, got %r" % (method,))
        if method == "nearest" and int(n_pixels) < 1:
            raise DeepGUError("the number of pixels per bundle must be at least 1, got %s" % (n_pixels,))
        if method == "angle" and (max_angle_deg is None or not 0 < max_angle_deg < 180):
            raise DeepGUError("the 'angle' bundle method needs a maximum angle in (0, 180) degrees, got %s"
                              % (max_angle_deg,))
        self.method = method
        self.cap = int(n_pixels) if method == "nearest" else MAX_ANGLE_PIXELS
        self.max_angle = np.deg2rad(max_angle_deg) if method == "angle" else np.inf
        self.min_pixels = int(min_pixels)
        self.names = names
        n_bands, n_materials = self.M.shape
        self._angles = [np.empty(0) for _ in range(n_materials)]
        self._indices = [np.empty(0, dtype=np.int64) for _ in range(n_materials)]
        self._spectra = [np.empty((n_bands, 0)) for _ in range(n_materials)]

    def update(self, Y_block, index_block):
        """Add a block of pixels ``Y_block`` (L, n) with global row-major indices ``index_block`` (n,)."""
        Y_block = _check_pixels(Y_block, self.M.shape[0])
        index_block = np.asarray(index_block, dtype=np.int64).ravel()
        if index_block.shape[0] != Y_block.shape[1]:
            raise DeepGUError("got %d pixel indices for %d pixels" % (index_block.shape[0], Y_block.shape[1]))
        valid = _valid(Y_block)
        Y_block, index_block = Y_block[:, valid], index_block[valid]
        angles = spectral_angles(Y_block, self.M)
        owner = np.argmin(angles, axis=0) if angles.shape[1] else np.empty(0, dtype=np.int64)
        best = angles[owner, np.arange(owner.size)]
        for p in range(self.M.shape[1]):
            mine = np.flatnonzero((owner == p) & (best <= self.max_angle))
            mine = mine[_smallest(best[mine], self.cap)]
            self._merge(p, best[mine], index_block[mine], Y_block[:, mine])

    def _merge(self, p, angles, indices, spectra):
        """Keep the ``cap`` smallest (angle, index) pairs among the kept and the new candidates."""
        angles = np.concatenate([self._angles[p], angles])
        indices = np.concatenate([self._indices[p], indices])
        order = np.lexsort((indices, angles))[: self.cap]
        spectra = np.concatenate([self._spectra[p], spectra], axis=1)[:, order]
        self._angles[p], self._indices[p], self._spectra[p] = angles[order], indices[order], spectra

    def result(self):
        """List over materials of ``(spectra (L, n_p), indices (n_p,))``, nearest first."""
        for p, indices in enumerate(self._indices):
            if indices.size < self.min_pixels:
                raise DeepGUError(
                    "%s has only %d bundle pixels (at least %d needed); use a larger angle or fewer pixels per bundle"
                    % (_material_label(p, self.names), indices.size, self.min_pixels)
                )
        return [(s.copy(), i.copy()) for s, i in zip(self._spectra, self._indices)]


def auto_bundles(Y, M, max_angle_deg=5.0, n_subsets=50, subset_fraction=0.1, min_pixels=10, names=None, seed=0):
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


def select_bundles(Y, M, method="nearest", n_pixels=100, max_angle_deg=5.0, min_pixels=10, names=None,
                   n_subsets=50, subset_fraction=0.1, seed=0):
    """Bundles of a whole pixel array ``Y`` (L, N) for references ``M`` (L, P).

    ``n_pixels`` is used by ``"nearest"``; ``max_angle_deg`` by ``"angle"`` and
    ``"auto"``; ``n_subsets``, ``subset_fraction`` and ``seed`` by ``"auto"``.
    Returns a list over materials of ``(spectra (L, n_p), indices (n_p,))``.
    """
    if method == "auto":
        return auto_bundles(Y, M, max_angle_deg, n_subsets, subset_fraction, min_pixels, names, seed)
    if method not in METHODS:
        raise DeepGUError("unknown bundle method %r (choose one of %s)" % (method, ", ".join(METHODS)))
    selector = BundleSelector(M, method, n_pixels, max_angle_deg if method == "angle" else None, min_pixels, names)
    selector.update(Y, np.arange(np.shape(Y)[-1]))
    return selector.result()
