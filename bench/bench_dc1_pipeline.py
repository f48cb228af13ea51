"""Wall time of the whole DC1 pipeline, file to file: VCA -> FCLS -> bundles -> VAEs -> DeepGU on disk.

Run:  .venv/bin/python bench/bench_dc1_pipeline.py [--seed 0] [--lambda-a 0.05]

The 70 x 70 DC1 scene (198 bands, 3 materials, 30 dB) is written as a GeoTIFF first
(not timed); then the five steps run as the QGIS algorithms run them (core/jobs), with the
workflow model's settings (spatial bundles of 200 pixels from the FCLS abundances), in
one fresh process, and the time of each and the total are printed with RMSE_A of
FCLS and DeepGU. Target (issue 4): total under 15 s on this 2-core machine.
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line, measure


def pipeline(folder, seed, lambda_a):
    from core.jobs import bundles, fcls, metrics, train, unmix, vca
    from core.solvers.unmix_settings import UnmixSettings
    f = {name: os.path.join(folder, name) for name in ("scene.tif", "em.csv", "fcls.tif", "b.csv", "m.pt", "a.tif",
                                                        "truth.tif")}
    seconds = {}
    steps = [("vca", lambda: vca.run(f["scene.tif"], 3, f["em.csv"], seed=seed)),
             ("fcls", lambda: fcls.run(f["scene.tif"], f["em.csv"], f["fcls.tif"])),
             ("bundles", lambda: bundles.run(f["scene.tif"], f["em.csv"], f["b.csv"], method="spatial",
                                             n_pixels=200, abundances_path=f["fcls.tif"])),
             ("train", lambda: train.run(f["b.csv"], f["em.csv"], f["m.pt"], seed=seed)),
             ("deepgu", lambda: unmix.run(f["scene.tif"], f["m.pt"], f["a.tif"], UnmixSettings(lambda_a=lambda_a),
                                          init_abundances=f["fcls.tif"]))]
    for name, step in steps:
        start = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - start
    scores = {name: metrics.run(f[name], f["truth.tif"])["RMSE_A"] for name in ("fcls.tif", "a.tif")}
    return seconds, scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lambda-a", type=float, default=0.05)
    args = parser.parse_args()
    print(machine_line())
    from core.jobs import synthetic
    with tempfile.TemporaryDirectory() as folder:
        synthetic.run("DC1", 70, 70, os.path.join(folder, "scene.tif"), seed=args.seed,
                      output_abundances=os.path.join(folder, "truth.tif"))
        total, peak, (seconds, scores) = measure(pipeline, folder=folder, seed=args.seed, lambda_a=args.lambda_a)
    print("DC1 70 x 70 x 198, seed %d, lambda_A %g" % (args.seed, args.lambda_a))
    print("  ".join("%s %.2f s" % kv for kv in seconds.items()))
    print("total %.2f s (process, imports included), peak RSS %.0f MiB" % (total, peak))
    print("RMSE_A: FCLS %.4f, DeepGU %.4f" % (scores["fcls.tif"], scores["a.tif"]))


if __name__ == "__main__":
    main()
