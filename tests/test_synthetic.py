"""Synthetic scenes: the truth they carry must obey the model they claim."""

import os

import numpy as np
import pytest

from conftest import SHARED_DATA
from core.errors import DeepGUError
from core.evaluation.synthetic import (DC1_KNOTS, DC1_SPREAD, DC2_AMPLITUDE, load_library, make_scene,
                            piecewise_linear_factors)

USGS = os.path.join(SHARED_DATA, "usgs")


@pytest.fixture(scope="module")
def dc1():
    return make_scene("DC1", rows=40, cols=50, seed=3)


@pytest.fixture(scope="module")
def dc2():
    return make_scene("DC2", rows=40, cols=50, seed=3)


def _factors(scene):
    """psi = m_pn / m_p on the bands where every reference is clearly positive: (L', P, rows, cols)."""
    keep = np.all(scene.reference > 5e-3, axis=1)
    return scene.endmembers[keep] / scene.reference[keep, :, None, None], scene.wavelengths[keep]


def _neighbour_correlation(maps):
    """Mean correlation between horizontally adjacent pixels of each map (..., rows, cols)."""
    flat = maps.reshape(-1, *maps.shape[-2:])
    return np.mean([np.corrcoef(m[:, :-1].ravel(), m[:, 1:].ravel())[0, 1] for m in flat])


def _slope_changes(factors, wavelengths):
    """Change of slope (per nm) at each interior band, along sorted wavelength: (L - 2, count)."""
    order = np.argsort(wavelengths)
    lam, f = wavelengths[order], factors[order].astype(np.float64)
    return np.diff(np.diff(f, axis=0) / np.diff(lam)[:, None], axis=0)


def test_shipped_library():
    wavelengths, M, names = load_library()
    assert M.shape == (198, 4) and wavelengths.shape == (198,)
    assert names == ["tree", "water", "dirt", "road"]
    assert 390 < wavelengths.min() < 410 and 2440 < wavelengths.max() < 2470
    assert np.all(M >= 0) and np.all(M <= 1)


@pytest.mark.skipif(not os.path.isdir(USGS), reason="shared USGS data not available")
def test_shipped_library_matches_source_files():
    from scipy.io import loadmat
    wavelengths, M, _ = load_library()
    bands = loadmat(os.path.join(USGS, "EM_b_SlectBands.mat"))["SlectBands"].ravel().astype(int)
    aviris = loadmat(os.path.join(USGS, "AVIRIS_wavelengths.mat"))["AVIRIS_wavlen"].ravel()
    np.testing.assert_allclose(wavelengths, aviris[bands - 1], atol=0.006)
    np.testing.assert_allclose(M, loadmat(os.path.join(USGS, "endmembers_b.mat"))["M"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["DC1", "DC2"])
def test_shapes_and_simplex(kind):
    scene = make_scene(kind, rows=12, cols=9, n_materials=4, seed=1)
    L = scene.wavelengths.size
    assert scene.image.shape == (L, 12, 9) and scene.image.dtype == np.float32
    assert scene.abundances.shape == (4, 12, 9) and scene.abundances.dtype == np.float32
    assert scene.endmembers.shape == (L, 4, 12, 9) and scene.endmembers.dtype == np.float32
    assert scene.reference.shape == (L, 4) and len(scene.names) == 4
    assert scene.abundances.min() >= 0
    np.testing.assert_allclose(scene.abundances.sum(axis=0), 1.0, atol=1e-5)


def test_abundances_spatially_correlated(dc1, dc2):
    rng = np.random.default_rng(0)
    for scene in (dc1, dc2):
        shuffled = rng.permuted(scene.abundances.reshape(3, -1), axis=1).reshape(scene.abundances.shape)
        assert _neighbour_correlation(scene.abundances) > 0.7
        assert abs(_neighbour_correlation(shuffled)) < 0.1


@pytest.mark.parametrize("kind", ["DC1", "DC2"])
@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_mixing_model_and_snr(kind, snr_db):
    scene = make_scene(kind, rows=30, cols=30, snr_db=snr_db, seed=7)
    clean = np.einsum("lpxy,pxy->lxy", scene.endmembers.astype(np.float64), scene.abundances)
    noise = scene.image - clean
    measured = 10 * np.log10(np.sum(clean ** 2) / np.sum(noise ** 2))
    assert abs(measured - snr_db) < 0.5
    # White noise: no spatial or spectral correlation left.
    assert abs(np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]) < 0.05
    assert abs(np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1]) < 0.05


def test_piecewise_linear_factors_unsorted_bands():
    wavelengths = load_library()[0]                           # AVIRIS: overlapping spectrometers
    assert np.any(np.diff(wavelengths) < 0)
    factors = piecewise_linear_factors(400, wavelengths, np.random.default_rng(0))
    assert factors.shape == (198, 400)
    assert factors.min() >= 1 - DC1_SPREAD - 1e-5 and factors.max() <= 1 + DC1_SPREAD + 1e-5
    kinks = (np.abs(_slope_changes(factors, wavelengths)) > 1e-5).sum(axis=0)
    assert kinks.max() <= DC1_KNOTS                           # linear between at most K interior knots
    assert np.mean(kinks == DC1_KNOTS) > 0.9                  # and the knots are really there
    assert np.std(factors[:, 0]) > 0.01


