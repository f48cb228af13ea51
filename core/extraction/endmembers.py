"""Reference endmembers beyond one VCA run: restarts, N-FINDR and a whole-scene refinement.

All functions take pixels ``Y`` (L, N) (or an image (L, rows, cols) for the refinement) and
return endmembers ``M`` (L, P) as float64.

- :func:`vca_best`: VCA with ``restarts`` seeds derived from ``seed``; keeps the run whose
  FCLS reconstruction error ``mean_n ||y_n - M a_n||^2`` (on a seeded subsample) is lowest.
  One VCA run can pick an outlier pixel as a vertex; the error of the whole scene
  rejects such runs.
- :func:`nfindr`: N-FINDR (Winter 1999): the P pixels spanning the simplex of largest
  volume in the (P-1)-dimensional PCA subspace. Vertex j is replaced, for all candidates
  at once, by the pixel maximising ``|det [1 ... 1; x_1 ... x_P]|``, which is linear in the
  replaced column: ``det = c_j^T [1; x_n]`` with ``c_j`` the cofactors of column j. Sweeps
  repeat until no vertex changes.
- :func:`best_start`: which of several VCA restarts (:func:`vca_starts`) to refine: the one whose
  briefly refined endmembers fit the scene best, among those that leave no material owning
  (almost) no pixels (:func:`ownership`).
- :func:`refine_purest`: alternating FCLS and a constrained endmember update. Given M,
  ``A = FCLS(Y, M)``; the local purity ``s_pn`` (mean of ``a_p`` over a ``window x window``
  neighbourhood, :func:`core.extraction.bundles.local_purity`) assigns each pixel to the material
  it is purest in and ranks it there; each ``m_p`` becomes the mean of the ``fraction``
  (default a third) spatially purest of the pixels p dominates. Repeated ``iterations``
  times or until M stops changing. A fraction of each material's own pixels, not a fixed
  count, makes the rule independent of the scene's size and of how common the material is.
  A *thin* material (:func:`thin_materials`: roads, rivers, field margins a pixel or two wide),
  which dominates pixels but (almost) no neighbourhood, is owned and ranked by its pixels' own
  abundance instead (:func:`purity_levels`).
  VCA and N-FINDR pick the most *extreme* pixels, which under variability and noise are the
  brightest or most atypical ones (on Samson 2-9 degrees from the reference); the mean of
  the purest pixels is the typical spectrum of the material, which is what FCLS and the
  DeepGU prior need as the reference (``bench/bench_endmembers.py``).
"""

import numpy as np
from scipy import sparse
from scipy.ndimage import uniform_filter

from .bundles import local_purity
from ..defaults import ENDMEMBERS, PURITY_WINDOW
from ..errors import DeepGUError
from ..solvers.fcls import fcls
from .vca import vca, vca_runs

PURITY_BINS = 512
SCREEN_ITERATIONS = 5       # refinement iterations when comparing VCA restarts (best_start)
MIN_OWNED_RATIO = 0.1       # best_start: a start whose least-owned material owns less than this ratio of the
                            # best-balanced start's least-owned one is degenerate
THIN_RATIO = 0.5            # a material that owns fewer than this ratio of neighbourhoods to pixels is thin ...
LINE_NEIGHBOURS = 2         # ... if its pixels have on average at least this many of their 8 neighbours (a line)
FIT_SAMPLE = 20000          # pixels on which vca_best scores its restarts
_REFINE_TOL = 1e-5          # relative change of M that ends the refinement early


def _check(Y, P):
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise DeepGUError("pixels must be (bands, pixels), got shape %s" % (Y.shape,))
    if not isinstance(P, (int, np.integer)) or P < 2:
        raise DeepGUError("the number of endmembers must be an integer >= 2, got %r" % (P,))
    if P > Y.shape[0] or P > Y.shape[1]:
        raise DeepGUError("cannot find %d endmembers with %d bands and %d pixels" % (P, Y.shape[0], Y.shape[1]))
    return Y


