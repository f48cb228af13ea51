"""The shipped workflow model, run by qgis_process on DC1 scenes, against the Table III benchmark.

Run:  .venv/bin/python bench/bench_workflow_dc1.py [--seeds 0 1 2] [--lambda-a VALUE]

For each seed: a 70 x 70 DC1 scene (198 bands, 3 materials, 30 dB) from deepgu:synthetic,
then ``qgis_process.bin run deepgu:workflow`` at its defaults (endmembers -> FCLS -> spatial bundles ->
VAEs -> DeepGU, file to file, in a private QGIS configuration with the plugin enabled), then
deepgu:metrics on the FCLS and DeepGU abundances. Prints RMSE_A per seed, the means, the
DeepGU/FCLS ratio (issue 4 target: <= 0.5; bench_table3.py gives the in-memory figures) and
the wall time of each workflow run. Needs QGIS (scripts/setup_env.sh installs it).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line
from bench.qgis_runner import QgisProcessError, qgis_environment, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lambda-a", type=float, help="default: the workflow's (auto)")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    scores = {"fcls": [], "deepgu": []}
    with tempfile.TemporaryDirectory() as tmp:
        env = qgis_environment(os.path.join(tmp, "qgis-config"))
        for seed in args.seeds:
            f = {name: os.path.join(tmp, "%d-%s" % (seed, name)) for name in
                 ("scene.tif", "truth.tif", "em.csv", "fcls.tif", "bundles.csv", "model.pt", "deepgu.tif")}
            run(env, "deepgu:synthetic", KIND=0, ROWS=70, COLS=70, SNR=30, SEED=seed, OUTPUT=f["scene.tif"],
                OUTPUT_ABUNDANCES=f["truth.tif"])
            start = time.perf_counter()
            extra = {} if args.lambda_a is None else {"LAMBDA_A": args.lambda_a}
            run(env, "deepgu:workflow", INPUT=f["scene.tif"], MATERIALS=3, SEED=seed, **extra,
                **{"endmembers:ENDMEMBERS_CSV": f["em.csv"], "fcls:FCLS_ABUNDANCES": f["fcls.tif"],
                   "bundles:BUNDLES_CSV": f["bundles.csv"], "trainvae:MODEL_FILE": f["model.pt"],
                   "unmix:DEEPGU_ABUNDANCES": f["deepgu.tif"]})
            seconds = time.perf_counter() - start
            for method in scores:
                scores[method].append(run(env, "deepgu:metrics", ESTIMATE=f[method + ".tif"],
                                          REFERENCE=f["truth.tif"])["RMSE_A"])
            print("seed %d: RMSE_A FCLS %.4f, DeepGU %.4f; workflow %.1f s (qgis_process start included)"
                  % (seed, scores["fcls"][-1], scores["deepgu"][-1], seconds), flush=True)
    fcls, deepgu = np.mean(scores["fcls"]), np.mean(scores["deepgu"])
    print("mean over seeds %s: RMSE_A FCLS %.4f, DeepGU %.4f, ratio %.3f (target <= 0.5)"
          % (" ".join(map(str, args.seeds)), fcls, deepgu, deepgu / fcls))


if __name__ == "__main__":
    try:
        main()
    except QgisProcessError as error:
        sys.exit(str(error))
