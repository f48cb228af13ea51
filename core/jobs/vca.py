"""Reference endmembers of a raster by VCA, on a seeded random sample of its pixels."""

from ..defaults import MEMORY_MB, VCA
from ..errors import DeepGUError
from ..feedback import SubFeedback, ensure
import numpy as np

from ..files.library import write_spectra
from ..checks.paths import check_paths
from ..files.raster_io import open_raster
from ..files.sampling import sample_pixels
from ..validation import MAX_MATERIALS, MAX_MEMORY_MB, ContrastCheck, finite, integer
from ..extraction.vca import vca


def check_endmembers(n_endmembers, info):
    """ENDMEMBERS as an int in [2, MAX_MATERIALS] and at most the raster's band count, or a clear error."""
    n_endmembers = integer("ENDMEMBERS", n_endmembers, 2)
    if n_endmembers > info.n_bands:
        raise DeepGUError("ENDMEMBERS: cannot find %d endmembers in a raster with only %d band(s)"
                          % (n_endmembers, info.n_bands))
    return integer("ENDMEMBERS", n_endmembers, 2, MAX_MATERIALS)


def run(input_path, n_endmembers, output_csv, seed=0, sample_size=VCA["SAMPLE_SIZE"], memory_mb=MEMORY_MB,
        feedback=None):
    """Run VCA on ``input_path`` and write the endmembers (with their pixels) to ``output_csv``.

    Returns ``(endmembers (bands, P), rows (P,), cols (P,), info)``. A sample without ``n_endmembers``
    distinct pixels, or a VCA run that picks the same spectrum twice, is refused.
    """
    feedback = ensure(feedback)
    check_paths({"INPUT": input_path}, {"OUTPUT": output_csv})
    seed = integer("SEED", seed)
    sample_size = integer("SAMPLE_SIZE", sample_size, 1)
    memory_mb = finite("MEMORY_MB", memory_mb, 0, MAX_MEMORY_MB, low_open=True)
    info = open_raster(input_path, "INPUT")
    n_endmembers = check_endmembers(n_endmembers, info)
    Y, flat = sample_pixels(info, sample_size, seed=seed, memory_mb=memory_mb,
                            feedback=SubFeedback(feedback, 0, 80))
    if Y.shape[1] < n_endmembers:
        raise DeepGUError("only %d valid pixels: fewer than the %d endmembers asked for" % (Y.shape[1], n_endmembers))
    contrast = ContrastCheck(info.n_bands, n_endmembers)
    contrast.update(Y)
    contrast.check(info.label)
    feedback.info("VCA on %d pixels x %d bands, P = %d" % (Y.shape[1], Y.shape[0], n_endmembers))
    result = vca(Y, n_endmembers, seed=seed)
    distinct = np.unique(result.endmembers, axis=1).shape[1]
    if distinct < n_endmembers:
        raise DeepGUError("ENDMEMBERS: VCA found only %d distinct endmember(s) of the %d asked for in INPUT: "
                          "too little spectral contrast; ask for fewer" % (distinct, n_endmembers))
    rows, cols = divmod(flat[result.indices], info.cols)
    feedback.info("SNR estimate %.1f dB (%s projection)"
                  % (result.snr_db, "projective" if result.projective else "PCA"))
    names = ["EM%d" % (i + 1) for i in range(n_endmembers)]
    write_spectra(output_csv, result.endmembers, names, info.wavelengths, rows, cols)
    feedback.set_progress(100)
    return result.endmembers, rows, cols, info