def test_dc1_factors_piecewise_linear_and_independent_per_pixel(dc1):
    factors, wavelengths = _factors(dc1)
    flat = factors.reshape(factors.shape[0], -1)
    assert flat.min() >= 1 - DC1_SPREAD - 1e-4 and flat.max() <= 1 + DC1_SPREAD + 1e-4
    # A knot on a dropped band bends the curve at both neighbours: at most 2 K kinks.
    kinks = (np.abs(_slope_changes(flat, wavelengths)) > 1e-5).sum(axis=0)
    assert kinks.max() <= 2 * DC1_KNOTS and kinks.mean() >= DC1_KNOTS * 0.9
    # Pixel-wise factors: no spatial correlation.
    assert abs(_neighbour_correlation(factors[50])) < 0.1


def test_dc2_factors_smooth_in_space_and_wavelength(dc2):
    factors, wavelengths = _factors(dc2)
    assert factors.min() >= 1 - DC2_AMPLITUDE - 1e-5 and factors.max() <= 1 + DC2_AMPLITUDE + 1e-5
    assert factors.std() > 0.02
    assert _neighbour_correlation(factors[::20]) > 0.8
    # Gentle curves over ~2000 nm: second derivative (per nm^2) far below a DC1 knot's kink.
    lam = np.sort(wavelengths)
    second = _slope_changes(factors.reshape(factors.shape[0], -1), wavelengths) / (lam[2:] - lam[:-2])[:, None] * 2
    assert np.abs(second).max() < 1e-5


@pytest.mark.parametrize("kind", ["DC1", "DC2"])
def test_nearly_pure_pixels_for_every_material(kind):
    for seed in range(5):
        for rows, cols, P in ((70, 70, 3), (50, 50, 3), (25, 40, 4)):
            scene = make_scene(kind, rows=rows, cols=cols, n_materials=P, seed=seed, snr_db=40.0)
            assert np.all(scene.abundances.reshape(P, -1).max(axis=1) > 0.95)


def test_deterministic():
    a, b, c = (make_scene("DC1", rows=10, cols=10, seed=s) for s in (5, 5, 6))
    for field in ("image", "abundances", "endmembers"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.allclose(a.image, c.image)


def test_custom_library_and_material_selection(tmp_path):
    wavelengths = np.linspace(400, 2400, 50)
    spectra = np.stack([np.linspace(0.1, 0.9, 50), np.full(50, 0.3), np.linspace(0.8, 0.2, 50)], axis=1)
    scene = make_scene("DC2", rows=8, cols=8, n_materials=2, library=(wavelengths, spectra, ["a", "b", "c"]))
    assert scene.names == ["a", "b"] and scene.image.shape == (50, 8, 8)
    np.testing.assert_array_equal(scene.reference, spectra[:, :2])
    path = tmp_path / "lib.csv"
    np.savetxt(path, np.column_stack([wavelengths, spectra]), delimiter=",", header="wavelength,a,b,c",
               comments="")
    assert make_scene("DC1", rows=4, cols=4, n_materials=3, library=str(path)).names == ["a", "b", "c"]


def test_max_abundance_cap_leaves_no_pure_pixel_and_keeps_mixed_ones():
    free = make_scene("DC1", rows=30, cols=30, n_materials=3, seed=5)
    capped = make_scene("DC1", rows=30, cols=30, n_materials=3, seed=5, max_abundance=0.8)
    assert free.abundances.max() > 0.95
    assert capped.abundances.max() == pytest.approx(0.8, abs=1e-6) and capped.abundances.min() >= 0
    np.testing.assert_allclose(capped.abundances.sum(axis=0), 1.0, atol=1e-5)
    mixed = free.abundances.max(axis=0) <= 0.8
    assert 0 < mixed.mean() < 1
    np.testing.assert_array_equal(capped.abundances[:, mixed], free.abundances[:, mixed])
    # Pixels above the cap move along the line to the uniform mixture (1/3, 1/3, 1/3).
    pure = ~mixed
    direction = free.abundances[:, pure] - 1.0 / 3
    moved = capped.abundances[:, pure] - 1.0 / 3
    weight = moved.max(axis=0) / direction.max(axis=0)
    assert np.all((weight > 0) & (weight < 1))
    np.testing.assert_allclose(moved, weight * direction, atol=1e-6)
    np.testing.assert_array_equal(capped.endmembers, free.endmembers)     # same variability draw


@pytest.mark.parametrize("kwargs, words", [
    (dict(kind="DC3"), "kind"),
    (dict(rows=1), "rows"),
    (dict(cols=2.5), "cols"),
    (dict(n_materials=5), "n_materials"),
    (dict(n_materials=0), "n_materials"),
    (dict(snr_db=float("nan")), "snr_db"),
    (dict(snr_db="high"), "snr_db"),
    (dict(library=([1, 2, 3], np.ones((3, 2)), ["x"])), "library"),
    (dict(max_abundance=0.3), "max_abundance"),
    (dict(max_abundance=1.2), "max_abundance"),
    (dict(max_abundance="all"), "max_abundance"),
])
def test_bad_parameters(kwargs, words):
    with pytest.raises(DeepGUError, match=words):
        make_scene(**kwargs)


def test_bad_library_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("band,a\n1,0.5\n2,0.6\n")
    with pytest.raises(DeepGUError, match="wavelength"):
        load_library(str(path))
    with pytest.raises(DeepGUError, match="not found"):
        load_library(str(tmp_path / "missing.csv"))
