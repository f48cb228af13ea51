"""Output formats by extension: GeoTIFF and ENVI rasters, CSV and ENVI spectral libraries."""

import os

import numpy as np
import pytest
from osgeo import gdal

from core.errors import DeepGUError
from core.files.library import read_spectra, write_spectra
from core.files.raster_io import NODATA, RasterWriter, georeference, read_all, write_raster

WAVELENGTHS = np.array([400.5, 500.0, 612.25, 700.0])


def test_envi_raster_has_wavelengths_and_band_names_in_its_header(tmp_path):
    data = np.random.default_rng(0).random((4, 3, 5)).astype(np.float32)
    data[:, 1, 2] = np.nan
    write_raster(str(tmp_path / "x.hdr"), data, georeference(3, 5), band_names=["b1", "b2", "b3", "b4"],
                 wavelengths=WAVELENGTHS)
    assert sorted(os.listdir(str(tmp_path))) == ["x.dat", "x.dat.aux.xml", "x.hdr"]   # no temporary file left
    with open(str(tmp_path / "x.hdr")) as f:
        header = f.read()
    assert "wavelength = {400.5, 500, 612.25, 700}" in header and "wavelength units = Nanometers" in header
    assert "band names = {\nb1,\nb2,\nb3,\nb4}" in header and "description = {\nx.dat}" in header
    os.unlink(str(tmp_path / "x.dat.aux.xml"))        # what GDAL reads from the header alone
    ds = gdal.Open(str(tmp_path / "x.dat"))
    assert ds.GetDriver().ShortName == "ENVI"
    assert [float(ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")) for i in range(4)] == list(WAVELENGTHS)
    read, valid, info = read_all(str(tmp_path / "x.dat"))
    assert info.band_names == ["b1", "b2", "b3", "b4"] and info.nodata == [NODATA] * 4
    np.testing.assert_array_equal(info.wavelengths, WAVELENGTHS)
    assert not valid[1, 2] and valid.sum() == 14
    np.testing.assert_array_equal(read[:, valid], data[:, valid])
    assert "32633" in info.crs_wkt and info.transform == georeference(3, 5).transform


@pytest.mark.parametrize("name", ["x.img", "x.bsq", "x.tiff"])
def test_unwritten_pixels_are_nodata_in_every_format(tmp_path, name):
    with RasterWriter(str(tmp_path / name), georeference(4, 3), n_bands=2) as out:
        out.write(np.ones((2, 1, 3)), 1)
    _, valid, _ = read_all(str(tmp_path / name))
    assert valid.tolist() == [[False] * 3, [True] * 3, [False] * 3, [False] * 3]
    expected = "GTiff" if name.endswith(".tiff") else "ENVI"
    assert gdal.Open(str(tmp_path / name)).GetDriver().ShortName == expected


def test_unsupported_raster_extension_is_refused_and_leaves_nothing(tmp_path):
    expected = r"output raster: cannot write '\.png' files .*use \.tif, \.tiff \(GTiff\) or \.hdr, .*\(ENVI\)"
    with pytest.raises(DeepGUError, match=expected):
        RasterWriter(str(tmp_path / "x.png"), georeference(2, 2), n_bands=1)
    assert os.listdir(str(tmp_path)) == []


def test_failed_envi_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with RasterWriter(str(tmp_path / "x.hdr"), georeference(2, 2), n_bands=1, wavelengths=[500.0]):
            raise RuntimeError("cancelled")
    assert os.listdir(str(tmp_path)) == []


def test_envi_library_round_trips_a_bundle(tmp_path):
    spectra = np.random.default_rng(1).random((4, 5))
    materials = ["soil", "soil", "tree", "water", "tree"]
    write_spectra(str(tmp_path / "b.sli"), spectra, materials, WAVELENGTHS, rows=[0, 1, 2, 3, 4], cols=[9, 8, 7, 6, 5])
    assert sorted(os.listdir(str(tmp_path))) == ["b.hdr", "b.sli"]
    for path in ("b.sli", "b.hdr"):                  # named by its data file or by its header
        lib = read_spectra(str(tmp_path / path))
        np.testing.assert_array_equal(lib.spectra, spectra)
        assert lib.materials == materials and lib.rows.tolist() == [0, 1, 2, 3, 4]
        assert lib.cols.tolist() == [9, 8, 7, 6, 5]
        np.testing.assert_array_equal(lib.wavelengths, WAVELENGTHS)
    # the bytes as the ENVI format defines them: one line of `samples` (bands) values per spectrum
    np.testing.assert_array_equal(np.fromfile(str(tmp_path / "b.sli"), "<f8").reshape(5, 4), spectra.T)
    with open(str(tmp_path / "b.hdr")) as f:
        header = f.read()
    for field in ("samples = 4", "lines = 5", "bands = 1", "data type = 5", "byte order = 0",
                  "file type = ENVI Spectral Library", "spectra names = {soil, soil, tree, water, tree}"):
        assert field in header


def test_reads_an_envi_library_written_from_the_specification(tmp_path):
    """Big-endian float32 after a 16-byte header offset, micrometres, a scale factor, multi-line braces,
    the header named ``<file>.hdr``: all as the ENVI header format allows."""
    spectra = np.array([[1000.0, 2000.0, 3000.0], [4000.0, 5000.0, 6000.0]])      # (2 spectra, 3 bands)
    with open(str(tmp_path / "usgs.sli"), "wb") as f:
        f.write(b"\0" * 16 + spectra.astype(">f4").tobytes())
    with open(str(tmp_path / "usgs.sli.hdr"), "w") as f:
        f.write("ENVI\ndescription = {\n  USGS excerpt = test}\nsamples = 3\nlines   = 2\nbands = 1\n"
                "header offset = 16\nfile type = ENVI Spectral Library\ndata type = 4\ninterleave = bsq\n"
                "byte order = 1\nreflectance scale factor = 10000\nwavelength units = Micrometers\n"
                "wavelength = {\n 0.4, 0.5,\n 0.6}\nspectra names = {\nKaolinite CM9,\nAlunite GDS84}\n")
    lib = read_spectra(str(tmp_path / "usgs.sli"))
    np.testing.assert_allclose(lib.spectra, spectra.T / 10000.0)
    assert lib.materials == ["Kaolinite CM9", "Alunite GDS84"] and lib.rows is None
    np.testing.assert_allclose(lib.wavelengths, [400.0, 500.0, 600.0])


def test_reads_a_one_band_envi_image_written_by_gdal_as_a_library(tmp_path):
    spectra = np.random.default_rng(2).random((3, 4)).astype(np.float32)            # (3 spectra, 4 bands)
    ds = gdal.GetDriverByName("ENVI").Create(str(tmp_path / "lib.sli"), 4, 3, 1, gdal.GDT_Float32)
    ds.SetMetadata({"spectra_names": "{a, b, c}", "wavelength": "{1, 2, 3, 4}",
                    "wavelength_units": "Nanometers"}, "ENVI")
    ds.GetRasterBand(1).WriteArray(spectra)
    ds = None
    lib = read_spectra(str(tmp_path / "lib.sli"))
    np.testing.assert_array_equal(lib.spectra, spectra.T)
    assert lib.materials == ["a", "b", "c"] and lib.wavelengths.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("header, message", [
    ("samples = 3\nlines = 2\nbands = 4\ndata type = 4\n", "bands = 1"),
    ("samples = 3\nlines = 2\ndata type = 6\nspectra names = {a, b}\n", "data type 6"),
    ("samples = 3\nlines = 5\ndata type = 4\nspectra names = {a, b}\n", "truncated"),
    ("samples = 3\nlines = 2\ndata type = 4\nspectra names = {a}\n", "1 names for 2 spectra"),
    ("lines = 2\ndata type = 4\n", "no 'samples'"),
])
def test_bad_envi_library_is_refused_with_a_reason(tmp_path, header, message):
    with open(str(tmp_path / "x.sli"), "wb") as f:
        f.write(np.zeros(6, "<f4").tobytes())
    with open(str(tmp_path / "x.hdr"), "w") as f:
        f.write("ENVI\n" + header)
    with pytest.raises(DeepGUError, match=message):
        read_spectra(str(tmp_path / "x.sli"))


def test_library_writes_refuse_unknown_extensions_and_unsafe_names(tmp_path):
    with pytest.raises(DeepGUError, match=r"use \.csv \(CSV\) or \.sli, \.hdr \(ENVI\)"):
        write_spectra(str(tmp_path / "lib.txt"), np.ones((2, 1)), ["a"])
    with pytest.raises(DeepGUError, match="cannot hold ','"):
        write_spectra(str(tmp_path / "lib.sli"), np.ones((2, 1)), ["a, b"])
    assert os.listdir(str(tmp_path)) == []


def test_envi_rewrite_commits_header_with_data_and_a_failed_one_keeps_both(tmp_path):
    target = str(tmp_path / "x.hdr")
    write_raster(target, np.ones((1, 2, 2)), georeference(2, 2), wavelengths=[500.0])
    with open(str(tmp_path / "x.qml"), "w") as style:        # a style for the old file's bands
        style.write("<qgis/>")
    write_raster(target, np.full((1, 2, 2), 2.0), georeference(2, 2), wavelengths=[600.0])
    data, _, info = read_all(str(tmp_path / "x.dat"))
    assert info.wavelengths.tolist() == [600.0] and data.tolist() == [[[2.0, 2.0], [2.0, 2.0]]]
    assert sorted(os.listdir(str(tmp_path))) == ["x.dat", "x.dat.aux.xml", "x.hdr"]
    with pytest.raises(RuntimeError):
        with RasterWriter(target, georeference(2, 2), n_bands=1, wavelengths=[700.0]) as out:
            out.write(np.zeros((1, 2, 2)), 0)
            raise RuntimeError("cancelled")
    data, _, info = read_all(str(tmp_path / "x.dat"))
    assert info.wavelengths.tolist() == [600.0] and data.tolist() == [[[2.0, 2.0], [2.0, 2.0]]]
    assert sorted(os.listdir(str(tmp_path))) == ["x.dat", "x.dat.aux.xml", "x.hdr"]


def test_envi_library_gets_the_csv_checks(tmp_path):
    from core.files import envi_library
    path = str(tmp_path / "lib.sli")
    with pytest.raises(DeepGUError, match="material name '=SUM' starts with '='"):
        write_spectra(path, np.eye(2), ["=SUM", "b"])
    assert os.listdir(str(tmp_path)) == []
    envi_library.write(path, np.eye(2), ["=SUM", "b"])      # a file from elsewhere
    with pytest.raises(DeepGUError, match="lib.sli: material name '=SUM'"):
        read_spectra(path)
    envi_library.write(path, np.eye(2) * 1e13, ["a", "b"])
    with pytest.raises(DeepGUError, match="lib.sli holds values beyond"):
        read_spectra(path)
