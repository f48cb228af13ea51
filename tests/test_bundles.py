"""Bundle selection: recall of planted pure pixels, streaming == whole array, exclusivity, errors."""

import numpy as np
import pytest

from core.extraction.bundles import MAX_ANGLE_PIXELS, BundleSelector, local_purity, select_bundles, spectral_angles
from core.errors import DeepGUError
from core.solvers.fcls import fcls
from core.jobs import bundles as bundles_job
from core.files.library import read_spectra, write_spectra
from core.files.raster_io import georeference, write_raster
from core.evaluation.synthetic import make_scene

L, P, N_MIXED, N_PURE = 40, 3, 3000, 120


@pytest.fixture(scope="module")
def scene():
    """Random endmembers, Dirichlet mixtures, N_PURE noisy pure pixels per material, shuffled."""
    rng = np.random.default_rng(0)
    M = rng.uniform(0.1, 0.9, (L, P))
    A = rng.dirichlet(np.ones(P), N_MIXED).T
    labels = np.concatenate([np.full(N_MIXED, -1), np.repeat(np.arange(P), N_PURE)])
    A = np.concatenate([A, np.repeat(np.eye(P), N_PURE, axis=1)], axis=1)
    Y = M @ A + 0.005 * rng.standard_normal((L, A.shape[1]))
    order = rng.permutation(Y.shape[1])
    return Y[:, order], M, labels[order]


def test_spectral_angles_match_definition():
    rng = np.random.default_rng(1)
    Y, M = rng.normal(size=(5, 7)), rng.normal(size=(5, 2))
    Y[:, 3] = 0.0
    expected = np.array([[np.arccos(np.clip(m @ y / (np.linalg.norm(m) * np.linalg.norm(y)), -1, 1))
                          if np.any(y) else np.pi / 2 for y in Y.T] for m in M.T])
    np.testing.assert_allclose(spectral_angles(Y, M), expected, atol=1e-12)
    np.testing.assert_allclose(spectral_angles(M, M).diagonal(), 0.0, atol=1e-6)


def test_nearest_finds_planted_pure_pixels(scene):
    Y, M, labels = scene
    for p, (spectra, indices) in enumerate(select_bundles(Y, M, "nearest", n_pixels=100)):
        assert spectra.shape == (L, 100)
        np.testing.assert_array_equal(spectra, Y[:, indices])
        assert np.mean(labels[indices] == p) >= 0.9


def test_nearest_equals_brute_force(scene):
    Y, M, _ = scene
    angles = spectral_angles(Y, M)
    owner = angles.argmin(axis=0)
    for p, (_, indices) in enumerate(select_bundles(Y, M, "nearest", n_pixels=50)):
        mine = np.flatnonzero(owner == p)
        expected = mine[np.argsort(angles[p, mine], kind="stable")[:50]]
        np.testing.assert_array_equal(indices, expected)


@pytest.mark.parametrize("method", ["nearest", "angle"])
def test_streaming_equals_whole_array(scene, method):
    Y, M, _ = scene
    whole = select_bundles(Y, M, method, n_pixels=60, max_angle_deg=4.0)
    selector = BundleSelector(M, method, n_pixels=60, max_angle_deg=4.0 if method == "angle" else None)
    cuts = [0, 1, 517, 518, 1700, 2900, Y.shape[1]]
    for start, stop in reversed(list(zip(cuts[:-1], cuts[1:]))):  # odd block sizes, reverse order
        selector.update(Y[:, start:stop], np.arange(start, stop))
    for (s1, i1), (s2, i2) in zip(whole, selector.result()):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)


def test_ties_keep_smallest_indices():
    M = np.eye(3)[:, :2]
    Y = np.repeat(np.eye(3)[:, :2], 6, axis=1)  # six identical copies of each endmember
    selector = BundleSelector(M, n_pixels=4, min_pixels=1)
    selector.update(Y[:, 6:], np.arange(6, 12))
    selector.update(Y[:, :6], np.arange(6))
    assert [list(i) for _, i in selector.result()] == [[0, 1, 2, 3], [6, 7, 8, 9]]


def test_bundles_are_exclusive_and_owned(scene):
    Y, M, _ = scene
    angles = spectral_angles(Y, M)
    bundles = select_bundles(Y, M, "angle", max_angle_deg=20.0)
    all_indices = np.concatenate([i for _, i in bundles])
    assert len(np.unique(all_indices)) == len(all_indices)
    for p, (_, indices) in enumerate(bundles):
        assert np.all(angles[:, indices].argmin(axis=0) == p)


