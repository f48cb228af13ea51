"""Raster I/O: georeference, nodata/NaN masking, scale factors, wavelengths, atomic writes."""

import os

import numpy as np
import pytest
from osgeo import gdal

from core.errors import DeepGUError
from core.files.raster_io import (NODATA, RasterWriter, block_rows, georeference, iter_blocks, open_raster,
                            read_all, read_block, write_raster)


def _make_tif(path, data, nodata=None, dtype=gdal.GDT_Float32, scale=None, wavelengths=None, epsg=32633):
    bands, rows, cols = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, dtype)
    ds.SetGeoTransform((100.0, 2.0, 0.0, 500.0, 0.0, -2.0))
    from osgeo import osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(bands):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(data[i])
        if nodata is not None:
            b.SetNoDataValue(nodata)
        if scale is not None:
            b.SetScale(scale)
        if wavelengths is not None:
            b.SetMetadataItem("wavelength", str(wavelengths[i]))
            b.SetMetadataItem("wavelength_units", "Micrometers")
    ds = None
    return str(path)


def test_round_trip_keeps_georeference_names_wavelengths_and_nodata(tmp_path):
    data = np.random.default_rng(0).random((3, 5, 4)).astype(np.float32)
    src = _make_tif(tmp_path / "in.tif", data, wavelengths=[0.45, 0.55, 0.65])
    info = open_raster(src)
    assert info.n_bands == 3 and (info.rows, info.cols) == (5, 4)
    np.testing.assert_allclose(info.wavelengths, [450, 550, 650])
    out = data.copy()
    out[:, 1, 2] = np.nan
    write_raster(str(tmp_path / "out.tif"), out, like=info, band_names=["a", "b", "c"],
                 wavelengths=info.wavelengths)
    back = open_raster(str(tmp_path / "out.tif"))
    assert back.transform == info.transform
    assert back.crs_wkt == info.crs_wkt
    assert back.nodata == [NODATA] * 3
    assert back.band_names == ["a", "b", "c"]
    np.testing.assert_allclose(back.wavelengths, [450, 550, 650])
    values, valid, _ = read_all(str(tmp_path / "out.tif"))
    assert not valid[1, 2] and valid.sum() == 19
    np.testing.assert_array_equal(values[:, valid], data[:, valid])


def test_nodata_nan_and_inf_in_any_band_mask_the_pixel(tmp_path):
    data = np.ones((2, 3, 3), dtype=np.float32)
    data[0, 0, 0] = -1.0          # nodata in band 1 only
    data[1, 1, 1] = np.nan
    data[0, 2, 2] = np.inf
    info = open_raster(_make_tif(tmp_path / "in.tif", data, nodata=-1.0))
    values, valid = read_block(info, 0, 3)
    expected = np.ones((3, 3), bool)
    expected[0, 0] = expected[1, 1] = expected[2, 2] = False
    np.testing.assert_array_equal(valid, expected)
    assert np.all(np.isfinite(values)) and np.all(values[:, ~valid] == 0)


def test_integer_input_with_scale_factor_is_read_in_physical_units(tmp_path):
    data = np.array([[[1000, 2500], [0, 10000]]], dtype=np.int16)
    info = open_raster(_make_tif(tmp_path / "in.tif", data, nodata=0, dtype=gdal.GDT_Int16, scale=1e-4))
    values, valid = read_block(info, 0, 2)
    np.testing.assert_allclose(values[0], [[0.1, 0.25], [0.0, 1.0]], rtol=1e-6)
    assert not valid[1, 0]


def test_blocks_cover_the_raster_and_respect_the_budget(tmp_path):
    info = georeference(1000, 500)
    info.n_bands = 100
    rows = block_rows(info, memory_mb=8)
    assert rows * 500 * 100 * 16 <= 8 * 2 ** 20
    strips = list(iter_blocks(info, rows))
    assert strips[0][0] == 0 and sum(n for _, n in strips) == 1000


def test_windowed_read_equals_slice_of_full_read(tmp_path):
    data = np.random.default_rng(1).random((4, 9, 7)).astype(np.float32)
    info = open_raster(_make_tif(tmp_path / "in.tif", data))
    block, _ = read_block(info, 3, 4, 2, 3)
    np.testing.assert_array_equal(block, data[:, 3:7, 2:5])


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(DeepGUError, match="not found"):
        open_raster(str(tmp_path / "missing.tif"))
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a raster")
    with pytest.raises(DeepGUError, match="cannot read"):
        open_raster(str(junk))


def test_failed_write_leaves_nothing_behind(tmp_path):
    info = georeference(4, 4)
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with RasterWriter(str(target), like=info, n_bands=1) as out:
            out.write(np.zeros((1, 2, 4)), 0)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_read_only_folder_is_refused_before_any_work(read_only_folder):
    with pytest.raises(DeepGUError, match="not writable"):
        RasterWriter(os.path.join(read_only_folder, "x.tif"), like=georeference(2, 2), n_bands=1)


def test_blocks_never_written_read_as_nodata(tmp_path):
    with RasterWriter(str(tmp_path / "o.tif"), like=georeference(600, 600), n_bands=2) as out:
        out.write(np.ones((2, 10, 10)), 0, 0)
    values, valid, _ = read_all(str(tmp_path / "o.tif"))
    assert valid[:10, :10].all() and valid.sum() == 100