def fit_error(Y, M, A=None):
    """Mean squared FCLS reconstruction error ``mean_n ||y_n - M a_n||^2`` of pixels Y (L, N).

    ``A`` (P, N): the FCLS abundances of Y with M when already computed.
    """
    Y = np.asarray(Y, dtype=np.float64)
    residual = Y - M @ (fcls(Y, M) if A is None else A)
    return float(np.mean(np.einsum("ln,ln->n", residual, residual)))


def vca_best(Y, P, seed=0, restarts=ENDMEMBERS["RESTARTS"], fit_sample=FIT_SAMPLE):
    """VCA with ``restarts`` runs (seeds ``seed * restarts + r``), the lowest FCLS error wins.

    Returns ``(M (L, P), indices (P,), errors (restarts,))``.
    """
    Y = _check(Y, P)
    if int(restarts) < 1:
        raise DeepGUError("VCA restarts must be at least 1, got %s" % (restarts,))
    rng = np.random.default_rng(seed)
    n = Y.shape[1]
    fit = Y[:, np.sort(rng.choice(n, fit_sample, replace=False))] if n > fit_sample else Y
    runs = vca_runs(Y, P, [int(seed) * int(restarts) + r for r in range(int(restarts))])
    errors = np.array([fit_error(fit, run.endmembers) for run in runs])
    best = runs[int(np.argmin(errors))]
    return best.endmembers, best.indices, errors


def vca_starts(Y, P, seed=0, restarts=ENDMEMBERS["RESTARTS"]):
    """The endmembers (L, P) of ``restarts`` VCA runs (seeds as :func:`vca_best`), distinct pixel sets only."""
    Y = _check(Y, P)
    starts, seen = [], set()
    for run in vca_runs(Y, P, [int(seed) * int(restarts) + r for r in range(int(restarts))]):
        key = tuple(sorted(int(i) for i in run.indices))
        if key not in seen:
            seen.add(key)
            starts.append(run.endmembers)
    return starts


def _image_and_mask(image, mask=None):
    """``image`` (L, rows, cols) as float64 and its valid pixels (rows, cols): ``mask``, or all bands finite."""
    image = np.asarray(image, dtype=np.float64)
    return image, np.all(np.isfinite(image), axis=0) if mask is None else np.asarray(mask, dtype=bool)


def owner_counts(levels):
    """(P,) how many of the pixels have their largest level (P, n) in material p."""
    return np.bincount(np.argmax(levels, axis=0), minlength=levels.shape[0])


def pixel_owners(A, valid):
    """Each valid pixel's material of largest abundance and how many of its 8 neighbours share it.

    ``A`` (P, rows, cols) abundances, ``valid`` (rows, cols). Returns ``(owner, same)``, both
    (rows, cols) int64, -1 and 0 at invalid pixels; neighbours beyond the border count as different.
    """
    owner = np.where(valid, np.argmax(np.where(valid, A, 0.0), axis=0), -1)
    same = np.zeros(valid.shape, dtype=np.int64)
    for p in range(A.shape[0]):
        mine = owner == p
        around = np.rint(9.0 * uniform_filter(mine.astype(np.float64), 3, mode="constant")).astype(np.int64) - 1
        same[mine] = around[mine]
    return owner, same


