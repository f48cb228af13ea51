"""Integration: deepgu:elmm, deepgu:glmm and deepgu:plmm through qgis_process.bin (one small run each)."""

import numpy as np
import pytest

from core.files.library import write_spectra
from core.files.raster_io import georeference, open_raster, read_all, write_raster
from helpers import run_fails, run_json
from test_variability_models import library, own_scene

SIDE = 16


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 16 x 16 scene of the ELMM model with a nodata pixel, and its references."""
    folder = tmp_path_factory.mktemp("variability-qgis")
    Y, _, M0 = own_scene("elmm", side=SIDE)
    Y = Y.astype(np.float32)
    Y[:, 3, 4] = np.nan
    wavelengths, _, names = library()
    paths = {"image": str(folder / "scene.tif"), "library": str(folder / "library.csv")}
    write_raster(paths["image"], Y, georeference(SIDE, SIDE), wavelengths=wavelengths)
    write_spectra(paths["library"], M0, names, wavelengths)
    return paths


@pytest.mark.parametrize("method, bands", [("elmm", 3), ("glmm", 60), ("plmm", 3)])
def test_algorithm_writes_georeferenced_outputs(qgis_one_thread, scene, tmp_path, method, bands):
    out = {key: str(tmp_path / ("%s.tif" % key)) for key in ("a", "m", "v", "rmse")}
    run_json(qgis_one_thread, "deepgu:" + method, INPUT=scene["image"], ENDMEMBERS=scene["library"], MAX_ITER=2,
             OUTPUT=out["a"], OUTPUT_ENDMEMBERS=out["m"], OUTPUT_VARIABILITY=out["v"], OUTPUT_RMSE=out["rmse"])
    source = open_raster(scene["image"])
    for key, n_bands in (("a", 3), ("m", 60), ("v", bands), ("rmse", 1)):
        data, valid, info = read_all(out[key])
        assert info.n_bands == n_bands and info.crs_wkt == source.crs_wkt and info.transform == source.transform
        assert not valid[3, 4] and valid.sum() == SIDE * SIDE - 1
    A, valid, info = read_all(out["a"])
    assert info.band_names == library()[2]
    assert np.allclose(A[:, valid].sum(0), 1.0, atol=1e-5) and A[:, valid].min() >= -1e-6


def test_a_negative_weight_is_refused(qgis_one_thread, scene, tmp_path):
    out = tmp_path / "a.tif"
    message = run_fails(qgis_one_thread, "deepgu:elmm", INPUT=scene["image"], ENDMEMBERS=scene["library"],
                        LAMBDA_PSI=-1, OUTPUT=str(out))
    assert "LAMBDA_PSI" in message and not out.exists()
