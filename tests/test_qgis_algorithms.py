"""Integration: the real QGIS runs every algorithm through qgis_process.bin on a generated scene."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import qgis_env, require_qgis
from core.files.library import read_spectra
from core.files.raster_io import NODATA, open_raster, read_all
from helpers import processing_script, run_fails, run_json


@pytest.fixture(scope="module")
def scene(qgis_process, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    paths = {name: str(folder / name) for name in ("scene.tif", "truth.tif", "library.csv", "truth_em.tif")}
    run_json(qgis_process, "deepgu:synthetic", KIND=0, ROWS=40, COLS=50, SEED=3,
             OUTPUT=paths["scene.tif"], OUTPUT_ABUNDANCES=paths["truth.tif"],
             OUTPUT_LIBRARY=paths["library.csv"], OUTPUT_ENDMEMBERS=paths["truth_em.tif"])
    return paths


def test_provider_lists_the_algorithms(qgis_process):
    listing = qgis_process("list").stdout
    for algorithm in ("deepgu:synthetic", "deepgu:vca", "deepgu:fcls", "deepgu:metrics"):
        assert algorithm in listing


def test_synthetic_scene_is_georeferenced_with_wavelengths(scene):
    info = open_raster(scene["scene.tif"])
    assert (info.rows, info.cols) == (40, 50) and info.n_bands == 198
    assert "32633" in info.crs_wkt and info.transform[1] == 30.0
    assert info.wavelengths is not None and 350 < info.wavelengths[0] < 450
    truth = open_raster(scene["truth.tif"])
    assert truth.n_bands == 3 and truth.band_names == read_spectra(scene["library.csv"]).materials


def test_vca_fcls_metrics_chain(qgis_process, scene, tmp_path):
    em = str(tmp_path / "em.csv")
    points = str(tmp_path / "em.gpkg")
    run_json(qgis_process, "deepgu:vca", INPUT=scene["scene.tif"], ENDMEMBERS=3, SEED=1, OUTPUT=em,
             OUTPUT_POINTS=points)
    library = read_spectra(em)
    assert library.spectra.shape == (198, 3) and library.rows is not None
    data, _, _ = read_all(scene["scene.tif"])
    np.testing.assert_allclose(library.spectra, data[:, library.rows, library.cols], rtol=1e-6)
    assert os.path.exists(points)

    abundances, rmse = str(tmp_path / "a.tif"), str(tmp_path / "rmse.tif")
    run_json(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=em, OUTPUT=abundances,
             OUTPUT_RMSE=rmse)
    A, valid, info = read_all(abundances)
    source = open_raster(scene["scene.tif"])
    assert info.crs_wkt == source.crs_wkt and info.transform == source.transform
    assert info.band_names == ["EM1", "EM2", "EM3"] and info.nodata == [NODATA] * 3
    assert valid.all() and np.all(A >= -1e-6) and np.allclose(A.sum(axis=0), 1.0, atol=1e-5)
    with open(str(tmp_path / "a.qml")) as f:      # default style: bands 1-3 as RGB, each stretched 0-1
        style = f.read()
    assert 'type="multibandcolor"' in style
    assert style.count("<minValue>0</minValue>") == 3 and style.count("<maxValue>1</maxValue>") == 3

    report = str(tmp_path / "report.json")
    results = run_json(qgis_process, "deepgu:metrics", ESTIMATE=abundances, REFERENCE=scene["truth.tif"],
                       OUTPUT_REPORT=report)
    # The paper reports FCLS RMSE_A of 0.06-0.12 on scenes with variability (Table III).
    assert 0.02 < results["RMSE_A"] < 0.15
    assert results["RMSE_M"] is None and results["SAM_M"] is None       # not computed: null, never -1
    with open(report) as f:
        written = json.load(f)
    assert abs(written["RMSE_A"] - results["RMSE_A"]) < 1e-9 and "RMSE_M" not in written


def test_nodata_pixels_stay_nodata(qgis_process, scene, tmp_path):
    from osgeo import gdal
    holed = str(tmp_path / "holed.tif")
    gdal.Translate(holed, scene["scene.tif"], noData=-1)
    ds = gdal.Open(holed, gdal.GA_Update)
    band = ds.GetRasterBand(5)
    block = band.ReadAsArray()
    block[:5, :5] = -1          # nodata in one band only: the whole pixel is nodata
    band.WriteArray(block)
    block = ds.GetRasterBand(9).ReadAsArray()
    block[10, 10] = np.nan      # NaN in one band: masked too
    ds.GetRasterBand(9).WriteArray(block)
    ds = None
    out = str(tmp_path / "a.tif")
    run_json(qgis_process, "deepgu:fcls", INPUT=holed, ENDMEMBERS=scene["library.csv"], OUTPUT=out)
    _, valid, _ = read_all(out)
    assert not valid[:5, :5].any() and not valid[10, 10] and valid.sum() == 40 * 50 - 26


@pytest.mark.parametrize("case", ["too_many_endmembers", "wrong_bands", "bad_csv", "not_a_raster"])
def test_bad_input_fails_cleanly(qgis_process, scene, tmp_path, case):
    out = str(tmp_path / "out.tif")
    if case == "too_many_endmembers":
        message = run_fails(qgis_process, "deepgu:vca", INPUT=scene["scene.tif"], ENDMEMBERS=500,
                            OUTPUT=str(tmp_path / "x.csv"))
        assert "only 198 band" in message
    elif case == "wrong_bands":
        lib = tmp_path / "short.csv"
        lib.write_text("band,a,b\n1,0.1,0.2\n2,0.3,0.4\n")
        message = run_fails(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=str(lib), OUTPUT=out)
        assert "2 bands but the image has 198" in message
    elif case == "bad_csv":
        lib = tmp_path / "bad.csv"
        lib.write_text("band,a,b\n1,0.1,oops\n")
        message = run_fails(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=str(lib), OUTPUT=out)
        assert "not a number" in message
    else:
        junk = tmp_path / "junk.tif"
        junk.write_bytes(b"\x00" * 100)
        message = run_fails(qgis_process, "deepgu:fcls", INPUT=str(junk), ENDMEMBERS=scene["library.csv"],
                            OUTPUT=out)
        assert "INPUT" in message or "junk.tif" in message
    assert "Traceback" not in message
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".deepgu-")]


def test_provider_loads_in_a_qgis_application(tmp_path):
    """Start qgis.core's application, load the plugin like QGIS does and run an algorithm."""
    require_qgis()
    script = processing_script("""
ids = sorted(a.id() for a in QgsApplication.processingRegistry().providerById('deepgu').algorithms())
out = processing.run('deepgu:synthetic', {'KIND': 1, 'ROWS': 8, 'COLS': 9, 'OUTPUT': %r})
print('IDS', ','.join(ids)); print('OUT', out['OUTPUT'])
""" % str(tmp_path / "s.tif"))
    done = subprocess.run([sys.executable, "-c", script], env=qgis_env(tmp_path / "cfg"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deepgu:vca" in done.stdout and "deepgu:fcls" in done.stdout
    assert open_raster(str(tmp_path / "s.tif")).rows == 8


def test_single_band_raster_is_refused(qgis_process, tmp_path):
    from core.files.raster_io import georeference, write_raster
    single = str(tmp_path / "single.tif")
    write_raster(single, np.ones((1, 6, 6), np.float32), georeference(6, 6))
    message = run_fails(qgis_process, "deepgu:vca", INPUT=single, ENDMEMBERS=3, OUTPUT=str(tmp_path / "em.csv"))
    assert "only 1 band" in message and "Traceback" not in message
    assert not os.path.exists(str(tmp_path / "em.csv"))


def test_integer_raster_with_scale_factor_unmixes_like_its_float_version(qgis_process, scene, tmp_path):
    from osgeo import gdal
    data, _, info = read_all(scene["scene.tif"])
    ints = str(tmp_path / "int16.tif")
    ds = gdal.GetDriverByName("GTiff").Create(ints, info.cols, info.rows, info.n_bands, gdal.GDT_Int16)
    ds.SetGeoTransform(info.transform)
    ds.SetProjection(info.crs_wkt)
    for b in range(info.n_bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(np.round(data[b] / 1e-4).astype(np.int16))
        band.SetScale(1e-4)
    ds = None
    a_int, a_float = str(tmp_path / "a_int.tif"), str(tmp_path / "a_float.tif")
    run_json(qgis_process, "deepgu:fcls", INPUT=ints, ENDMEMBERS=scene["library.csv"], OUTPUT=a_int)
    run_json(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["library.csv"], OUTPUT=a_float)
    np.testing.assert_allclose(read_all(a_int)[0], read_all(a_float)[0], atol=2e-3)
