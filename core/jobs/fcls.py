"""Fully constrained least-squares abundances of a raster, block by block."""

import numpy as np

from ..errors import DeepGUError
from ..feedback import ensure
from ..fcls import fcls, reconstruction_rmse
from ..library import check_bands, read_spectra
from ..paths import check_paths
from ..raster_io import OutputSet, block_rows, iter_blocks, open_raster, read_block, scatter, valid_pixels
from ..validation import MAX_MEMORY_MB, ContrastCheck, as_parameter, finite


def run(input_path, endmembers_csv, output, output_rmse=None, memory_mb=256, feedback=None):
    """Write FCLS abundances (one named band per material) and optionally the per-pixel RMSE.

    Returns the number of valid pixels unmixed. The image must have as many distinct valid pixels as there are
    materials (:class:`.validation.ContrastCheck`).
    """
    feedback = ensure(feedback)
    check_paths({"INPUT": input_path, "ENDMEMBERS": endmembers_csv}, {"OUTPUT": output, "OUTPUT_RMSE": output_rmse})
    memory_mb = finite("MEMORY_MB", memory_mb, 0, MAX_MEMORY_MB, low_open=True)
    info = open_raster(input_path, "INPUT")
    with as_parameter("ENDMEMBERS"):
        library = read_spectra(endmembers_csv)
        check_bands(library, info.n_bands, info.wavelengths, "the endmember file")
        M = library.as_endmembers()
    if M.shape[1] > info.n_bands:
        raise DeepGUError("%d endmembers but only %d bands: the problem is underdetermined"
                          % (M.shape[1], info.n_bands))
    n_valid = 0
    contrast = ContrastCheck(info.n_bands, M.shape[1])
    with OutputSet({"abundances": "OUTPUT", "rmse": "OUTPUT_RMSE"}) as outputs:
        outputs.add("abundances", output, info, M.shape[1], band_names=library.materials)
        outputs.add("rmse", output_rmse, info, 1, band_names=["rmse"])
        for row0, n_rows in iter_blocks(info, block_rows(info, memory_mb)):
            feedback.check_canceled()
            data, valid = read_block(info, row0, n_rows)
            Y = valid_pixels(data, valid)
            contrast.update(Y)
            A = fcls(Y, M) if Y.shape[1] else np.zeros((M.shape[1], 0))
            n_valid += Y.shape[1]
            outputs.write("abundances", scatter(A, valid), row0)
            if "rmse" in outputs:
                outputs.write("rmse", scatter(reconstruction_rmse(Y, M, A)[None], valid), row0)
            feedback.set_progress(100.0 * (row0 + n_rows) / info.rows)
        if n_valid == 0:
            raise DeepGUError("INPUT %s has no valid pixels (all nodata or non-finite)" % input_path)
        contrast.check(info.label)
    feedback.info("FCLS: %d valid pixels of %d" % (n_valid, info.n_pixels))
    return n_valid
