"""How much DeepGU's accuracy on DC1 depends on the bundles' purity and on the VAE's training seed.

Run:  .venv/bin/python bench/bench_vae_seed_spread.py [--scene-seed 1] [--train-seeds 0 1 2 3]

On one 70 x 70 DC1 scene (198 bands, 3 materials, 30 dB): VCA -> FCLS, then the bundles of
the paper ("nearest", 100 pixels) and of the workflow ("spatial", 200 pixels), printed with
their mean true abundance (the bundles' purity, from the known truth). Then, with the spatial
bundles fixed, the VAEs are trained with each training seed and DeepGU (lambda_Z 0.1,
lambda_A 0.05) is scored: the spread of RMSE_A is what the VAE's training alone changes.
"""

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line
from core.extraction.bundles import local_purity, select_bundles
from core.solvers.fcls import fcls
from core.evaluation.metrics import evaluate
from core.evaluation.synthetic import make_scene
from core.solvers.unmix import deepgu_unmix
from core.solvers.unmix_settings import UnmixSettings
from core.models.vae import train_endmember_model
from core.extraction.vca import vca

BUNDLES = {"nearest": 100, "spatial": 200}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene-seed", type=int, default=1)
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    print(machine_line(), flush=True)
    scene = make_scene("DC1", 70, 70, snr_db=30.0, seed=args.scene_seed)
    L, rows, cols = scene.image.shape
    Y = scene.image.reshape(L, -1)
    truth = scene.abundances.reshape(3, -1)
    M0 = vca(Y, 3, seed=args.scene_seed).endmembers
    A0 = fcls(Y, M0)
    purity = local_purity(A0.reshape(3, rows, cols)).reshape(3, -1)
    bundles = {}
    for method, n_pixels in BUNDLES.items():
        bundles[method] = select_bundles(Y, M0, method, n_pixels=n_pixels, purity=purity, seed=args.scene_seed)
        true_purity = [truth[:, indices].max(axis=0).mean() for _, indices in bundles[method]]
        print("DC1 seed %d, %s bundles (%d px): mean true abundance of the dominant material %s"
              % (args.scene_seed, method, n_pixels, " ".join("%.3f" % v for v in true_purity)), flush=True)
    print("FCLS RMSE_A %.4f" % evaluate(A0, truth)["RMSE_A"])
    scores = []
    for train_seed in args.train_seeds:
        model = train_endmember_model([s for s, _ in bundles["spatial"]], M0, scene.names, seed=train_seed)
        result = deepgu_unmix(scene.image, model, UnmixSettings(lambda_z=0.1, lambda_a=0.05),
                              A_init=A0.reshape(3, rows, cols))
        scores.append(evaluate(result.abundances, scene.abundances)["RMSE_A"])
        print("spatial bundles, VAE training seed %d: DeepGU RMSE_A %.4f" % (train_seed, scores[-1]), flush=True)
    print("DeepGU RMSE_A over training seeds: min %.4f, max %.4f, mean %.4f"
          % (min(scores), max(scores), np.mean(scores)))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
