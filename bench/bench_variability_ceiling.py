"""How much of the synthetic scenes' variability any per-pixel model can recover: DeepGU against oracles.

Run:  .venv/bin/python bench/bench_variability_ceiling.py [--scenes DC2-usgs DC2-other DC1-usgs] [--seeds 1]

For each scene of bench/accuracy_scenes.py (synthetic ones: their true per-pixel endmembers are known)
and seed, RMSE_A (eq. 14, materials matched) of:

- ``fcls``: FCLS with the workflow's reference endmembers (core.extraction.endmembers: VCA restarts + refinement);
- ``fcls_true_refs``: FCLS with the library spectra the scene was built from;
- ``fcls_true_pixel_endmembers``: per-pixel FCLS with each pixel's *true* endmembers m_pn (the best any
  variability model could do on this noise);
- ``deepgu``: the in-process pipeline at the workflow's defaults (core.pipeline.run_pipeline);
- ``deepgu_oracle``: DeepGU with the true references and VAEs trained on 200 true per-pixel endmembers
  per material (random pixels, seeded), i.e. perfect references and perfect bundles;
- ``deepgu_oracle_free``: the same with lambda_Z = 1e-4 (codes nearly free) and 1000 training epochs.

If ``deepgu_oracle_free`` stays near ``fcls_true_refs`` while ``fcls_true_pixel_endmembers`` is far below,
the gap is not in the references, the bundles, the VAE or lambda_Z: with the sum-to-one constraint a
change of a material's brightness is explained equally well by its abundance, so one pixel does not
identify it (DC2's variability is mostly such smooth scaling). Seconds are for the whole scene.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import SYNTHETIC, scene as load_scene  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.solvers.astep import fcls_batched  # noqa: E402
from core.solvers.fcls import fcls  # noqa: E402
from core.evaluation.metrics import match_materials  # noqa: E402
from core.pipeline import run_pipeline  # noqa: E402
from core.solvers.unmix import deepgu_unmix  # noqa: E402
from core.solvers.unmix_settings import UnmixSettings  # noqa: E402
from core.models.vae import train_endmember_model  # noqa: E402

ORACLE_BUNDLE = 200


def rmse_a(A, truth):
    P = truth.shape[0]
    A, T = np.nan_to_num(A.reshape(P, -1)), truth.reshape(P, -1)
    return float(np.sqrt(((A[match_materials(A, T)] - T) ** 2).mean()))


def oracle_deepgu(sc, seed, lambda_z, epochs):
    """DeepGU with the true references and VAEs trained on true per-pixel endmembers."""
    L, P, rows, cols = sc.endmembers.shape
    E = sc.endmembers.reshape(L, P, -1).astype(np.float64)
    rng = np.random.default_rng(seed)
    bundles = [E[:, p, rng.choice(E.shape[2], ORACLE_BUNDLE, replace=False)] for p in range(P)]
    model = train_endmember_model(bundles, sc.reference, sc.materials, epochs=epochs, seed=seed)
    Y = sc.image.astype(np.float64)
    A0 = fcls(Y.reshape(L, -1), sc.reference).reshape(P, rows, cols)
    return deepgu_unmix(Y, model, UnmixSettings(lambda_z=lambda_z), A_init=A0).abundances


def run(name, seed):
    sc = load_scene(name, seed)
    L, P, rows, cols = sc.endmembers.shape
    Y = sc.image.astype(np.float64)
    start = time.perf_counter()
    result = run_pipeline(Y, P, seed=seed)
    M = torch.as_tensor(sc.endmembers.reshape(L, P, -1).transpose(2, 0, 1), dtype=torch.float64)
    per_pixel = fcls_batched(M, torch.as_tensor(Y.reshape(L, -1).T)).numpy().T
    row = {
        "fcls": rmse_a(result.fcls_abundances, sc.abundances),
        "fcls_true_refs": rmse_a(fcls(Y.reshape(L, -1), sc.reference), sc.abundances),
        "fcls_true_pixel_endmembers": rmse_a(per_pixel, sc.abundances),
        "deepgu": rmse_a(result.unmixed.abundances, sc.abundances),
        "deepgu_oracle": rmse_a(oracle_deepgu(sc, seed, "auto", 200), sc.abundances),
        "deepgu_oracle_free": rmse_a(oracle_deepgu(sc, seed, 1e-4, 1000), sc.abundances),
    }
    row["seconds"] = time.perf_counter() - start
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", choices=sorted(SYNTHETIC), default=["DC2-usgs", "DC2-other",
                                                                                   "DC1-usgs"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    print(machine_line())
    columns = ["fcls", "fcls_true_refs", "fcls_true_pixel_endmembers", "deepgu", "deepgu_oracle",
               "deepgu_oracle_free"]
    print("| scene | seed | " + " | ".join(columns) + " | s |")
    print("|---|---|" + "---|" * (len(columns) + 1))
    for name in args.scenes:
        for seed in args.seeds:
            row = run(name, seed)
            print("| %s | %d | " % (name, seed) + " | ".join("%.4f" % row[c] for c in columns)
                  + " | %.0f |" % row["seconds"], flush=True)


if __name__ == "__main__":
    main()
