"""Spectral library / bundle CSV files."""

import numpy as np
import pytest

from core.errors import DeepGUError
from core.files.library import check_bands, read_spectra, write_spectra


def test_endmember_round_trip(tmp_path):
    spectra = np.random.default_rng(0).random((5, 3))
    path = str(tmp_path / "em.csv")
    write_spectra(path, spectra, ["soil", "tree", "water"], wavelengths=np.array([400., 500, 600, 700, 800]))
    lib = read_spectra(path)
    np.testing.assert_allclose(lib.spectra, spectra, rtol=1e-8)
    assert lib.materials == ["soil", "tree", "water"] and lib.rows is None
    np.testing.assert_array_equal(lib.as_endmembers(), lib.spectra)
    np.testing.assert_array_equal(lib.wavelengths, [400, 500, 600, 700, 800])


def test_bundle_round_trip_groups_by_material(tmp_path):
    spectra = np.arange(12.0).reshape(4, 3)
    path = str(tmp_path / "b.csv")
    write_spectra(path, spectra, ["a", "b", "a"], rows=[1, 2, 3], cols=[4, 5, 6])
    lib = read_spectra(path)
    assert lib.wavelengths is None
    groups = lib.by_material()
    assert [g[0] for g in groups] == ["a", "b"]
    np.testing.assert_array_equal(groups[0][1], spectra[:, [0, 2]])
    np.testing.assert_array_equal(groups[0][2], [1, 3])
    np.testing.assert_array_equal(groups[1][3], [5])
    with pytest.raises(DeepGUError, match="repeats material"):
        lib.as_endmembers()


@pytest.mark.parametrize("text,message", [
    ("wavelength,a,b\n400,0.1\n", "missing values"),
    ("wavelength,a,b\n400,0.1,abc\n", "not a number"),
    ("wavelength,a,b\n400,0.1,nan\n", "not finite"),
    ("foo,a\n1,2\n", "first header cell"),
    ("wavelength,a\n", "no spectra"),
    ("wavelength,a,\n400,1,2\n", "no material name"),
])
def test_malformed_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DeepGUError, match=message):
        read_spectra(str(path))


def test_band_mismatch_is_reported(tmp_path):
    path = str(tmp_path / "em.csv")
    write_spectra(path, np.ones((3, 2)), ["a", "b"], wavelengths=np.array([1., 2., 3.]))
    lib = read_spectra(path)
    with pytest.raises(DeepGUError, match="3 bands but the image has 4"):
        check_bands(lib, 4, None, "the endmember file")
    with pytest.raises(DeepGUError, match="wavelengths differ"):
        check_bands(lib, 3, np.array([1., 2., 30.]), "the endmember file")
