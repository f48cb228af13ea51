"""Integration: output formats through qgis_process.bin (ENVI rasters and spectral libraries, refusals)."""

import os

import numpy as np
from osgeo import gdal

from core.files.library import read_spectra
from core.files.raster_io import open_raster, read_all
from helpers import run_fails, run_json


def test_envi_scene_library_and_abundances(qgis_process, tmp_path):
    out = {name: str(tmp_path / name) for name in ("scene.hdr", "truth.tif", "lib.sli", "fcls.hdr", "fcls2.tif")}
    results = run_json(qgis_process, "deepgu:synthetic", ROWS=12, COLS=10, SEED=2, OUTPUT=out["scene.hdr"],
                       OUTPUT_ABUNDANCES=out["truth.tif"], OUTPUT_LIBRARY=out["lib.sli"])
    scene = str(tmp_path / "scene.dat")
    assert results["OUTPUT"] == scene                  # reported: the file QGIS and GDAL open
    ds = gdal.Open(scene)
    assert ds.GetDriver().ShortName == "ENVI" and ds.RasterCount == 198
    with open(out["scene.hdr"]) as f:
        header = f.read()
    wavelengths = [float(v) for v in header.split("wavelength = {")[1].split("}")[0].split(",")]
    library = read_spectra(out["lib.sli"])
    np.testing.assert_allclose(wavelengths, library.wavelengths, atol=1e-3)
    assert "wavelength units = Nanometers" in header
    np.testing.assert_allclose(open_raster(scene).wavelengths, library.wavelengths, atol=1e-3)

    results = run_json(qgis_process, "deepgu:fcls", INPUT=scene, ENDMEMBERS=out["lib.sli"], OUTPUT=out["fcls.hdr"])
    assert results["OUTPUT"] == str(tmp_path / "fcls.dat") and os.path.exists(str(tmp_path / "fcls.qml"))
    with open(out["fcls.hdr"]) as f:
        assert "band names = {\n%s}" % ",\n".join(library.materials) in f.read()
    run_json(qgis_process, "deepgu:fcls", INPUT=out["scene.hdr"].replace(".hdr", ".dat"), ENDMEMBERS=out["lib.sli"],
             OUTPUT=out["fcls2.tif"])     # not fcls.tif: fcls.qml is fcls.dat's style (docs/reliability.md)
    envi, valid, info = read_all(results["OUTPUT"])
    tiff, _, _ = read_all(out["fcls2.tif"])
    assert valid.all() and info.band_names == library.materials
    np.testing.assert_array_equal(envi, tiff)          # same numbers whatever the format


def test_unsupported_raster_extension_names_the_parameter(qgis_process, tmp_path):
    message = run_fails(qgis_process, "deepgu:synthetic", ROWS=5, COLS=5, OUTPUT=str(tmp_path / "s.tif"),
                        OUTPUT_ABUNDANCES=str(tmp_path / "t.jpg"))
    assert "OUTPUT_ABUNDANCES: cannot write '.jpg' files" in message and "Traceback" not in message
    assert os.listdir(str(tmp_path)) == []             # refused before anything was written
