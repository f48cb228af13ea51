"""Is the paper's latent dimension K = 2 the right default? The workflow at each K, on the accuracy scenes.

Run:  .venv/bin/python bench/bench_latent_dim.py [--scenes samson DC1-usgs ...] [--seeds 0 1 2 3 4] [--dims 1 2 3 4 6]

For each scene of bench/accuracy_scenes.py, seed and K, the in-process pipeline at the workflow's defaults
(core.pipeline.run_pipeline: refined endmembers, FCLS, spatial bundles, one VAE per material with K latent
dimensions, DeepGU at ``auto`` weights) is scored by RMSE_A (eq. 14, materials matched). Per scene and K it
prints the mean over seeds, DeepGU/FCLS, how many seeds are above FCLS, each seed's RMSE_A, and the seconds
of the whole pipeline summed over seeds. Samson is one real scene: its seeds change only VCA's restarts
and the VAEs' training.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import available, scene as load_scene  # noqa: E402
from bench.bench_lambda_z import rmse_a  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.pipeline import run_pipeline  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--dims", nargs="+", type=int, default=[1, 2, 3, 4, 6])
    args = parser.parse_args()
    print(machine_line())
    for name in args.scenes or available():
        for dim in args.dims:
            fcls_errors, deepgu_errors, seconds = [], [], 0.0
            for seed in args.seeds:
                scene = load_scene(name, seed)
                start = time.perf_counter()
                result = run_pipeline(scene.image.astype(np.float64), scene.n_materials, seed=seed, latent_dim=dim)
                seconds += time.perf_counter() - start
                fcls_errors.append(rmse_a(result.fcls_abundances, scene.abundances))
                deepgu_errors.append(rmse_a(result.unmixed.abundances, scene.abundances))
            fcls_errors, deepgu_errors = np.array(fcls_errors), np.array(deepgu_errors)
            print("%-17s K %d  FCLS %.4f  DeepGU %.4f  DeepGU/FCLS %.2f  above FCLS %d of %d  per seed %s  (%.0f s)" % (
                name, dim, fcls_errors.mean(), deepgu_errors.mean(), deepgu_errors.mean() / fcls_errors.mean(),
                int((deepgu_errors > fcls_errors).sum()), len(args.seeds),
                " ".join("%.4f" % e for e in deepgu_errors), seconds), flush=True)


if __name__ == "__main__":
    main()
