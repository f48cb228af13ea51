"""The scenes of the accuracy benchmark of record (issue 9), in memory, each with its truth.

| name               | source                                                   | size    | P | max abundance |
|--------------------|----------------------------------------------------------|---------|---|---------------|
| `samson`           | real Samson scene and its public reference (shared data) | 95 x 95 | 3 | (real)        |
| `DC1-usgs`         | core.synthetic DC1, the shipped USGS library             | 70 x 70 | 3 | 1             |
| `DC2-usgs`         | core.synthetic DC2, the shipped USGS library             | 50 x 50 | 3 | 1             |
| `DC1-other`        | core.synthetic DC1, bench/data/samson_band_library.csv   | 70 x 70 | 4 | 1             |
| `DC2-other`        | core.synthetic DC2, bench/data/samson_band_library.csv   | 50 x 50 | 4 | 1             |
| `DC1-other-nopure` | as `DC1-other`, no pixel above 0.8                       | 70 x 70 | 4 | 0.8           |

The other library (``bench/data/PROVENANCE.md``) has 156 bands at 401-889 nm and two spectrally
close materials, rock and soil (6.2 degrees apart). Synthetic scenes are at 30 dB SNR; seed s
gives a different scene for each s (the same seed gives the same scene). Samson is the same
real scene for every seed; it needs ``../shared/data/samson/`` (not shipped with the plugin).
"""

import os
from dataclasses import dataclass

import numpy as np

from core.synthetic import make_scene

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
NAMES = ("samson",) + tuple(SYNTHETIC)


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
    if name not in SYNTHETIC:
        raise ValueError("unknown scene %r: use one of %s" % (name, ", ".join(NAMES)))
    return synthetic(name, seed)


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