def test_angle_method_takes_all_within_threshold(scene):
    Y, M, _ = scene
    angles = spectral_angles(Y, M)
    limit = np.deg2rad(3.0)
    for p, (_, indices) in enumerate(select_bundles(Y, M, "angle", max_angle_deg=3.0)):
        expected = np.flatnonzero((angles.argmin(axis=0) == p) & (angles[p] <= limit))
        assert len(expected) < MAX_ANGLE_PIXELS
        np.testing.assert_array_equal(np.sort(indices), expected)


def test_invalid_pixels_are_skipped():
    M = np.eye(4)[:, :2] + 0.1
    Y = np.repeat(M, 20, axis=1)
    Y[:, 0] = np.nan
    Y[:, 1] = 0.0
    for _, indices in select_bundles(Y, M, n_pixels=50):
        assert 0 not in indices and 1 not in indices


def test_too_few_pixels_names_material(scene):
    Y, M, _ = scene
    ghost = np.zeros((L, 1))
    ghost[0] = 1.0  # a direction no pixel is close to
    with pytest.raises(DeepGUError, match=r"material 4 \(ghost\) has only \d+ bundle pixels"):
        select_bundles(Y, np.hstack([M, ghost]), "angle", max_angle_deg=2.0, names=["a", "b", "c", "ghost"])


def test_bad_arguments():
    M = np.eye(3)
    with pytest.raises(DeepGUError, match="unknown bundle method"):
        select_bundles(np.eye(3), M, "best")
    with pytest.raises(DeepGUError, match="maximum angle"):
        BundleSelector(M, "angle")
    with pytest.raises(DeepGUError, match="3 bands"):
        BundleSelector(M).update(np.ones((4, 2)), [0, 1])


def test_auto_bundles_collect_vertices(scene):
    Y, M, labels = scene
    bundles = select_bundles(Y, M, "auto", max_angle_deg=3.0, n_subsets=30, min_pixels=3, seed=0)
    again = select_bundles(Y, M, "auto", max_angle_deg=3.0, n_subsets=30, min_pixels=3, seed=0)
    angles = spectral_angles(Y, M)
    for p, ((_, indices), (_, indices2)) in enumerate(zip(bundles, again)):
        np.testing.assert_array_equal(indices, indices2)
        assert len(np.unique(indices)) == len(indices) >= 3
        assert np.all(angles[p, indices] <= np.deg2rad(3.0))
        assert np.mean(labels[indices] == p) >= 0.9
    Y = Y.copy()
    Y[:, ::2] = np.nan  # invalid pixels are never drawn into VCA subsets
    for _, indices in select_bundles(Y, M, "auto", max_angle_deg=3.0, n_subsets=10, min_pixels=1, seed=1):
        assert np.all(indices % 2 == 1)


# --- the "spatial" method: local purity of abundances ---------------------------------------------

def brute_force_purity(A, valid, window):
    """Mean of each abundance over the valid pixels of the window around every valid pixel, by loops."""
    P, rows, cols = A.shape
    half = window // 2
    out = np.full(A.shape, np.nan)
    for r in range(rows):
        for c in range(cols):
            if not valid[r, c]:
                continue
            r0, r1, c0, c1 = max(0, r - half), min(rows, r + half + 1), max(0, c - half), min(cols, c + half + 1)
            inside = valid[r0:r1, c0:c1]
            out[:, r, c] = A[:, r0:r1, c0:c1][:, inside].mean(axis=1)
    return out


@pytest.mark.parametrize("window", [1, 3, 5])
def test_local_purity_equals_brute_force(window):
    rng = np.random.default_rng(3)
    A = rng.dirichlet(np.ones(3), size=(9, 11)).transpose(2, 0, 1)
    valid = rng.random((9, 11)) > 0.2
    A[:, ~valid] = np.nan  # invalid pixels must not leak into their neighbours' means
    np.testing.assert_allclose(local_purity(A, valid, window), brute_force_purity(A, valid, window), atol=1e-12)
    with pytest.raises(DeepGUError, match="odd"):
        local_purity(A, valid, 4)


def test_spatial_selection_equals_brute_force(scene):
    Y, M, _ = scene
    rng = np.random.default_rng(5)
    purity = rng.dirichlet(np.ones(P), Y.shape[1]).T
    purity[:, :300] = np.round(purity[:, :300], 1)  # ties, broken by the seeded hash of the index
    purity[:, 7] = np.nan                          # skipped
    owner = np.nanargmax(np.nan_to_num(purity, nan=-1), axis=0)
    rank = []                                       # an independent seeded hash: Python ints, mod 2^64
    for n in range(Y.shape[1]):
        x = (n + 0x9E3779B97F4A7C15 * 8) % 2 ** 64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) % 2 ** 64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) % 2 ** 64
        rank.append(x ^ (x >> 31))
    ties = np.argsort(np.argsort(np.array(rank, dtype=np.uint64)))
    for p, (spectra, indices) in enumerate(select_bundles(Y, M, "spatial", n_pixels=40, purity=purity, seed=7)):
        mine = np.flatnonzero((owner == p) & np.all(np.isfinite(purity), axis=0))
        expected = mine[np.lexsort((ties[mine], -purity[p, mine]))[:40]]
        np.testing.assert_array_equal(indices, expected)
        np.testing.assert_array_equal(spectra, Y[:, indices])
    with pytest.raises(DeepGUError, match="needs abundances"):
        select_bundles(Y, M, "spatial")


