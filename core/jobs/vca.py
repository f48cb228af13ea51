"""Reference endmembers of a raster by VCA, on a seeded random sample of its pixels."""

from ..errors import DeepGUError
from ..feedback import SubFeedback, ensure
from ..library import write_spectra
from ..raster_io import open_raster
from ..sampling import sample_pixels
from ..vca import vca

#: pixels VCA looks at by default; scenes with fewer pixels are used whole.
DEFAULT_SAMPLE = 1_000_000


def run(input_path, n_endmembers, output_csv, seed=0, sample_size=DEFAULT_SAMPLE, memory_mb=256, feedback=None):
    """Run VCA on ``input_path`` and write the endmembers (with their pixels) to ``output_csv``.

    Returns ``(endmembers (bands, P), rows (P,), cols (P,), info)``.
    """
    feedback = ensure(feedback)
    info = open_raster(input_path)
    if n_endmembers < 2:
        raise DeepGUError("the number of endmembers must be at least 2 (got %d)" % n_endmembers)
    if n_endmembers > info.n_bands:
        raise DeepGUError("cannot find %d endmembers in a raster with only %d band(s)"
                          % (n_endmembers, info.n_bands))
    Y, flat = sample_pixels(info, sample_size, seed=seed, memory_mb=memory_mb,
                            feedback=SubFeedback(feedback, 0, 80))
    if Y.shape[1] < n_endmembers:
        raise DeepGUError("only %d valid pixels: fewer than the %d endmembers asked for" % (Y.shape[1], n_endmembers))
    feedback.info("VCA on %d pixels x %d bands, P = %d" % (Y.shape[1], Y.shape[0], n_endmembers))
    result = vca(Y, n_endmembers, seed=seed)
    rows, cols = divmod(flat[result.indices], info.cols)
    feedback.info("SNR estimate %.1f dB (%s projection)"
                  % (result.snr_db, "projective" if result.projective else "PCA"))
    names = ["EM%d" % (i + 1) for i in range(n_endmembers)]
    write_spectra(output_csv, result.endmembers, names, info.wavelengths, rows, cols)
    feedback.set_progress(100)
    return result.endmembers, rows, cols, info