def thin_materials(by_neighbourhood, by_pixel, neighbours):
    """(P,) bool: the materials that own pixels in lines but (almost) no neighbourhood.

    ``by_neighbourhood`` (P,) counts the pixels whose largest local purity is in p, ``by_pixel`` (P,)
    those whose largest own abundance is (:func:`owner_counts`), ``neighbours`` (P,) the sum over the
    latter of how many of their 8 neighbours are p's too (:func:`pixel_owners`). Thin: fewer than
    ``THIN_RATIO`` times as many neighbourhoods as pixels, and at least ``LINE_NEIGHBOURS`` neighbours
    per pixel on average (each pixel of a line has two). A material in regions wider than the purity
    window owns about as many of each (0.92-1.07 on the accuracy scenes); a road one or two pixels wide
    is the largest abundance of its pixels but never of a ``window x window`` mean, so it owns (almost)
    no neighbourhood, its pixels go to the neighbouring material, and the refinement can neither
    average its pure pixels nor see that it exists (``bench/accuracy_scenes.py``'s lake-roads, 0.1-0.3
    and 3.8-4.6 neighbours). A "ghost", a mixture spectrum that two materials' pixels share, owns
    scattered pixels, one neighbour or fewer on average (DC1-other-nopure): not thin.
    """
    by_pixel = np.asarray(by_pixel)
    in_lines = (np.asarray(neighbours) >= LINE_NEIGHBOURS * by_pixel) & (by_pixel > 0)
    return (np.asarray(by_neighbourhood) < THIN_RATIO * by_pixel) & in_lines


def purity_levels(abundances, local, thin):
    """(P, n) the level each material is ranked by: its local purity, or its own abundance where it is thin.

    ``abundances`` (P, n) FCLS abundances of the pixels, ``local`` (P, n) their local purity
    (:func:`core.extraction.bundles.local_purity`), ``thin`` (P,) bool (:func:`thin_materials`). A pixel belongs
    to the material of highest level, which ranks it by that level (:class:`PurityHistogram`).
    """
    return np.where(np.asarray(thin)[:, None], abundances, local)


def _ownership_counts(A, valid, window, rows=slice(None)):
    """The counts :func:`thin_materials` takes, over the ``rows`` of A (P, h, cols) and valid (h, cols).

    Returns ``(abundances (P, n), local (P, n), by_neighbourhood, by_pixel, neighbours)`` of those
    rows' valid pixels (the rows around them are the neighbourhoods' halo).
    """
    local = local_purity(A, valid, window)[:, rows]
    owner, same = pixel_owners(A, valid)
    core_valid = valid[rows]
    owner, same = owner[rows][core_valid], same[rows][core_valid]
    P = A.shape[0]
    local = local[:, core_valid]
    return (A[:, rows][:, core_valid], local, owner_counts(local), np.bincount(owner, minlength=P),
            np.bincount(owner, weights=same, minlength=P))


def _owned_shares(A, mask, window):
    """(P,) share of the ``mask`` pixels owned by each material (:func:`purity_levels`); A (P, rows, cols)."""
    abundances, local, *counts = _ownership_counts(A, mask, window)
    return owner_counts(purity_levels(abundances, local, thin_materials(*counts))) / max(abundances.shape[1], 1)


def _valid_pixels(image, mask):
    """``image[:, mask]`` (L, n) of ``image`` (L, rows, cols): without a copy when every pixel is valid."""
    return image.reshape(image.shape[0], -1) if mask.all() else image[:, mask]


def _fcls_grid(image, mask, M):
    """FCLS abundances (P, rows, cols) of the ``mask`` pixels of ``image`` with M, NaN elsewhere."""
    A = np.full((M.shape[1],) + mask.shape, np.nan)
    if mask.all():
        A.reshape(M.shape[1], -1)[:] = fcls(_valid_pixels(image, mask), M)
    elif mask.any():
        A[:, mask] = fcls(image[:, mask], M)
    return A


def ownership(image, M, mask=None, window=PURITY_WINDOW):
    """(P,) share of the valid pixels of ``image`` (L, rows, cols) that each column of ``M`` (L, P) owns.

    A pixel is owned by the material of highest local purity (``window x window`` mean of the FCLS
    abundances, :func:`core.extraction.bundles.local_purity`), or of highest abundance for a thin material
    (:func:`purity_levels`): the pixels the refinement could average for it.
    """
    image, mask = _image_and_mask(image, mask)
    return _owned_shares(_fcls_grid(image, mask, M), mask, window)


