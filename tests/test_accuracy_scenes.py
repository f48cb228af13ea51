"""The accuracy benchmark's scenes (bench/accuracy_scenes.py): shapes, truth and the promised properties."""

import numpy as np
import pytest

from bench.accuracy_scenes import NAMES, OTHER_LIBRARY, SYNTHETIC, samson, samson_available, scene
from core.solvers.fcls import fcls
from core.evaluation.synthetic import load_library


def _angles_degrees(M):
    unit = M / np.linalg.norm(M, axis=0)
    return np.degrees(np.arccos(np.clip(unit.T @ unit, -1.0, 1.0)))


def test_other_library_has_a_close_pair_and_differs_from_the_shipped_one():
    wavelengths, M, names = load_library(OTHER_LIBRARY)
    assert names == ["rock", "soil", "tree", "water"] and M.shape == (156, 4)
    np.testing.assert_allclose(wavelengths, np.linspace(401, 889, 156), atol=0.006)
    angles = _angles_degrees(M)
    assert angles[0, 1] == pytest.approx(6.24, abs=0.01)                   # PROVENANCE.md's figure
    off_diagonal = angles[~np.eye(4, dtype=bool)]
    assert np.sum(off_diagonal < 10) == 2 and np.all(M > 0) and np.all(M < 1)
    assert load_library()[1].shape[0] != M.shape[0]


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_scenes(name):
    kind, side, _, n_materials, max_abundance = SYNTHETIC[name]
    first, again, other = scene(name, 0), scene(name, 0), scene(name, 1)
    L = first.wavelengths.size
    assert first.image.shape == (L, side, side) and first.image.dtype == np.float32
    assert first.abundances.shape == (n_materials, side, side) and first.reference.shape == (L, n_materials)
    assert len(first.materials) == n_materials and first.endmembers.shape == (L, n_materials, side, side)
    np.testing.assert_allclose(first.abundances.sum(axis=0), 1.0, atol=1e-5)
    assert first.abundances.max() == pytest.approx(max_abundance, abs=0.05)
    assert first.abundances.max() <= max_abundance + 1e-6
    np.testing.assert_array_equal(first.image, again.image)
    assert not np.allclose(first.image, other.image)


def test_scene_names():
    assert NAMES[0] == "samson" and len(NAMES) == 7 and NAMES[-1] == "lake-roads"
    with pytest.raises(ValueError, match="unknown scene"):
        scene("DC3", 0)


@pytest.mark.skipif(not samson_available(), reason="shared Samson data not available")
def test_samson_reference_is_fcls_with_the_reference_spectra():
    s = samson()
    assert s.image.shape == (156, 95, 95) and s.abundances.shape == (3, 95, 95) and s.reference.shape == (156, 3)
    A = fcls(s.image.reshape(156, -1), s.reference).reshape(s.abundances.shape)
    np.testing.assert_allclose(A, s.abundances, atol=1e-4)


def test_variability_angles_against_a_direct_computation():
    from bench.accuracy_scenes import variability_angles
    s = scene("DC1-other", 0)
    own, nearer = variability_angles(s)
    rock = s.endmembers[:, 0].reshape(s.reference.shape[0], -1)
    angles = _angles_degrees(np.column_stack([s.reference, rock]))[:4, 4:]        # (references, pixels)
    assert own[0] == pytest.approx(angles[0].mean(), rel=1e-4)
    assert nearer[0] == pytest.approx(np.mean(angles.argmin(axis=0) != 0))
    assert 0 < nearer[0] < 0.5 and nearer[2] == 0 and nearer[3] == 0    # only the close pair crosses over


def test_facet_oracle_vertices_are_the_intersections_of_planted_facets():
    """bench_endmembers --facet-oracle: facets fitted to points lying exactly on a simplex's facets give back
    its vertices, vertex p being the one off facet p (planted 4-vertex simplex in R^3)."""
    from bench.bench_endmembers import facet_vertices
    rng = np.random.default_rng(0)
    V = rng.normal(size=(3, 4))
    points = []
    for p in range(4):
        weights = rng.dirichlet(np.ones(4), size=50)
        weights[:, p] = 0.0
        points.append(V @ (weights / weights.sum(axis=1, keepdims=True)).T)
    group = np.repeat(np.arange(4), 50)                                  # the facet each point lies on
    np.testing.assert_allclose(facet_vertices(np.hstack(points), [group == p for p in range(4)]), V, atol=1e-9)


def test_lake_roads_is_issue_22s_failure_class():
    """A dark material whose brightness varies 1.3-1.6x and mixes along shores, two materials 10-15 degrees apart
    of which one dominates 5-10 % of the pixels in lines a pixel or two wide, 4 materials, 100 x 100, about
    33 dB; FCLS with the true spectra does well on it. Deterministic per seed."""
    from core.extraction.bundles import local_purity
    first, again = scene("lake-roads", 0), scene("lake-roads", 0)
    np.testing.assert_array_equal(first.image, again.image)
    assert not np.allclose(first.image, scene("lake-roads", 1).image)
    for seed in range(5):
        s = scene("lake-roads", seed)
        L = s.reference.shape[0]
        assert s.image.shape == (L, 100, 100) and s.abundances.shape == (4, 100, 100) and L == 198
        assert s.materials == ["tree", "water", "dirt", "road"]
        np.testing.assert_allclose(s.abundances.sum(axis=0), 1.0, atol=1e-5)
        assert s.abundances.min() >= 0
        angles = _angles_degrees(s.reference)
        assert 10 < angles[2, 3] < 15 and angles[~np.eye(4, dtype=bool)].min() == angles[2, 3]
        A = s.abundances.reshape(4, -1)
        road_share = np.mean(A.argmax(axis=0) == 3)
        assert 0.05 <= road_share <= 0.10
        # thin (core.extraction.endmembers.thin_materials): the road is the largest 5 x 5 mean at under half as
        # many pixels
        assert np.mean(local_purity(s.abundances, window=5).reshape(4, -1).argmax(axis=0) == 3) < 0.5 * road_share
        water = s.endmembers[:, 1].reshape(L, -1)[:, A[1] > 0]
        brightness = np.linalg.norm(water, axis=0)
        assert 1.3 <= brightness.max() / brightness.min() <= 1.6
        assert np.linalg.norm(s.reference[:, 1]) < 0.2 * np.linalg.norm(s.reference[:, 3])      # dark
        shore = (A[1] > 0.05) & (A[1] < 0.95)
        assert shore.sum() > 0.1 * np.sum(A[1] >= 0.95)                                       # mixed shores
        clean = np.einsum("lpn,pn->ln", s.endmembers.reshape(L, 4, -1).astype(np.float64), A)
        noise = s.image.reshape(L, -1) - clean
        assert 10 * np.log10(np.sum(clean ** 2) / np.sum(noise ** 2)) == pytest.approx(33.0, abs=0.2)
        X = s.image.reshape(L, -1).astype(np.float64)
        assert np.sqrt(np.mean((fcls(X, s.reference) - A) ** 2)) < 0.025
