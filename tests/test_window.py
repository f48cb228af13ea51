"""EXTENT in the core: the pixel window of a map extent, and jobs that read and write only that window."""

import os

import numpy as np
import pytest

from core.errors import DeepGUError
from core.jobs import fcls as fcls_job
from core.files.library import write_spectra
from core.files.raster_io import georeference, open_raster, read_all, write_raster
from core.evaluation.synthetic import make_scene
from core.files.window import PixelWindow, extent_window, raster_extent, window_transform

#: a 10 x 20 raster of 30 m pixels whose top-left corner is (1000, 5000): x in [1000, 1600], y in [4700, 5000].
TRANSFORM, ROWS, COLS = (1000.0, 30.0, 0.0, 5000.0, 0.0, -30.0), 10, 20


def test_the_whole_raster_and_an_aligned_extent():
    assert extent_window(TRANSFORM, ROWS, COLS, (1000, 4700, 1600, 5000)) == PixelWindow(0, 0, 10, 20)
    # columns 2..5 (x 1060..1180) and rows 3..6 (y 4910..4790)
    assert extent_window(TRANSFORM, ROWS, COLS, (1060, 4790, 1180, 4910)) == PixelWindow(3, 2, 4, 4)


def test_a_fractional_extent_snaps_outward():
    # x 1061..1179 lies within columns 2..5, y 4791..4909 within rows 3..6; a hair beyond an edge is rounding
    assert extent_window(TRANSFORM, ROWS, COLS, (1061, 4791, 1179, 4909)) == PixelWindow(3, 2, 4, 4)
    assert extent_window(TRANSFORM, ROWS, COLS, (1059, 4790, 1180, 4910 + 1e-9)) == PixelWindow(3, 1, 4, 5)
    # a point selects the pixel that holds it
    assert extent_window(TRANSFORM, ROWS, COLS, (1075, 4985, 1075, 4985)) == PixelWindow(0, 2, 1, 1)


def test_partial_overlap_is_clipped_to_the_raster():
    assert extent_window(TRANSFORM, ROWS, COLS, (500, 4000, 1090, 4760)) == PixelWindow(8, 0, 2, 3)
    assert extent_window(TRANSFORM, ROWS, COLS, (1500, 4950, 9000, 9000)) == PixelWindow(0, 16, 2, 4)


@pytest.mark.parametrize("extent", [(0, 0, 999, 4000), (1601, 4700, 2000, 5000), (1000, 5000.5, 1600, 6000)])
def test_no_overlap_is_refused_naming_the_parameter(extent):
    expected = r"^EXTENT .* does not intersect the raster.s extent \(1000, 4700, 1600, 5000\)$"
    with pytest.raises(DeepGUError, match=expected):
        extent_window(TRANSFORM, ROWS, COLS, extent)


def test_an_inverted_or_non_finite_extent_is_refused():
    for extent in [(1100, 4800, 1000, 4900), (1000, float("nan"), 1100, 4900)]:
        with pytest.raises(DeepGUError, match="^EXTENT must be a finite extent"):
            extent_window(TRANSFORM, ROWS, COLS, extent)


def test_a_rotated_grid_is_inverted_exactly():
    # a grid rotated by 90 degrees: columns run down (y decreases), rows run right (x increases)
    transform = (0.0, 0.0, 10.0, 0.0, -10.0, 0.0)
    assert raster_extent(transform, 5, 8) == (0.0, -80.0, 50.0, 0.0)
    # x 10..30 = rows 1..2, y -60..-20 = columns 2..5
    assert extent_window(transform, 5, 8, (10, -60, 30, -20)) == PixelWindow(1, 2, 2, 4)


def test_window_transform_moves_the_origin():
    assert window_transform(TRANSFORM, PixelWindow(3, 2, 4, 4)) == (1060.0, 30.0, 0.0, 4910.0, 0.0, -30.0)


def test_fcls_of_a_window_is_that_window_of_the_whole_scene(tmp_path):
    scene = make_scene("DC1", 30, 40, seed=2)
    image, em = str(tmp_path / "scene.tif"), str(tmp_path / "em.csv")
    write_raster(image, scene.image, georeference(30, 40), wavelengths=scene.wavelengths)
    write_spectra(em, scene.reference, scene.names, scene.wavelengths)
    whole, part = str(tmp_path / "whole.tif"), str(tmp_path / "part.tif")
    fcls_job.run(image, em, whole)
    window = PixelWindow(7, 11, 13, 17)
    fcls_job.run(image, em, part, window=window, memory_mb=0.05)       # several strips within the window
    full, _, full_info = read_all(whole)
    got, valid, info = read_all(part)
    assert valid.all() and got.shape == (3, 13, 17)
    np.testing.assert_array_equal(got, full[:, 7:20, 11:28])
    assert info.transform == window_transform(full_info.transform, window)
    assert info.crs_wkt == full_info.crs_wkt and info.band_names == full_info.band_names
    assert open_raster(part).nodata == full_info.nodata


def test_the_command_line_takes_an_extent(tmp_path, capsys):
    scene = make_scene("DC1", 20, 20, seed=1)
    image, em = str(tmp_path / "scene.tif"), str(tmp_path / "em.csv")
    write_raster(image, scene.image, georeference(20, 20), wavelengths=scene.wavelengths)
    write_spectra(em, scene.reference, scene.names, scene.wavelengths)
    whole, part = str(tmp_path / "whole.tif"), str(tmp_path / "part.tif")
    assert fcls_job.main([image, em, whole]) == 0
    # georeference(): 30 m pixels from (500000, 4500000); x 500095 -> column 3, y 4499805 -> row 6 (edges inside)
    assert fcls_job.main([image, em, part, "--extent", "500095", "4499700", "500200", "4499805"]) == 0
    np.testing.assert_array_equal(read_all(part)[0], read_all(whole)[0][:, 6:10, 3:7])
    off = str(tmp_path / "off.tif")
    assert fcls_job.main([image, em, off, "--extent", "0", "0", "1", "1"]) == 2
    assert "error: --extent (0, 0, 1, 1) does not intersect" in capsys.readouterr().err
    assert not os.path.exists(off)
