"""Where does DeepGU's seed-to-seed spread on Samson come from? Its codes' brightness freedom (issue 22 item 4).

Run:  .venv/bin/python bench/bench_shape_only.py [--scenes samson DC1-usgs ...] [--seeds 0 1 2 3 4]

For each scene of bench/accuracy_scenes.py and seed, the in-process pipeline at the workflow's defaults
(core.pipeline.run_pipeline: refined references M0, FCLS, spatial bundles, VAEs, DeepGU) is run once; then DeepGU
runs again on the same model with each material's decoded spectrum held at its reference's brightness
(``deepgu:unmix``'s BRIGHTNESS = abundances, core.solvers.latent.WhitenedModel):

    G'_p(u) = G_p(u) - e_p (e_p^T G_p(u) - ||m0_p||),      e_p = m0_p / ||m0_p||,

i.e. the code's change of spectrum p, ``G_p(u) - m0_p``, without its component along ``m0_p`` (its Jacobian
likewise, ``D'_p = (I - e_p e_p^T) D_p``). A pure scaling ``s m0_p`` is then no change at all: the codes can
change each spectrum's shape, and its brightness is left to the abundances, as in FCLS. Under sum-to-one the
two explain a pixel's brightness equally well (bench/bench_variability_ceiling.py), so this measures how much of
DeepGU's move away from FCLS, and of its dependence on the VAEs' training seed, goes through brightness.

Printed per scene and seed: RMSE_A (eq. 14, materials matched) of FCLS, of DeepGU, and of DeepGU with the
brightness held; then per scene the means and the worst seed. Not the default: it decides how a brightness
change is attributed (to the abundances, or to the spectrum), which the data alone do not.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import NAMES, available, scene as load_scene  # noqa: E402
from bench.bench_lambda_z import rmse_a  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.pipeline import run_pipeline  # noqa: E402
from core.solvers.unmix import deepgu_unmix  # noqa: E402
from core.solvers.unmix_settings import UnmixSettings  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(NAMES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    print(machine_line(), flush=True)
    torch.set_num_threads(1)
    names = [name for name in args.scenes if name in available()]
    rows = {}
    for name in names:
        for seed in args.seeds:
            start = time.perf_counter()
            scene = load_scene(name, seed)
            mask = np.all(np.isfinite(scene.image), axis=0)
            result = run_pipeline(scene.image, scene.n_materials, mask=mask, seed=seed)
            held = deepgu_unmix(scene.image, result.model, UnmixSettings(brightness="abundances"), mask=mask,
                                A_init=np.nan_to_num(result.fcls_abundances))
            row = [rmse_a(estimate, scene.abundances) for estimate in
                   (result.fcls_abundances, result.unmixed.abundances, held.abundances)]
            rows.setdefault(name, []).append((seed, row))
            print("%-17s seed %d: FCLS %.4f  DeepGU %.4f  brightness held %.4f  (%.0f s)"
                  % (name, seed, *row, time.perf_counter() - start), flush=True)
    print("\n| scene | FCLS | DeepGU | DeepGU/FCLS | worst seed | brightness held | held/FCLS | worst seed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        table = np.array([row for _, row in values])
        seeds = [seed for seed, _ in values]
        mean = table.mean(axis=0)
        print("| %s | %.4f | %.4f | %.2f | %d: %.4f | %.4f | %.2f | %d: %.4f |" % (
            name, mean[0], mean[1], mean[1] / mean[0], seeds[int(np.argmax(table[:, 1]))], table[:, 1].max(),
            mean[2], mean[2] / mean[0], seeds[int(np.argmax(table[:, 2]))], table[:, 2].max()))


if __name__ == "__main__":
    main()
