"""Do the codes help? Cross-validation on held-back bands, per scene (issue 22 item 4: DeepGU that stays put).

Run:  .venv/bin/python bench/bench_stay_put.py [--scenes samson DC1-usgs ...] [--seeds 0 1] [--folds 4]

A candidate criterion for when DeepGU should hold its codes at the references: fit the codes on some
bands and see whether they predict the others. For each scene and seed, the in-process pipeline at the
workflow's defaults (core.pipeline.run_pipeline: refined references M0, FCLS, spatial bundles, VAEs)
gives the model; then the bands are cut into contiguous blocks of L / (4 F) bands, dealt to F folds in
turn, and for each fold f (held-out bands H, training bands T):

- a_n = FCLS(y_n[T], M0[T]) (abundances from the training bands only), r_n = y_n - M0 a_n;
- the codes, linearised at the reference (``u = 0``, where the anchored decoders give M0 exactly,
  core.solvers.latent): ``r_n ~ B_n u_n`` with ``B_n = [a_1n D_1 ... a_Pn D_P]`` (L, P K) and ``D_p`` (L, K) the
  derivatives of material p's decoder along its whitened code axes;
  ``u_n = argmin ||r_n[T] - B_n[T] u||^2 + lambda ||u||^2`` (the Z-step's cost, linearised), with lambda
  the ``auto`` lambda_Z (core.solvers.regularisation: the median FCLS misfit energy rho^2) and 1/100 of it;
- held-out error without the codes ``e0 = sum_n ||r_n[H]||^2`` and with them
  ``e1 = sum_n ||r_n[H] - B_n[H] u_n||^2``.

Printed: the FCLS misfit energy against the noise estimated from the data (HySime, as in
bench/bench_lambda_z.py: rho^2 / noise), the gain ``1 - e1 / e0`` summed over folds (0: the codes
predict nothing the references do not; noise fitted on T predicts nothing on H, so a scene without
variability gives about 0 or less), next to the workflow's FCLS RMSE_A (eq. 14, materials matched).
A rule "hold the codes when the gain is small" needs the gain to be small where DeepGU should stay
put (Samson, whose reference abundances are FCLS with fixed spectra) and large where the codes win (DC1).
"""

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import NAMES  # noqa: E402
from bench.bench_lambda_z import noise_energy, rmse_a, scene_pipelines  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.solvers.fcls import fcls  # noqa: E402
from core.solvers.latent import WhitenedModel  # noqa: E402
from core.solvers.regularisation import measure_levels  # noqa: E402

#: fractions of the ``auto`` lambda_Z at which the codes are fitted
FACTORS = (1.0, 0.01)


def code_directions(model):
    """D (L, P, K): derivatives of the anchored decoders along the whitened code axes at u = 0 (scene units)."""
    P, K = model.n_materials, model.latent_dim
    with torch.no_grad():
        _, D = WhitenedModel(model, 1.0).decode_with_jacobian(torch.zeros(1, P, K, dtype=model.z0.dtype))
    return D[0].double().cpu().numpy()


def held_out_gain(pixels, M0, D, lam, folds=4):
    """``1 - e1 / e0`` (module docstring) of ``pixels`` (L, N), references M0 (L, P), directions D (L, P, K)."""
    L, N = pixels.shape
    P, K = D.shape[1:]
    block = max(1, L // (4 * folds))
    fold_of = (np.arange(L) // block) % folds
    e0 = e1 = 0.0
    for f in range(folds):
        train, held = fold_of != f, fold_of == f
        a = fcls(pixels[train], M0[train])                                     # (P, N)
        r = pixels - M0 @ a                                                      # (L, N)
        B = np.einsum("lpk,pn->nlpk", D, a).reshape(N, L, P * K)
        lhs = np.einsum("nli,nlj->nij", B[:, train], B[:, train]) + lam * np.eye(P * K)
        u = np.linalg.solve(lhs, np.einsum("nli,ln->ni", B[:, train], r[train])[..., None])[..., 0]
        e0 += float((r[held] ** 2).sum())
        e1 += float(((r[held] - np.einsum("nli,ni->ln", B[:, held], u)) ** 2).sum())
    return 1.0 - e1 / e0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", choices=NAMES, help="default: all available here")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line(), flush=True)
    print("held-out-band gain of the codes (1 - e1/e0) at lambda = factor x auto lambda_Z", flush=True)
    for name, seed, bench_scene, Y, mask, pipeline in scene_pipelines(args.scenes, args.seeds):
        levels = measure_levels(Y, pipeline.reference, pipeline.fcls_abundances, mask)
        D = code_directions(pipeline.model)
        gains = ["x%g %.3f" % (factor, held_out_gain(Y[:, mask], pipeline.reference, D, factor * levels.rho2,
                                                       args.folds)) for factor in FACTORS]
        print("%-16s seed %d: FCLS %.4f | misfit/noise %.1f | gain %s"
              % (name, seed, rmse_a(pipeline.fcls_abundances, bench_scene.abundances),
                 levels.rho2 / noise_energy(Y[:, mask]), "  ".join(gains)), flush=True)


if __name__ == "__main__":
    main()
