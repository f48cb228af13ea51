"""The scenes of the accuracy benchmark of record (issue 9), in memory, each with its truth.

| name               | source                                                   | size      | P | max abundance |
|--------------------|----------------------------------------------------------|-----------|---|---------------|
| `samson`           | real Samson scene and its public reference (shared data) | 95 x 95   | 3 | (real)        |
| `DC1-usgs`         | synthetic DC1, shipped USGS library                      | 70 x 70   | 3 | 1             |
| `DC2-usgs`         | synthetic DC2, shipped USGS library                      | 50 x 50   | 3 | 1             |
| `DC1-other`        | synthetic DC1, bench/data/samson_band_library.csv        | 70 x 70   | 4 | 1             |
| `DC2-other`        | synthetic DC2, bench/data/samson_band_library.csv        | 50 x 50   | 4 | 1             |
| `DC1-other-nopure` | as `DC1-other`, no pixel above 0.8                       | 70 x 70   | 4 | 0.8           |
| `lake-roads`       | :func:`lake_roads`, shipped USGS library                 | 100 x 100 | 4 | 1             |

The other library (``bench/data/PROVENANCE.md``) has 156 bands at 401-889 nm and two spectrally
close materials, rock and soil (6.2 degrees apart). Synthetic scenes are at 30 dB SNR; seed s
gives a different scene for each s (the same seed gives the same scene). Samson is the same
real scene for every seed; it needs ``../shared/data/samson/`` (not shipped with the plugin).

``lake-roads`` is the failure class of issue 22 (a real 4-material scene where the references merged two
close materials and split a dark one): a lake of dark water whose brightness varies 1.3-1.6x, mixed along its
shores, tree and dirt fields around it, and roads (13.1 degrees from dirt) in thin lines a few pixels wide
covering 5-10 % of the scene, at 33 dB.
"""

import os
from dataclasses import dataclass

import numpy as np

from core.evaluation.synthetic import make_scene

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
SAMSON = os.path.join(SHARED_DATA, "samson")
OTHER_LIBRARY = os.path.join(ROOT, "bench", "data", "samson_band_library.csv")
SAMSON_WAVELENGTHS = np.linspace(401.0, 889.0, 156)     # shared/data/README.md: 156 bands, 401-889 nm
SAMSON_NAMES = ["soil", "tree", "water"]                # the column order of reference_E.mat
SNR_DB = 30.0

# name -> (kind, side, library (None = shipped), materials, max abundance)
SYNTHETIC = {
    "DC1-usgs": ("DC1", 70, None, 3, 1.0),
    "DC2-usgs": ("DC2", 50, None, 3, 1.0),
    "DC1-other": ("DC1", 70, OTHER_LIBRARY, 4, 1.0),
    "DC2-other": ("DC2", 50, OTHER_LIBRARY, 4, 1.0),
    "DC1-other-nopure": ("DC1", 70, OTHER_LIBRARY, 4, 0.8),
}
LAKE_ROADS = "lake-roads"
NAMES = ("samson",) + tuple(SYNTHETIC) + (LAKE_ROADS,)


@dataclass
class Scene:
    """A benchmark scene and its truth.

    name         str                          scene name (one of NAMES)
    image        (L, rows, cols) float32      observed reflectance
    abundances   (P, rows, cols) float32      true (reference) abundances, on the unit simplex
    reference    (L, P) float64               reference spectra of the materials
    wavelengths  (L,) float64                 band centres, nm
    materials    list of P str                material names
    endmembers   (L, P, rows, cols) float32   true per-pixel endmembers (synthetic scenes; None for real ones)
    """

    name: str
    image: np.ndarray
    abundances: np.ndarray
    reference: np.ndarray
    wavelengths: np.ndarray
    materials: list
    endmembers: np.ndarray = None

    @property
    def n_materials(self):
        return self.abundances.shape[0]


def samson_available():
    return all(os.path.isfile(os.path.join(SAMSON, f))
               for f in ("real_data_samson.mat", "reference_A_true.mat", "reference_E.mat"))


