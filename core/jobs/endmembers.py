"""Reference endmembers of a raster by a chosen method (:mod:`core.extraction.endmembers`), file to file."""

from ..defaults import ENDMEMBER_METHODS as METHODS, ENDMEMBERS, REGIONS
from ..extraction.endmembers import best_start, nfindr, refine_purest, vca_best, vca_starts, vca_starts_fixed
from ..errors import DeepGUError
from ..feedback import SubFeedback, ensure
from ..files.library import write_spectra
from ..checks.paths import check_paths
from ..files.raster_io import block_rows, open_raster, read_block
from ..extraction.regions import region_references
from ..files.sampling import sample_pixels
from ..validation import MAX_MEMORY_MB, ContrastCheck, finite, integer
from ..extraction.vca import vca
from .vca import check_endmembers

#: side of the central window on which the VCA restarts of ``refined`` are compared (pixels).
SCREEN_WINDOW = 256


def raster_strips(info, memory_mb):
    """The strips source of :func:`core.extraction.endmembers.refine_purest` for a raster file, read in row strips."""
    def strips(halo):
        step = block_rows(info, memory_mb, halo=halo)
        for row0 in range(0, info.rows, step):
            n_core = min(step, info.rows - row0)
            top = max(0, row0 - halo)
            bottom = min(info.rows, row0 + n_core + halo)
            data, valid = read_block(info, top, bottom - top)
            yield data, valid, row0 - top, n_core
    return strips