def best_start(image, starts, mask=None, window=PURITY_WINDOW, iterations=SCREEN_ITERATIONS, n_fixed=0):
    """Index of the start to refine, the fit errors of all starts, and which starts were eligible.

    Each start (L, P) is refined for ``iterations`` on ``image`` (L, rows, cols). Judging the *refined*
    endmembers, not the VCA pixels, rejects starts where one vertex is an outlier pixel and two real
    materials share one endmember: the refinement cannot split them again, and their means then explain
    the scene worse (on ``bench/accuracy_scenes.py``'s four-material scenes such starts gave FCLS RMSE_A
    0.27-0.29 instead of 0.04-0.16). The winner has the lowest FCLS reconstruction error among the
    *eligible* starts: those whose least-owned material (:func:`ownership`) owns at least
    ``MIN_OWNED_RATIO`` times what the best-balanced start's least-owned material does. A start that
    refines to a "ghost", a mixture spectrum that no pixel is dominated by, while two materials share
    one endmember, can fit the scene slightly better than the right set when no pixel is pure: on
    DC1-other-nopure seed 3 the lowest-error start left one material no pixels (the right sets: at
    least 21 % each) and gave FCLS RMSE_A 0.25 instead of 0.14 (``tests/test_endmembers.py``).
    Comparing with the other starts, not with a fixed share, keeps a material that is rare in the
    scene: it is rare in every start.

    ``n_fixed``: the first columns of every start are given references, held fixed (:func:`refine_purest`).
    Returns ``(index, errors (n_starts,), eligible (n_starts,) bool)``.
    """
    image, mask = _image_and_mask(image, mask)
    errors, least_owned = [], []
    strips = image_strips(image, mask)
    for M in starts:
        M = refine_purest(strips, M, window=window, iterations=iterations, n_fixed=n_fixed)[0]
        A = _fcls_grid(image, mask, M)
        errors.append(fit_error(_valid_pixels(image, mask), M, _valid_pixels(A, mask)))
        least_owned.append(_owned_shares(A, mask, window).min())
    errors, least_owned = np.array(errors), np.array(least_owned)
    eligible = least_owned >= MIN_OWNED_RATIO * least_owned.max()
    return int(np.argmin(np.where(eligible, errors, np.inf))), errors, eligible


def _pca_scores(Y, P):
    """(P-1, N) scores of Y (L, N) on its top P-1 principal components."""
    Y = np.asarray(Y, dtype=np.float64)
    mean = Y.mean(axis=1, keepdims=True)
    cov = (Y - mean) @ (Y - mean).T / Y.shape[1]
    _, vectors = np.linalg.eigh(cov)
    return vectors[:, ::-1][:, :P - 1].T @ (Y - mean)


def simplex_volume(X, indices):
    """``|det [1 ... 1; X[:, indices]]|`` for X (P-1, N): (P-1)! times the simplex volume."""
    X = np.asarray(X, dtype=np.float64)
    return float(abs(np.linalg.det(np.vstack([np.ones(len(indices)), X[:, indices]]))))


def nfindr(Y, P, seed=0, max_sweeps=20):
    """N-FINDR from the VCA vertices (seeded). Returns ``(M (L, P), indices (P,))``."""
    Y = _check(Y, P)
    X = np.vstack([np.ones(Y.shape[1]), _pca_scores(Y, P)])         # (P, N) augmented
    indices = np.array(vca(Y, P, seed=seed).indices, dtype=np.int64)
    for _ in range(int(max_sweeps)):
        changed = False
        for j in range(P):
            S = X[:, indices]
            det = np.linalg.det(S)
            if abs(det) > 0:
                cofactors = det * np.linalg.inv(S)[j]               # row j of adj(S) = cofactors of column j
            else:                                                   # degenerate start: cofactors by minors
                cofactors = np.array([(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(S, i, 0), j, 1))
                                      for i in range(P)])
            volumes = np.abs(cofactors @ X)
            best = int(np.argmax(volumes))
            if volumes[best] > abs(det) * (1 + 1e-12) and best not in indices:
                indices[j] = best
                changed = True
        if not changed:
            break
    return Y[:, indices].astype(np.float64), indices


