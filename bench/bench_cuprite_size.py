"""Time the DeepGU step on a scene of Cuprite's size: 250 x 190 pixels, 188 bands, 4 materials.

Run:  .venv/bin/python bench/bench_cuprite_size.py [--rows 250 --cols 190 --bands 188 --lambda-a 0.01]
                                                 [--device cpu cuda]

The scene is core.evaluation.synthetic.make_scene(kind="DC2", n_materials=4) on an evenly spaced
188-band subset of the shipped 198-band library. The model is prepared by the pipeline's
own steps (VCA M0 -> FCLS -> 100 nearest pixels per material -> VAEs); then
core.solvers.unmix.deepgu_unmix alone is timed (defaults, lambda_Z = 0.1) on --threads torch threads,
once per --device (several: the same problem on each, and the largest abundance difference
between the first device and each other one). Prints its wall seconds and ms per pixel, outer
iterations, the process's peak RSS before and after it (resource.getrusage; the scene's true
per-pixel endmembers are included) and RMSE_A of DeepGU and FCLS. Target: DeepGU < 180 s on 2 cores
(the paper reports 7096.7 s on Cuprite).
"""

import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line
from core.extraction.bundles import select_bundles
from core.solvers.fcls import fcls
from core.evaluation.metrics import evaluate
from core.evaluation.synthetic import load_library, make_scene
from core.solvers.unmix import deepgu_unmix
from core.solvers.unmix_settings import UnmixSettings
from core.models.vae import train_endmember_model
from core.extraction.vca import vca


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250)
    parser.add_argument("--cols", type=int, default=190)
    parser.add_argument("--bands", type=int, default=188, help="taken evenly from the 198-band library")
    parser.add_argument("--materials", type=int, default=4)
    parser.add_argument("--lambda-a", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", nargs="+", default=["cpu"], help="one or more of cpu, cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the solver")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())

    wavelengths, spectra, names = load_library()
    bands = np.round(np.linspace(0, wavelengths.size - 1, args.bands)).astype(int)
    scene = make_scene("DC2", args.rows, args.cols, seed=args.seed, n_materials=args.materials,
                       library=(wavelengths[bands], spectra[bands], names))
    L, rows, cols = scene.image.shape
    pixels = scene.image.reshape(L, -1)
    print("scene DC2 %d x %d x %d bands, P = %d, 30 dB" % (rows, cols, L, args.materials))

    start = time.perf_counter()
    M0 = vca(pixels, args.materials, seed=args.seed).endmembers
    A0 = fcls(pixels, M0).reshape(-1, rows, cols)
    fcls_seconds = time.perf_counter() - start
    bundles = [b for b, _ in select_bundles(pixels, M0, "nearest", n_pixels=100)]
    start = time.perf_counter()
    model = train_endmember_model(bundles, M0, scene.names, seed=args.seed)
    print("VCA + FCLS %.2f s; VAE training (%d x %d pixels) %.1f s; peak RSS so far %.0f MiB"
          % (fcls_seconds, len(bundles), bundles[0].shape[1], time.perf_counter() - start, peak_mib()))

    first = None
    for device in args.device:
        start = time.perf_counter()
        result = deepgu_unmix(scene.image, model, UnmixSettings(lambda_z=0.1, lambda_a=args.lambda_a, device=device),
                              A_init=A0)
        seconds = time.perf_counter() - start
        print("DeepGU on %s (lambda_A %g): %.1f s, %.2f ms/pixel, %d iterations (converged: %s), %.2f s per "
              "iteration, peak RSS %.0f MiB" % (device, args.lambda_a, seconds, 1000.0 * seconds / (rows * cols),
                                                result.n_iter, result.converged, seconds / result.n_iter, peak_mib()))
        print("  per iteration: Z-step s %s" % " ".join("%.1f" % h["z_seconds"] for h in result.history))
        print("  per iteration: ADMM its %s" % " ".join("%d" % h["admm_iterations"] for h in result.history))
        print("RMSE_A: DeepGU %.4f, FCLS %.4f (paper on real Cuprite: DeepGU 7096.7 s, FCLS 20.1 s)"
              % (evaluate(result.abundances, scene.abundances)["RMSE_A"], evaluate(A0, scene.abundances)["RMSE_A"]))
        if first is None:
            first = (device, result.abundances)
        else:
            print("max |abundance difference| %s vs %s: %.2e"
                  % (device, first[0], float(np.nanmax(np.abs(result.abundances - first[1])))))

if __name__ == "__main__":
    main()