def _refined(info, Y, P, seed, restarts, fraction, window, iterations, memory_mb, feedback, fixed=None):
    """The ``refined`` method: VCA restarts on the sample, screened on the central window, then refined.

    ``fixed`` (L, K): given references (REGIONS), the first K columns, held fixed (:func:`vca_starts_fixed`).
    """
    n_fixed = 0 if fixed is None else fixed.shape[1]
    starts = (vca_starts(Y, P, seed=seed, restarts=restarts) if fixed is None
              else vca_starts_fixed(Y, fixed, P, seed=seed, restarts=restarts))
    rows, cols = min(SCREEN_WINDOW, info.rows), min(SCREEN_WINDOW, info.cols)
    data, valid = read_block(info, (info.rows - rows) // 2, rows, (info.cols - cols) // 2, cols)
    best, errors, eligible = best_start(data, starts, valid, window=window, n_fixed=n_fixed)
    feedback.info("%d distinct VCA starts screened on the central %d x %d pixels: refined FCLS error %.4g (chosen), "
                  "%.4g to %.4g (all)" % (len(starts), rows, cols, errors[best], errors.min(), errors.max()))
    if not eligible.all():
        feedback.info("%d of them set aside: one of their materials owns (almost) no pixels after refining"
                      % (~eligible).sum())
    M, used = refine_purest(raster_strips(info, memory_mb), starts[best], fraction=fraction, window=window,
                            iterations=iterations, feedback=feedback, n_fixed=n_fixed)
    feedback.info("refined: the endmembers are the means of %s spatially purest pixels"
                  % "/".join(["given"] * n_fixed + [str(n) for n in used[n_fixed:]]))
    return M


def run(input_path, n_endmembers, output_csv, method=ENDMEMBERS["METHOD"], seed=0,
        sample_size=ENDMEMBERS["SAMPLE_SIZE"], restarts=ENDMEMBERS["RESTARTS"], fraction=ENDMEMBERS["FRACTION"],
        window=ENDMEMBERS["WINDOW"], iterations=ENDMEMBERS["ITERATIONS"], memory_mb=ENDMEMBERS["MEMORY_MB"],
        feedback=None, regions=None):
    """Extract ``n_endmembers`` reference spectra of ``input_path`` and write them to ``output_csv``.

    ``vca``, ``vca-best`` and ``nfindr`` look at a seeded sample of ``sample_size`` valid pixels;
    ``refined`` starts from ``vca-best`` and then streams the whole raster ``iterations`` times
    (FCLS and local purity per strip). Returns ``(endmembers (bands, P), rows, cols, info)`` where
    rows/cols locate the chosen pixel of each endmember, or are None for ``refined`` (its
    endmembers are means of many pixels).

    ``regions``: :class:`core.extraction.regions.Region` s (INPUT's CRS) naming K materials: those come first, their
    references from the regions (:func:`core.extraction.regions.region_references`); the other ``n_endmembers - K`` are
    extracted around them (``refined`` only). Rows/cols are then None.
    """
    feedback = ensure(feedback)
    if method not in METHODS:
        raise DeepGUError("METHOD: unknown endmember method %r (choose one of %s)" % (method, ", ".join(METHODS)))
    check_paths({"INPUT": input_path}, {"OUTPUT": output_csv})
    seed = integer("SEED", seed)
    sample_size = integer("SAMPLE_SIZE", sample_size, 1)
    restarts = integer("RESTARTS", restarts, 1)
    iterations = integer("ITERATIONS", iterations, 1)
    window = integer("WINDOW", window, 1)
    fraction = finite("FRACTION", fraction, 0, 1, low_open=True)
    memory_mb = finite("MEMORY_MB", memory_mb, 0, MAX_MEMORY_MB, low_open=True)
    info = open_raster(input_path, "INPUT")
    n_endmembers = check_endmembers(n_endmembers, info)
    if regions is not None:
        named, fixed, _ = region_references(info, regions, REGIONS["MIN_PIXELS"], memory_mb)
        _check_named(named, n_endmembers, method)
        feedback.info("REGIONS: references of %s from their regions (trimmed means)" % ", ".join(named))
        if len(named) == n_endmembers:
            write_spectra(output_csv, fixed, named, info.wavelengths)
            feedback.set_progress(100)
            return fixed, None, None, info
    sampled = 40 if method == "refined" else 80
    Y, flat = sample_pixels(info, sample_size, seed=seed, memory_mb=memory_mb,
                            feedback=SubFeedback(feedback, 0, sampled))
    if Y.shape[1] < n_endmembers:
        raise DeepGUError("only %d valid pixels: fewer than the %d endmembers asked for" % (Y.shape[1], n_endmembers))
    contrast = ContrastCheck(info.n_bands, n_endmembers)
    contrast.update(Y)
    contrast.check(info.label)
    feedback.info("%s on %d pixels x %d bands, P = %d" % (method, Y.shape[1], Y.shape[0], n_endmembers))
    if method == "refined":
        M = _refined(info, Y, n_endmembers, seed, restarts, fraction, window, iterations, memory_mb,
                     SubFeedback(feedback, sampled, 100), None if regions is None else fixed)
        names = ["EM%d" % (i + 1) for i in range(n_endmembers)] if regions is None else _with_free_names(
            named, n_endmembers)
        write_spectra(output_csv, M, names, info.wavelengths)
        feedback.set_progress(100)
        return M, None, None, info
    if method == "vca":
        indices = vca(Y, n_endmembers, seed=seed).indices
    elif method == "nfindr":
        indices = nfindr(Y, n_endmembers, seed=seed)[1]
    else:
        _, indices, errors = vca_best(Y, n_endmembers, seed=seed, restarts=restarts)
        feedback.info("VCA restarts: FCLS error %.4g (best) to %.4g (worst) over %d runs"
                      % (errors.min(), errors.max(), len(errors)))
    M = Y[:, indices].astype("float64")
    rows, cols = divmod(flat[indices], info.cols)
    names = ["EM%d" % (i + 1) for i in range(n_endmembers)]
    write_spectra(output_csv, M, names, info.wavelengths, rows, cols)
    feedback.set_progress(100)
    return M, rows, cols, info


# --- Partial supervision (issue 22): REGIONS name some materials, the rest are extracted around them ---

def _check_named(named, n_endmembers, method):
    """Refuse more named materials than endmembers, and a method other than ``refined`` when some are left."""
    if len(named) > n_endmembers:
        raise DeepGUError("ENDMEMBERS (MATERIALS in the workflow) is %d but REGIONS name %d materials (%s): ask for "
                          "at least %d" % (n_endmembers, len(named), ", ".join(named), len(named)))
    if len(named) < n_endmembers and method != "refined":
        raise DeepGUError("METHOD: only 'refined' extracts the materials REGIONS do not name around the named ones "
                          "(got '%s')" % method)


def _with_free_names(named, n_endmembers):
    """``named`` followed by EM1, EM2, ... (skipping names already taken) up to ``n_endmembers`` names."""
    free = (name for name in ("EM%d" % i for i in range(1, 2 * n_endmembers + len(named) + 1)) if name not in named)
    return list(named) + [next(free) for _ in range(n_endmembers - len(named))]