def samson():
    """The real Samson scene (156, 95, 95) with its public reference abundances and spectra."""
    from scipy.io import loadmat
    if not samson_available():
        raise FileNotFoundError("the Samson scene needs %s/{real_data_samson,reference_A_true,reference_E}.mat"
                                % SAMSON)
    cube = loadmat(os.path.join(SAMSON, "real_data_samson.mat"))["r_cube"]          # (rows, cols, L)
    truth = loadmat(os.path.join(SAMSON, "reference_A_true.mat"))["A_true"]         # (rows, cols, P)
    reference = loadmat(os.path.join(SAMSON, "reference_E.mat"))["E"]               # (L, P)
    return Scene(name="samson", image=np.ascontiguousarray(cube.transpose(2, 0, 1), dtype=np.float32),
                 abundances=np.ascontiguousarray(truth.transpose(2, 0, 1), dtype=np.float32),
                 reference=reference.astype(np.float64), wavelengths=SAMSON_WAVELENGTHS.copy(),
                 materials=list(SAMSON_NAMES))


def synthetic(name, seed):
    """The synthetic scene ``name`` (a key of SYNTHETIC) for ``seed``."""
    kind, side, library, n_materials, max_abundance = SYNTHETIC[name]
    scene = make_scene(kind, side, side, snr_db=SNR_DB, seed=seed, n_materials=n_materials, library=library,
                       max_abundance=max_abundance)
    return Scene(name=name, image=scene.image, abundances=scene.abundances, reference=scene.reference,
                 wavelengths=scene.wavelengths, materials=scene.names, endmembers=scene.endmembers)


def scene(name, seed=0):
    """One benchmark scene by name."""
    if name == "samson":
        return samson()
    if name == LAKE_ROADS:
        return lake_roads(seed)
    if name not in SYNTHETIC:
        raise ValueError("unknown scene %r: use one of %s" % (name, ", ".join(NAMES)))
    return synthetic(name, seed)


LAKE_SIDE = 100
LAKE_SHARE = 0.2                # of the scene under water (before the shores' mixing)
SHORE_WIDTH = 3.0               # pixels over which water goes from 0 to 1 across the shore
WATER_BRIGHTNESS = (1.3, 1.6)   # the range of the ratio of the brightest to the darkest water, drawn per seed
ROAD_HALF_WIDTH = (0.5, 1.0)    # pixels; a road's abundance is its coverage of the pixel
ROAD_SHARE = (0.05, 0.10)       # share of the pixels where road is the largest abundance
LAND_VARIABILITY = 0.1          # amplitude of the DC2-type band-wise factors of tree, dirt and road
LAKE_SNR_DB = 33.0


