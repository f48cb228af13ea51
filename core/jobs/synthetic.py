"""Write a synthetic scene with known truth as georeferenced rasters and a library CSV."""

from ..library import write_spectra
from ..raster_io import OutputSet, endmember_band_names, georeference
from ..synthetic import make_scene


def run(kind, rows, cols, output, output_abundances=None, output_library=None, output_endmembers=None,
        snr_db=30.0, seed=0, n_materials=3, epsg=32633, feedback=None):
    """Generate :func:`core.synthetic.make_scene` and write it.

    - ``output``: the image, ``(L, rows, cols)`` with band wavelengths (nm);
    - ``output_abundances``: true abundances, one band per material named after it;
    - ``output_library``: the variability-free reference spectra ``(L, P)`` as CSV;
    - ``output_endmembers``: true per-pixel endmembers, ``P x L`` bands (material-major).
    Rasters are in ``EPSG:epsg`` with 30 m pixels. Returns the scene.
    """
    scene = make_scene(kind, rows, cols, snr_db=snr_db, seed=seed, n_materials=n_materials)
    like = georeference(rows, cols, crs_epsg=epsg)
    L, P = scene.reference.shape
    with OutputSet() as outputs:
        outputs.add("image", output, like, L, band_names=["%g nm" % w for w in scene.wavelengths],
                    wavelengths=scene.wavelengths)
        outputs.add("abundances", output_abundances, like, P, band_names=scene.names)
        outputs.add("endmembers", output_endmembers, like, P * L, band_names=endmember_band_names(
            scene.names, scene.wavelengths))
        outputs.write("image", scene.image, 0)
        outputs.write("abundances", scene.abundances, 0)
        outputs.write("endmembers", scene.endmembers.transpose(1, 0, 2, 3).reshape(P * L, rows, cols), 0)
        if output_library:
            write_spectra(output_library, scene.reference, scene.names, scene.wavelengths)
    if feedback is not None:
        feedback.set_progress(100)
    return scene
