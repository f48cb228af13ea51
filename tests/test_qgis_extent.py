"""EXTENT through QGIS: fcls and unmix process only the window of INPUT covering a map extent, in any CRS."""

import os

import numpy as np
import pytest
from osgeo import osr

from core.files.raster_io import open_raster, read_all
from helpers import run_fails, run_json

#: deepgu:synthetic's grid: EPSG:32633, 30 m pixels, top-left corner (500000, 4500000).
X0, Y0, PIXEL = 500000.0, 4500000.0, 30.0


def utm_extent(row0, col0, rows, cols, margin=0.0):
    """``xmin,xmax,ymin,ymax [EPSG:32633]`` of a pixel window, grown (or shrunk) by ``margin`` metres."""
    return "%r,%r,%r,%r [EPSG:32633]" % (X0 + col0 * PIXEL - margin, X0 + (col0 + cols) * PIXEL + margin,
                                         Y0 - (row0 + rows) * PIXEL - margin, Y0 - row0 * PIXEL + margin)


@pytest.fixture(scope="module")
def scene(qgis_process, tmp_path_factory):
    """A 30 x 40 scene, its library spectra (the endmembers here) and its FCLS abundances; where bundles and a model
    go (test_unmix_of_an_extent)."""
    folder = tmp_path_factory.mktemp("extent")
    p = {name: str(folder / name) for name in ("scene.tif", "library.csv", "fcls.tif", "bundles.csv", "model.pt")}
    for algorithm, parameters in (
            ("deepgu:synthetic", dict(KIND=0, ROWS=30, COLS=40, SEED=6, OUTPUT=p["scene.tif"],
                                      OUTPUT_LIBRARY=p["library.csv"])),
            ("deepgu:fcls", dict(INPUT=p["scene.tif"], ENDMEMBERS=p["library.csv"], OUTPUT=p["fcls.tif"]))):
        run_json(qgis_process, algorithm, **parameters)
    return p


def _check_window(path, scene_path, row0, col0, rows, cols):
    """The raster at ``path`` is the window of the scene: its size, geotransform and CRS."""
    info, scene = open_raster(path), open_raster(scene_path)
    assert (info.rows, info.cols) == (rows, cols)
    assert info.transform == (X0 + col0 * PIXEL, PIXEL, 0.0, Y0 - row0 * PIXEL, 0.0, -PIXEL)
    assert info.crs_wkt == scene.crs_wkt


def test_fcls_of_an_extent_is_that_window_of_the_whole_scene(qgis_process, scene, tmp_path):
    whole = read_all(scene["fcls.tif"])[0]
    # pixel-aligned, and with edges 7 m inside the window's pixels (snapped outward to the same window)
    for margin in (0.0, -7.0):
        out = str(tmp_path / ("part%g.tif" % margin))
        run_json(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["library.csv"], OUTPUT=out,
                 EXTENT=utm_extent(4, 9, 11, 17, margin))
        _check_window(out, scene["scene.tif"], 4, 9, 11, 17)
        part, valid, info = read_all(out)
        assert valid.all()
        np.testing.assert_array_equal(part, whole[:, 4:15, 9:26])
        assert info.band_names == open_raster(scene["fcls.tif"]).band_names


def test_an_extent_in_another_crs_is_transformed(qgis_process, scene, tmp_path):
    """The extent in longitude/latitude of the centres of rows 5-9, columns 10-19: that window."""
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32633)
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    corners = [to_wgs84.TransformPoint(X0 + (col + 0.5) * PIXEL, Y0 - (row + 0.5) * PIXEL)[:2]
               for row in (5, 9) for col in (10, 19)]
    lon, lat = zip(*corners)
    out = str(tmp_path / "lonlat.tif")
    run_json(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["library.csv"], OUTPUT=out,
             EXTENT="%.12f,%.12f,%.12f,%.12f [EPSG:4326]" % (min(lon), max(lon), min(lat), max(lat)))
    _check_window(out, scene["scene.tif"], 5, 10, 5, 10)


def test_an_extent_off_the_image_is_refused_in_one_line(qgis_process, scene, tmp_path):
    out = str(tmp_path / "none.tif")
    message = run_fails(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["library.csv"],
                        OUTPUT=out, EXTENT=utm_extent(0, 50, 5, 5))
    assert "EXTENT" in message and "does not intersect the raster's extent" in message
    assert "Traceback" not in message and not os.path.exists(out)


def test_unmix_of_an_extent(qgis_process, scene, tmp_path):
    """Right shape and geotransform, abundances on the simplex; a starting FCLS of the whole scene or of the window
    gives the same result."""
    run_json(qgis_process, "deepgu:bundles", INPUT=scene["scene.tif"], ENDMEMBERS=scene["library.csv"], N_PIXELS=30,
             OUTPUT=scene["bundles.csv"])
    run_json(qgis_process, "deepgu:trainvae", BUNDLES=scene["bundles.csv"], ENDMEMBERS=scene["library.csv"],
             EPOCHS=10, OUTPUT=scene["model.pt"])
    extent = utm_extent(3, 5, 12, 20)
    window_fcls = str(tmp_path / "fcls-window.tif")
    run_json(qgis_process, "deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["library.csv"],
             OUTPUT=window_fcls, EXTENT=extent)
    results = []
    for init in (scene["fcls.tif"], window_fcls):
        out = str(tmp_path / ("unmix-%d.tif" % len(results)))
        run_json(qgis_process, "deepgu:unmix", INPUT=scene["scene.tif"], MODEL=scene["model.pt"],
                 INIT_ABUNDANCES=init, EXTENT=extent, MAX_ITER=2, OUTPUT=out)
        _check_window(out, scene["scene.tif"], 3, 5, 12, 20)
        A, valid, _ = read_all(out)
        assert valid.all() and np.all(np.isfinite(A)) and A.min() >= -1e-6
        np.testing.assert_allclose(A.sum(axis=0), 1.0, atol=1e-5)
        results.append(A)
    np.testing.assert_array_equal(results[0], results[1])


def test_workflow_extent_restricts_the_deepgu_step(qgis_process, scene, tmp_path):
    """The workflow's EXTENT goes to its DeepGU step; the FCLS it starts from (and trains on) covers the image."""
    outputs = {name: str(tmp_path / file) for name, file in (
        ("endmembers:ENDMEMBERS_CSV", "em.csv"), ("fcls:FCLS_ABUNDANCES", "fcls.tif"),
        ("bundles:BUNDLES_CSV", "b.csv"), ("trainvae:MODEL_FILE", "model.pt"),
        ("unmix:DEEPGU_ABUNDANCES", "deepgu.tif"))}
    run_json(qgis_process, "deepgu:workflow", INPUT=scene["scene.tif"], MATERIALS=3, SEED=1,
             EXTENT=utm_extent(10, 2, 8, 30), **outputs)
    assert (open_raster(outputs["fcls:FCLS_ABUNDANCES"]).rows, open_raster(outputs["fcls:FCLS_ABUNDANCES"]).cols) \
        == (30, 40)
    _check_window(outputs["unmix:DEEPGU_ABUNDANCES"], scene["scene.tif"], 10, 2, 8, 30)
    A, valid, _ = read_all(outputs["unmix:DEEPGU_ABUNDANCES"])
    assert valid.all()
    np.testing.assert_allclose(A.sum(axis=0), 1.0, atol=1e-5)