def _road_coverage(rng, side):
    """(side, side) coverage of one straight road of random direction through the scene, in [0, 1]."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5
    angle = rng.uniform(0, np.pi)
    centre = rng.uniform(0.2, 0.8, size=2) * side
    distance = np.abs((xx - centre[0]) * np.sin(angle) - (yy - centre[1]) * np.cos(angle))
    return np.clip(rng.uniform(*ROAD_HALF_WIDTH) + 0.5 - distance, 0.0, 1.0)


def lake_roads(seed=0):
    """The ``lake-roads`` scene for ``seed``: (198, 100, 100) from the shipped library's tree, water, dirt, road.

    Water: a Gaussian random field above its 80th percentile is the lake; its abundance is
    ``clip(0.5 + d / SHORE_WIDTH, 0, 1)`` with ``d`` the signed distance (pixels) to the shore, and its
    spectrum is the library's scaled by a smooth brightness factor whose ratio over the wet pixels is drawn in
    WATER_BRIGHTNESS, around 1. Land (``1 - water``): roads (straight lines, coverage of a pixel by a strip of
    half-width in ROAD_HALF_WIDTH, added until road dominates ROAD_SHARE[0] of the pixels), the rest tree and
    dirt by a two-field softmax as in :func:`core.evaluation.synthetic.abundance_maps`. Tree, dirt and road vary as
    DC2 (smooth in space and wavelength) with amplitude LAND_VARIABILITY. White noise at LAKE_SNR_DB.
    """
    from scipy.ndimage import distance_transform_edt
    from core.evaluation.synthetic import gaussian_fields, load_library, smooth_spectral_basis

    wavelengths, library, names = load_library()
    rng = np.random.default_rng(1000 + int(seed))
    side = LAKE_SIDE
    lake_field, brightness_field, tree_field, dirt_field = gaussian_fields(4, side, side, 12.0, rng)
    lake = lake_field > np.quantile(lake_field, 1.0 - LAKE_SHARE)
    signed = distance_transform_edt(lake) - distance_transform_edt(~lake)
    water = np.clip(0.5 + signed / SHORE_WIDTH, 0.0, 1.0)
    road = np.zeros((side, side))
    while np.mean((road * (1 - water)) > 0.5) < ROAD_SHARE[0]:
        road = np.maximum(road, _road_coverage(rng, side))
    road *= 1.0 - water
    tree_share = 1.0 / (1.0 + np.exp((dirt_field - tree_field) / 0.3))
    land = 1.0 - water - road
    abundances = np.stack([land * tree_share, water, land * (1.0 - tree_share), road])    # library order

    L, P, N = library.shape[0], 4, side * side
    ratio = rng.uniform(*WATER_BRIGHTNESS)
    wet = water > 0
    unit = np.clip((brightness_field - brightness_field[wet].min()) / np.ptp(brightness_field[wet]), 0.0, 1.0)
    factors = np.empty((L, P, N))
    factors[:, 1] = ratio ** (unit.ravel() - 0.5)                                     # brightness, scalar per pixel
    basis = smooth_spectral_basis(wavelengths)
    for p in (0, 2, 3):
        fields = gaussian_fields(basis.shape[0], side, side, 12.0, rng).reshape(basis.shape[0], N)
        fields /= np.abs(fields).max(axis=1, keepdims=True)
        weights = rng.dirichlet(np.ones(basis.shape[0]))
        factors[:, p] = 1.0 + LAND_VARIABILITY * basis.T @ (weights[:, None] * fields)
    endmembers = factors * library[:, :, None]
    clean = np.einsum("lpn,pn->ln", endmembers, abundances.reshape(P, N))
    sigma = np.sqrt(np.mean(clean ** 2) / 10.0 ** (LAKE_SNR_DB / 10.0))
    image = clean + sigma * rng.standard_normal(clean.shape)
    return Scene(name=LAKE_ROADS, image=image.reshape(L, side, side).astype(np.float32),
                 abundances=abundances.astype(np.float32), reference=library.astype(np.float64),
                 wavelengths=wavelengths, materials=list(names),
                 endmembers=endmembers.reshape(L, P, side, side).astype(np.float32))


def available():
    """The scene names that can be built here (Samson only where the shared data is)."""
    return [name for name in NAMES if name != "samson" or samson_available()]


def scenes(seed=0, names=None):
    """The benchmark's scenes for ``seed``: a list of :class:`Scene`, all available ones by default."""
    return [scene(name, seed) for name in (available() if names is None else names)]


def variability_angles(bench_scene):
    """Per material p: mean angle (degrees) of the per-pixel endmembers m_pn to m_p, and the share of pixels
    whose m_pn is nearer in angle to another material's reference than to m_p. Synthetic scenes only."""
    L, P = bench_scene.reference.shape
    M = bench_scene.endmembers.reshape(L, P, -1).astype(np.float64)
    M /= np.linalg.norm(M, axis=0, keepdims=True)
    R = bench_scene.reference / np.linalg.norm(bench_scene.reference, axis=0)
    angles = np.degrees(np.arccos(np.clip(np.einsum("lpn,lq->pqn", M, R), -1.0, 1.0)))      # (p, q, n)
    own = np.array([angles[p, p].mean() for p in range(P)])
    nearer_other = np.array([np.mean(angles[p].argmin(axis=0) != p) for p in range(P)])
    return own, nearer_other


if __name__ == "__main__":        # .venv/bin/python -m bench.accuracy_scenes: how far variability moves spectra
    from bench.measure import machine_line
    print(machine_line())
    print("scene, seed 0: per material, mean angle of m_pn to m_p (deg) / share of pixels nearer another reference")
    for name in SYNTHETIC:
        s = synthetic(name, 0)
        own, nearer = variability_angles(s)
        print("%-17s %s" % (name, "  ".join("%s %.1f / %.1f %%" % (m, a, 100 * f)
                                               for m, a, f in zip(s.materials, own, nearer))))