def test_spatial_bundles_are_purer_than_nearest_on_dc1():
    """Known truth: on DC1 (per-pixel variability of shape) homogeneous regions hold the pure pixels."""
    scene = make_scene("DC1", 40, 40, seed=0)
    Y = scene.image.reshape(scene.image.shape[0], -1).astype(np.float64)
    A_true = scene.abundances.reshape(3, -1)
    A_fcls = fcls(Y, scene.reference)
    purity = local_purity(A_fcls.reshape(3, 40, 40)).reshape(3, -1)
    true_purity = {}
    for method in ("nearest", "spatial"):
        bundles = select_bundles(Y, scene.reference, method, n_pixels=60, purity=purity)
        true_purity[method] = np.mean([A_true[p, indices].mean() for p, (_, indices) in enumerate(bundles)])
    assert true_purity["spatial"] >= 0.97
    assert true_purity["spatial"] > true_purity["nearest"]


def test_spatial_job_streams_like_the_whole_array(tmp_path):
    scene = make_scene("DC2", 30, 20, seed=2)
    L = scene.image.shape[0]
    image, abundances = str(tmp_path / "scene.tif"), str(tmp_path / "fcls.tif")
    data = scene.image.copy()
    data[:, 3, 4] = np.nan                                    # an invalid pixel in the image
    write_raster(image, data, georeference(30, 20), wavelengths=scene.wavelengths)
    Y = data.reshape(L, -1).astype(np.float64)
    A = fcls(np.nan_to_num(Y), scene.reference).reshape(3, 30, 20)
    A[:, 3, 4] = np.nan
    write_raster(abundances, A.astype(np.float32), georeference(30, 20), band_names=scene.names)
    em = str(tmp_path / "em.csv")
    write_spectra(em, scene.reference, scene.names, scene.wavelengths)
    out = str(tmp_path / "b.csv")
    # a budget of 2 rows per strip: 15 strips, each read with a 2-row halo of abundances
    memory_mb = 2 * 20 * 16 * L / 2 ** 20
    bundles_job.run(image, em, out, method="spatial", n_pixels=25, abundances_path=abundances, memory_mb=memory_mb)
    streamed = read_spectra(out)
    valid = np.all(np.isfinite(Y), axis=0)
    purity = local_purity(A, valid.reshape(30, 20)).reshape(3, -1)
    expected = select_bundles(Y, scene.reference, "spatial", n_pixels=25, purity=purity)
    flat = np.asarray(streamed.rows) * 20 + np.asarray(streamed.cols)
    np.testing.assert_array_equal(flat, np.concatenate([i for _, i in expected]))
    np.testing.assert_allclose(streamed.spectra, np.concatenate([s for s, _ in expected], axis=1), rtol=1e-6)
    wrong = str(tmp_path / "two_bands.tif")
    write_raster(wrong, A[:2].astype(np.float32), georeference(30, 20))
    with pytest.raises(DeepGUError, match="2 bands but the endmember file has 3 materials"):
        bundles_job.run(image, em, out, method="spatial", abundances_path=wrong)
    with pytest.raises(DeepGUError, match="needs an abundance raster"):
        bundles_job.run(image, em, out, method="spatial")


def test_spatial_material_that_is_purest_nowhere_gets_its_purest_pixels_among_all():
    """Material 3's purity is never the largest: its bundle falls back to its own top purities."""
    rng = np.random.default_rng(0)
    M = rng.uniform(0.1, 1.0, (6, 3))
    Y = rng.uniform(0.1, 1.0, (6, 40))
    purity = np.stack([np.linspace(0.9, 0.5, 40), np.linspace(0.5, 0.9, 40), np.linspace(0.1, 0.4, 40)])
    bundles = select_bundles(Y, M, "spatial", n_pixels=5, min_pixels=3, purity=purity)
    expected = np.argsort(-purity[2], kind="stable")[:5]
    np.testing.assert_array_equal(np.sort(bundles[2][1]), np.sort(expected))
    owner = purity[:2].argmax(0)
    assert set(bundles[0][1]) <= set(np.flatnonzero(owner == 0))
    assert set(bundles[1][1]) <= set(np.flatnonzero(owner == 1))