def image_strips(image, mask=None):
    """The strips source of :func:`refine_purest` for an in-memory ``image`` (L, rows, cols): one strip.

    ``mask`` (rows, cols) valid pixels, default where every band is finite.
    """
    image, mask = _image_and_mask(image, mask)
    data = np.where(mask, image, 0.0)           # once, not on every pass of the refinement
    return lambda halo: iter([(data, mask, 0, image.shape[1])])


class PurityHistogram:
    """Per material, a histogram of local purity over the pixels it dominates, with the summed spectra per bin.

    A pixel belongs to ``owner = argmax_p s_pn``; its bin is ``floor(s_owner * bins)``.
    ``counts`` (P, bins) and ``sums`` (P, bins, L) are all the streaming refinement keeps, so its
    memory does not grow with the scene. :meth:`means` then averages, per material, the pixels
    of the top bins that hold at least ``fraction`` of the pixels it dominates.
    """

    def __init__(self, n_materials, n_bands, bins=PURITY_BINS):
        self.bins = int(bins)
        self.counts = np.zeros((n_materials, self.bins))
        self.sums = np.zeros((n_materials, self.bins, n_bands))

    def update(self, pixels, purity):
        """Add pixels (L, n) with their local purity (P, n) (finite)."""
        if pixels.shape[1] == 0:
            return
        owner = np.argmax(purity, axis=0)
        level = purity[owner, np.arange(pixels.shape[1])]
        cell = owner * self.bins + np.clip((level * self.bins).astype(np.int64), 0, self.bins - 1)
        size = self.counts.size
        onehot = sparse.csr_matrix((np.ones(cell.size), (cell, np.arange(cell.size))), shape=(size, cell.size))
        self.counts += np.bincount(cell, minlength=size).reshape(self.counts.shape)
        self.sums += (onehot @ pixels.T).reshape(self.sums.shape)

    def means(self, fraction, M):
        """(L, P) mean spectrum of each material's purest ``fraction`` (top bins); M's column when it owns nothing.

        Also returns the number of pixels averaged per material (P,).
        """
        out, used = M.copy(), np.zeros(self.counts.shape[0], dtype=np.int64)
        for p in range(self.counts.shape[0]):
            total = self.counts[p].sum()
            if total == 0:
                continue
            top = np.cumsum(self.counts[p, ::-1])                      # pixels in the k highest bins
            k = int(np.searchsorted(top, max(1.0, fraction * total))) + 1
            used[p] = int(top[k - 1])
            out[:, p] = self.sums[p, -k:].sum(axis=0) / used[p]
        return out, used


