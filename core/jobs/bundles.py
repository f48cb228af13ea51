"""Bundles of purest pixels per reference material, streamed over a raster."""

import numpy as np

from ..bundles import BundleSelector, auto_bundles
from ..errors import DeepGUError
from ..feedback import SubFeedback, ensure
from ..library import check_bands, read_spectra, write_spectra
from ..raster_io import block_rows, iter_blocks, open_raster, read_block, valid_pixels
from ..sampling import sample_pixels
from .vca import DEFAULT_SAMPLE

METHODS = ("nearest", "angle", "auto")


def run(input_path, endmembers_csv, output_csv, method="nearest", n_pixels=100, max_angle_deg=5.0,
        min_pixels=10, seed=0, sample_size=DEFAULT_SAMPLE, memory_mb=256, feedback=None):
    """Select each material's bundle (see :mod:`core.bundles`) and write it as a bundle CSV.

    ``nearest`` and ``angle`` stream the whole raster keeping a running selection;
    ``auto`` runs VCA on random subsets of a seeded sample of ``sample_size`` pixels.
    Returns ``(materials, rows, cols, info)``: the material, row and col of
    every bundle pixel, and the raster's description.
    """
    feedback = ensure(feedback)
    if method not in METHODS:
        raise DeepGUError("unknown bundle method %r (choose one of %s)" % (method, ", ".join(METHODS)))
    info = open_raster(input_path)
    library = read_spectra(endmembers_csv)
    check_bands(library, info.n_bands, info.wavelengths, "the endmember file")
    M = library.as_endmembers()
    names = library.materials
    if method == "auto":
        Y, flat = sample_pixels(info, sample_size, seed=seed, memory_mb=memory_mb,
                                feedback=SubFeedback(feedback, 0, 70))
        bundles = auto_bundles(Y, M, max_angle_deg=max_angle_deg, min_pixels=min_pixels, names=names, seed=seed)
        bundles = [(spectra, flat[indices]) for spectra, indices in bundles]
    else:
        selector = BundleSelector(M, method, n_pixels, max_angle_deg if method == "angle" else None,
                                  min_pixels, names)
        any_valid = False
        for row0, n_rows in iter_blocks(info, block_rows(info, memory_mb)):
            feedback.check_canceled()
            data, valid = read_block(info, row0, n_rows)
            any_valid |= bool(valid.any())
            flat = row0 * info.cols + np.flatnonzero(valid.ravel())
            selector.update(valid_pixels(data, valid), flat)
            feedback.set_progress(100.0 * (row0 + n_rows) / info.rows)
        if not any_valid:
            raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % input_path)
        bundles = selector.result()
    spectra = np.concatenate([s for s, _ in bundles], axis=1)
    flat = np.concatenate([i for _, i in bundles])
    materials = [name for name, (s, _) in zip(names, bundles) for _ in range(s.shape[1])]
    rows, cols = divmod(flat, info.cols)
    write_spectra(output_csv, spectra, materials, info.wavelengths, rows, cols)
    for name, (s, _) in zip(names, bundles):
        feedback.info("%s: %d bundle pixels" % (name, s.shape[1]))
    feedback.set_progress(100)
    return materials, rows, cols, info
