"""Reference endmember methods on the accuracy benchmark's scenes: SAM to the reference and FCLS RMSE_A.

For each scene of ``bench/accuracy_scenes.py`` and seed, every method of ``deepgu:endmembers``
(core.endmembers: one VCA run, VCA best of 12 restarts, N-FINDR, and the refinement the workflow
uses) extracts P endmembers; they are matched to the reference spectra, and the script prints the
spectral angle (degrees) of each material and FCLS's RMSE_A (eq. 14) with them. Samson needs
``../shared/data/samson/`` (skipped otherwise).

    .venv/bin/python bench/bench_endmembers.py [--scenes samson DC1-usgs ...] [--seeds 0 1 2 3 4]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.accuracy_scenes import available, scene as load_scene  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.endmembers import best_start, image_strips, nfindr, refine_purest, vca_best, vca_starts  # noqa: E402
from core.fcls import fcls  # noqa: E402
from core.metrics import match_materials  # noqa: E402
from core.vca import vca  # noqa: E402


def extract(method, Y, P, seed):
    X = Y.reshape(Y.shape[0], -1)
    if method == "vca":
        return vca(X, P, seed=seed).endmembers
    if method == "vca-best":
        return vca_best(X, P, seed=seed)[0]
    if method == "nfindr":
        return nfindr(X, P, seed=seed)[0]
    starts = vca_starts(X, P, seed=seed)
    return refine_purest(image_strips(Y), starts[best_start(Y, starts)[0]])[0]


def score(M, scene):
    """(angles (P,) degrees in the reference's order, FCLS RMSE_A)."""
    X = scene.image.reshape(scene.image.shape[0], -1).astype(np.float64)
    truth = scene.abundances.reshape(scene.abundances.shape[0], -1)
    A = fcls(X, M)
    perm = match_materials(A, truth)
    M = M[:, perm]
    cos = np.sum(M * scene.reference, 0) / (np.linalg.norm(M, axis=0) * np.linalg.norm(scene.reference, axis=0))
    return np.degrees(np.arccos(np.clip(cos, -1, 1))), float(np.sqrt(np.mean((A[perm] - truth) ** 2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    print(machine_line())
    methods = ("vca", "vca-best", "nfindr", "refined")
    for name in args.scenes or available():
        seeds = [0] if name == "samson" else args.seeds
        totals = {m: [] for m in methods}
        for seed in seeds:
            scene = load_scene(name, seed)
            Y = scene.image.astype(np.float64)
            for method in methods:
                start = time.perf_counter()
                angles, rmse = score(extract(method, Y, scene.abundances.shape[0], seed), scene)
                totals[method].append(rmse)
                print("%-17s seed %d %-9s RMSE_A %.4f  SAM per material (deg) %s  (%.1f s)"
                      % (name, seed, method, rmse, " ".join("%s %.1f" % (m, a) for m, a in
                                                             zip(scene.materials, angles)),
                         time.perf_counter() - start), flush=True)
        print("%-17s mean FCLS RMSE_A over seeds %s: %s" % (name, seeds, "  ".join(
            "%s %.4f (worst %.4f)" % (m, np.mean(v), np.max(v)) for m, v in totals.items())), flush=True)


if __name__ == "__main__":
    main()
