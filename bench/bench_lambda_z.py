"""Is ``auto`` lambda_Z (or lambda_A) the right weight, could a noise estimate choose better? A scan per scene.

Run:  .venv/bin/python bench/bench_lambda_z.py [--scenes samson DC1-usgs ...] [--seeds 0 1] [--weight z|a]

For each scene of bench/accuracy_scenes.py and seed, the in-process pipeline at the workflow's defaults
(core.pipeline.run_pipeline: refined endmembers, FCLS, spatial bundles, VAEs) gives the model; then
DeepGU runs with lambda_Z = factor x the ``auto`` value (core.solvers.regularisation: the median FCLS misfit
energy rho^2) for factors 0.1 ... 100, every other setting at its default, and each result is scored by
RMSE_A (eq. 14, materials matched). Printed with it: rho^2 and the noise energy per pixel estimated
from the data alone (HySime's regression of every band on all the others, median over pixels), and
their ratio. A discrepancy-principle rule would make lambda_Z depend on that ratio: this shows whether
the best factor follows it. ``--weight a`` scans lambda_A instead (factors 0 ... 4 of its ``auto`` value,
``KAPPA_A sigma_a curvature``), lambda_Z at ``auto``, and prints two other estimates of the abundance
noise relative to sigma_a: along the weakest-determined direction (:func:`weak_direction_noise`) and
without clamped abundances (:func:`unclamped_noise`), and the spread h_geo/h_min of the data curvatures
(core.solvers.regularisation.sum_zero_curvatures: the geometric mean over the smallest).
"""

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import NAMES, available, scene as load_scene  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.evaluation.metrics import match_materials  # noqa: E402
from core.pipeline import run_pipeline  # noqa: E402
from core.solvers.regularisation import (abundance_noise, curvature_directions, measure_levels, resolve,  # noqa: E402
                                 sum_zero_curvatures)
from core.solvers.unmix import deepgu_unmix  # noqa: E402
from core.solvers.unmix_settings import UnmixSettings  # noqa: E402

#: factors of the ``auto`` value scanned, per weight
FACTORS = {"z": (0.1, 0.3, 1.0, 3.0, 10.0, 100.0), "a": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)}


def rmse_a(estimate, truth):
    """Eq. 14 after matching materials; (P, rows, cols) each."""
    p = truth.shape[0]
    estimate, truth = np.nan_to_num(estimate.reshape(p, -1)), truth.reshape(p, -1)
    return float(np.sqrt(((estimate[match_materials(estimate, truth)] - truth) ** 2).mean()))


def weak_direction_noise(A, M):
    """sigma_a (core.solvers.regularisation.abundance_noise) of the map ``w^T A``, A (P, rows, cols), with w the unit
    sum-zero direction of the smallest curvature of M^T M (M (L, P)): the noise where the data pin A least."""
    w = curvature_directions(M)[1][:, 0]
    return abundance_noise(np.tensordot(w, A, 1)[None])


def unclamped_noise(A, tol=1e-6):
    """sigma_a of A (P, rows, cols) over the 2 x 2 blocks where a material is strictly inside (0, 1) in all four
    pixels: clamped blocks have zero detail and pull the median down."""
    return abundance_noise(A, (A > tol) & (A < 1 - tol))


def noise_energy(pixels):
    """Median per-pixel noise energy ||e_n||^2 of ``pixels`` (L, N): each band regressed on all the others
    (HySime, Bioucas-Dias & Nascimento 2008); e_ln = (X R^-1)_nl / (R^-1)_ll with R = X^T X, X centred (N, L)."""
    X = (pixels - pixels.mean(axis=1, keepdims=True)).T
    inverse = np.linalg.pinv(X.T @ X)
    residual = X @ inverse / np.diag(inverse)
    return float(np.median((residual ** 2).sum(axis=1)))


def scene_pipelines(names, seeds):
    """Yield ``(name, seed, bench_scene, Y (L, rows, cols) float64, mask (rows, cols), pipeline)`` for every scene of
    ``names`` (default: all available here) and seed: the workflow's steps in process (one DeepGU iteration: the
    benches use its references, FCLS and VAEs). A scene whose data is missing is reported and skipped."""
    for name in names or available():
        if name not in available():
            print("%-16s skipped: its data (../shared/data/samson/) is not here" % name, flush=True)
            continue
        for seed in seeds:
            bench_scene = load_scene(name, seed)
            Y = bench_scene.image.astype(np.float64)
            mask = np.all(np.isfinite(Y), axis=0)
            yield name, seed, bench_scene, Y, mask, run_pipeline(Y, bench_scene.n_materials, seed=seed,
                                                                 settings=UnmixSettings(max_iter=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", choices=NAMES, help="default: all available here")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--weight", choices=sorted(FACTORS), default="z", help="the weight scanned (default z)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line(), flush=True)
    print("RMSE_A of DeepGU with lambda_%s = factor x auto; FCLS = the workflow's FCLS" % args.weight.upper(),
          flush=True)
    for name, seed, bench_scene, Y, mask, pipeline in scene_pipelines(args.scenes, args.seeds):
        A0 = pipeline.fcls_abundances
        levels = measure_levels(Y, pipeline.reference, A0, mask)
        noise = noise_energy(Y[:, mask])
        auto = resolve(None, None, levels)[args.weight == "a"]
        scores = []
        for factor in FACTORS[args.weight]:
            settings = UnmixSettings(**{"lambda_" + args.weight: auto * factor})
            result = deepgu_unmix(Y, pipeline.model, settings, mask=mask, A_init=np.nan_to_num(A0))
            scores.append("x%g %.4f" % (factor, rmse_a(result.abundances, bench_scene.abundances)))
        if args.weight == "a":
            A = np.nan_to_num(A0)
            h = sum_zero_curvatures(pipeline.reference)
            noise_levels = "sigma_a %.3g, weakest direction x%.2f, unclamped x%.2f; h_geo/h_min %.1f; " % (
                levels.sigma_a, weak_direction_noise(A, pipeline.reference) / levels.sigma_a,
                unclamped_noise(A) / levels.sigma_a, np.exp(np.mean(np.log(h))) / h[0])
        else:
            noise_levels = ""
        print("%-16s seed %d: rho^2 %.3g, noise %.3g, ratio %.1f; %sauto %.3g; FCLS %.4f | %s"
              % (name, seed, levels.rho2, noise, levels.rho2 / noise, noise_levels, auto,
                 rmse_a(A0, bench_scene.abundances), "  ".join(scores)), flush=True)


if __name__ == "__main__":
    main()