def refine_purest(strips, M, fraction=ENDMEMBERS["FRACTION"], window=PURITY_WINDOW,
                  iterations=ENDMEMBERS["ITERATIONS"], feedback=None, n_fixed=0):
    """Alternate FCLS and the purest-pixel mean (module docstring), streaming the scene in strips.

    ``strips(halo)`` yields ``(data (L, h, cols), valid (h, cols), first, n_core)``: full-width
    row strips that cover the scene once, each with up to ``halo`` extra rows on either side;
    ``first`` is the strip's first *core* row inside ``data`` and ``n_core`` its number of core
    rows (:func:`image_strips`, or :func:`core.jobs.endmembers.raster_strips` for a file).
    Purity needs ``window // 2`` rows of halo (at least one, :func:`pixel_owners`); FCLS is solved on
    the halo rows too. ``M`` (L, P) starting endmembers; each iteration replaces ``m_p`` by the mean of
    the ``fraction`` of the pixels p dominates that have the highest local purity
    (:class:`PurityHistogram`); a material found thin (:func:`thin_materials`) in one iteration is owned
    and ranked by its own abundance from the next one on (:func:`purity_levels`; a whole-scene count, so
    a streamed pass applies the previous pass's).
    ``n_fixed``: the first ``n_fixed`` columns of ``M`` are given references (partial supervision, e.g. from
    analyst regions): they take part in every FCLS but are returned exactly as given; only the others update.
    Returns ``(M (L, P), used (P,))``: the endmembers and how many pixels each averages.
    """
    M = np.asarray(M, dtype=np.float64)
    if not 0 < fraction <= 1:
        raise DeepGUError("the refinement fraction must be in (0, 1], got %r" % (fraction,))
    halo = max(int(window) // 2, 1)
    used = np.zeros(M.shape[1], dtype=np.int64)
    thin = np.zeros(M.shape[1], dtype=bool)
    for it in range(int(iterations)):
        histogram = PurityHistogram(M.shape[1], M.shape[0])
        counts = np.zeros((3, M.shape[1]))
        for data, valid, first, n_core in strips(halo):
            if feedback is not None:
                feedback.check_canceled()
            A = _fcls_grid(data, valid, M)
            core = slice(first, first + n_core)
            abundances, local, *strip_counts = _ownership_counts(A, valid, window, core)
            counts += strip_counts
            histogram.update(np.asarray(_valid_pixels(data[:, core], valid[core]), dtype=np.float64),
                             purity_levels(abundances, local, thin))
        M_new, used = histogram.means(fraction, M)
        M_new[:, :n_fixed] = M[:, :n_fixed]
        change = np.linalg.norm(M_new - M) / np.linalg.norm(M)
        M = M_new
        thin, was_thin = thin_materials(*counts), thin
        if feedback is not None:
            feedback.set_progress(100.0 * (it + 1) / int(iterations))
        if change < _REFINE_TOL and np.array_equal(thin, was_thin):
            break
    return M, used


# --- Partial supervision (issue 22): references given for some materials (analyst regions), the rest extracted ---

def vca_starts_fixed(Y, fixed, P, seed=0, restarts=ENDMEMBERS["RESTARTS"]):
    """Starts (L, P) for :func:`refine_purest` with ``n_fixed = K``: the K given references ``fixed`` (L, K) first,
    then P - K pixels of Y (L, N) found by VCA's orthogonal-projection sequence started from the fixed ones.

    As in :func:`core.extraction.vca.vca` (projective projection): ``x = U^T Y`` on the top-P eigenvectors of ``Y Y^T /
    N``, ``y_n = x_n / (x_n^T u)`` with ``u`` the mean of x; the fixed spectra are projected the same way into the
    first K columns of ``A`` (P, P). For i = K..P-1: ``f = (I - A A^+) w`` (w ~ N(0, I), seeded), the pixel
    maximising ``|f^T y_n|`` joins ``A``. Each direction is orthogonal to the fixed references' projections, so the
    free columns are the extreme pixels of what the fixed materials do not explain. Restarts use the seeds
    ``seed * restarts + r`` and distinct pixel sets are kept.
    """
    from .vca import _moments, _project, _top_eigenvectors

    Y = _check(Y, P)
    fixed = np.asarray(fixed, dtype=np.float64)
    K = fixed.shape[1]
    if K >= P:
        raise DeepGUError("%d references are given: nothing left to extract for %d endmembers" % (K, P))
    _, corr = _moments(Y)
    _, U = _top_eigenvectors(corr, P)
    x, fx = _project(Y, U, np.zeros(Y.shape[0])), U.T @ fixed
    u = x.mean(axis=1)
    denominator = u @ x
    denominator[denominator == 0] = np.inf          # all-zero pixels: never picked
    y, fy = x / denominator, fx / (u @ fx)
    starts, seen = [], set()
    for r in range(int(restarts)):
        rng = np.random.default_rng(int(seed) * int(restarts) + r)
        A = np.zeros((P, P))
        A[:, :K] = fy
        picked = []
        for i in range(K, P):
            w = rng.standard_normal(P)
            f = w - A @ (np.linalg.pinv(A) @ w)
            picked.append(int(np.argmax(np.abs(f @ y))))
            A[:, i] = y[:, picked[-1]]
        key = tuple(sorted(picked))
        if key not in seen:
            seen.add(key)
            starts.append(np.hstack([fixed, Y[:, picked].astype(np.float64)]))
    return starts
