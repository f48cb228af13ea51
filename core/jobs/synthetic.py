"""Write a synthetic scene with known truth as georeferenced rasters and a library CSV."""

from ..files.atomic import together
from ..defaults import SYNTHETIC
from ..errors import DeepGUError
from ..files.library import write_spectra
from ..checks.paths import check_paths
from ..files.raster_io import OutputSet, endmember_band_names, georeference
from ..evaluation.synthetic import make_scene
from ..validation import MAX_SYNTHETIC_PIXELS, MAX_SYNTHETIC_SIDE, finite, integer


def run(kind, rows, cols, output, output_abundances=None, output_library=None, output_endmembers=None,
        snr_db=SYNTHETIC["SNR"], seed=0, n_materials=SYNTHETIC["MATERIALS"], epsg=SYNTHETIC["EPSG"], feedback=None):
    """Generate :func:`core.evaluation.synthetic.make_scene` and write it.

    - ``output``: the image, ``(L, rows, cols)`` with band wavelengths (nm);
    - ``output_abundances``: true abundances, one band per material named after it;
    - ``output_library``: the variability-free reference spectra ``(L, P)`` as CSV;
    - ``output_endmembers``: true per-pixel endmembers, ``P x L`` bands (material-major).
    Rasters are in ``EPSG:epsg`` with 30 m pixels. All outputs appear together or none. Returns the scene.
    """
    check_paths({}, {"OUTPUT": output, "OUTPUT_ABUNDANCES": output_abundances, "OUTPUT_LIBRARY": output_library,
                     "OUTPUT_ENDMEMBERS": output_endmembers})
    rows = integer("ROWS", rows, 2, MAX_SYNTHETIC_SIDE)
    cols = integer("COLS", cols, 2, MAX_SYNTHETIC_SIDE)
    if rows * cols > MAX_SYNTHETIC_PIXELS:
        raise DeepGUError("ROWS x COLS = %d pixels; a synthetic scene has at most %d (it is made in memory)"
                          % (rows * cols, MAX_SYNTHETIC_PIXELS))
    snr_db = finite("SNR", snr_db, -100, 200)
    seed = integer("SEED", seed)
    n_materials = integer("MATERIALS", n_materials, 1)
    epsg = integer("EPSG", epsg, 1)
    like = georeference(rows, cols, crs_epsg=epsg)
    scene = make_scene(kind, rows, cols, snr_db=snr_db, seed=seed, n_materials=n_materials)
    L, P = scene.reference.shape
    with together(), OutputSet({"image": "OUTPUT", "abundances": "OUTPUT_ABUNDANCES",
                                "endmembers": "OUTPUT_ENDMEMBERS"}) as outputs:
        outputs.add("image", output, like, L, band_names=["%g nm" % w for w in scene.wavelengths],
                    wavelengths=scene.wavelengths)
        outputs.add("abundances", output_abundances, like, P, band_names=scene.names)
        outputs.add("endmembers", output_endmembers, like, P * L, band_names=endmember_band_names(
            scene.names, scene.wavelengths))
        outputs.write("image", scene.image, 0)
        outputs.write("abundances", scene.abundances, 0)
        outputs.write("endmembers", scene.endmembers.transpose(1, 0, 2, 3).reshape(P * L, rows, cols), 0)
        if output_library:
            write_spectra(output_library, scene.reference, scene.names, scene.wavelengths, what="OUTPUT_LIBRARY")
    if feedback is not None:
        feedback.set_progress(100)
    return scene
