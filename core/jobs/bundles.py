"""Bundles of purest pixels per reference material, streamed over a raster."""

import numpy as np

from ..extraction.bundles import METHODS, BundleSelector, auto_bundles, local_purity
from ..defaults import BUNDLES, SAMPLE_SIZE
from ..errors import DeepGUError
from ..feedback import SubFeedback, ensure
from ..checks.grid import check_same_grid
from ..files.library import check_bands, read_spectra, write_spectra
from ..checks.magnitude import check_library, check_magnitudes
from ..checks.paths import check_paths
from ..files.raster_io import block_rows, iter_blocks, open_raster, read_block, valid_pixels
from ..files.sampling import sample_pixels
from ..validation import MAX_MEMORY_MB, as_parameter, finite, integer


def _open_abundances(path, info, n_materials):
    """Describe the abundance raster of the ``spatial`` method, checked against the image."""
    if not path:
        raise DeepGUError("the 'spatial' bundle method needs an abundance raster (e.g. the FCLS output)")
    abundances = open_raster(path, "ABUNDANCES")
    check_same_grid(abundances, info)
    if abundances.n_bands != n_materials:
        raise DeepGUError("ABUNDANCES %s has %d bands but the endmember file has %d materials"
                          % (path, abundances.n_bands, n_materials))
    return abundances


def _block_purity(abundances, row0, n_rows, window):
    """Local purity (P, n_rows, cols) of the rows ``row0 .. row0 + n_rows``, read with a halo of window // 2 rows."""
    halo = window // 2
    top = max(0, row0 - halo)
    bottom = min(abundances.rows, row0 + n_rows + halo)
    A, valid = read_block(abundances, top, bottom - top)
    return local_purity(A, valid, window)[:, row0 - top: row0 - top + n_rows]


def run(input_path, endmembers_csv, output_csv, method=BUNDLES["METHOD"], n_pixels=BUNDLES["N_PIXELS"],
        max_angle_deg=BUNDLES["ANGLE"], min_pixels=BUNDLES["MIN_PIXELS"], seed=0, sample_size=SAMPLE_SIZE,
        memory_mb=BUNDLES["MEMORY_MB"], abundances_path=None, window=BUNDLES["WINDOW"], feedback=None):
    """Select each material's bundle (see :mod:`core.extraction.bundles`) and write it as a bundle CSV.

    ``nearest``, ``angle`` and ``spatial`` stream the whole raster keeping a running
    selection (``spatial`` also reads ``abundances_path``, (P bands, same grid), in
    the same strips plus a halo of ``window // 2`` rows); ``auto`` runs VCA on random
    subsets of a seeded sample of ``sample_size`` pixels.
    Returns ``(materials, rows, cols, info)``: the material, row and col of
    every bundle pixel, and the raster's description.
    """
    feedback = ensure(feedback)
    if method not in METHODS:
        raise DeepGUError("unknown bundle method %r (choose one of %s)" % (method, ", ".join(METHODS)))
    check_paths({"INPUT": input_path, "ENDMEMBERS": endmembers_csv, "ABUNDANCES": abundances_path},
                {"OUTPUT": output_csv})
    n_pixels = integer("N_PIXELS", n_pixels, 1)
    max_angle_deg = finite("ANGLE", max_angle_deg, 0, 90, low_open=True)
    min_pixels = integer("MIN_PIXELS", min_pixels, 1)
    seed = integer("SEED", seed)
    sample_size = integer("SAMPLE_SIZE", sample_size, 1)
    memory_mb = finite("MEMORY_MB", memory_mb, 0, MAX_MEMORY_MB, low_open=True)
    window = integer("WINDOW", window, 1, 99)
    info = open_raster(input_path, "INPUT")
    with as_parameter("ENDMEMBERS"):
        library = read_spectra(endmembers_csv)
        check_bands(library, info.n_bands, info.wavelengths, "the endmember file")
        M = library.as_endmembers()
    check_library(M, "ENDMEMBERS", library.materials)
    check_magnitudes(info, M, "ENDMEMBERS")
    names = library.materials
    abundances = _open_abundances(abundances_path, info, M.shape[1]) if method == "spatial" else None
    if method == "auto":
        Y, flat = sample_pixels(info, sample_size, seed=seed, memory_mb=memory_mb,
                                feedback=SubFeedback(feedback, 0, 70))
        bundles = auto_bundles(Y, M, max_angle_deg=max_angle_deg, min_pixels=min_pixels, names=names, seed=seed)
        bundles = [(spectra, flat[indices]) for spectra, indices in bundles]
    else:
        selector = BundleSelector(M, method, n_pixels, max_angle_deg if method == "angle" else None,
                                  min_pixels, names, seed)
        any_valid = False
        for row0, n_rows in iter_blocks(info, block_rows(info, memory_mb)):
            feedback.check_canceled()
            data, valid = read_block(info, row0, n_rows)
            any_valid |= bool(valid.any())
            flat = row0 * info.cols + np.flatnonzero(valid.ravel())
            purity = (None if abundances is None
                      else valid_pixels(_block_purity(abundances, row0, n_rows, window), valid))
            selector.update(valid_pixels(data, valid), flat, purity)
            feedback.set_progress(100.0 * (row0 + n_rows) / info.rows)
        if not any_valid:
            raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % info.label)
        bundles = selector.result()
        for p in selector.fallback_used:
            feedback.info("WARNING: %s is the purest material nowhere: its bundle holds its purest pixels among "
                          "all pixels, shared with other materials (check the number of materials and the "
                          "references)" % names[p])
    spectra = np.concatenate([s for s, _ in bundles], axis=1)
    flat = np.concatenate([i for _, i in bundles])
    materials = [name for name, (s, _) in zip(names, bundles) for _ in range(s.shape[1])]
    rows, cols = divmod(flat, info.cols)
    write_spectra(output_csv, spectra, materials, info.wavelengths, rows, cols)
    for name, (s, _) in zip(names, bundles):
        feedback.info("%s: %d bundle pixels" % (name, s.shape[1]))
    feedback.set_progress(100)
    return materials, rows, cols, info
