"""Why core/models/vae.py trains with beta = 0.01 and 200 epochs: how well a VAE fits held-out spectra.

Run:  .venv/bin/python bench/bench_vae_capacity.py [--configs 1:50 1:200 0.01:50 0.01:200]

On a DC1 scene (70 x 70, 30 dB, seed 0) the VAEs of materials 0 and 1 are trained
(core.models.vae.train_vaes, 100-pixel bundles of random pixels whose true abundance is
> 0.99) for each (beta, epochs). Held out: 100 other pixels per material (200 in all)
with true abundance > 0.97 (the scene has too few > 0.99 pixels for both sets). Each
held-out pixel y_n is fitted with its material alone, A one-hot:
min_z ||y_n - G_p(z)||^2 + lambda_Z ||z - z0||^2 with lambda_Z = 1e-6, by core.solvers.zstep.zstep
(3 calls, warm-started at the encoder mean of y_n). Prints, per material, the held-out
RMSE sqrt(mean_l (y - G_p(z))^2) at the encoder mean and after the fit, next to
- bundle mean: the RMSE of the mean spectrum of the bundle (what a collapsed VAE gives),
- floor: the RMSE of y_n against its true endmember m_pn (noise plus the <= 3 % of other
  materials that a one-material fit cannot explain), and the noise RMSE alone.
A VAE that learned the variability fits well below the bundle mean. About 30 s on 2 cores.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line
from core.evaluation.synthetic import make_scene
from core.models.vae import EndmemberModel, train_vaes
from core.solvers.zstep import decode, zstep

MATERIALS = (0, 1)


def rmse(X, X_true):
    return float(np.sqrt(np.mean((X - X_true) ** 2)))


def split_pixels(scene, n_train, n_test, train_purity, test_purity, seed):
    """Per material: (train indices, disjoint held-out indices) of random pixels above each purity."""
    rng = np.random.default_rng(seed)
    A = scene.abundances.reshape(scene.abundances.shape[0], -1)
    splits = []
    for p in MATERIALS:
        train = rng.choice(np.flatnonzero(A[p] > train_purity), n_train, replace=False)
        test = np.setdiff1d(np.flatnonzero(A[p] > test_purity), train)
        splits.append((train, rng.choice(test, min(n_test, test.size), replace=False)))
    return splits


def fit_held_out(vaes, bundles, Y_test, lambda_z, calls):
    """One-material fits of held-out pixels.

    Returns (decoded at the encoder means, after the Z-steps), each a list of (L, n_p)."""
    m0 = np.stack([b.mean(axis=1) for b in bundles], axis=1)
    model = EndmemberModel(vaes, m0, np.zeros((len(vaes), vaes[0].sizes[-1])), [str(p) for p in MATERIALS])
    model.z0 = model.encode_mean(m0)
    model.to(dtype=torch.float64)
    Y = torch.as_tensor(np.concatenate(Y_test, axis=1).T, dtype=torch.float64)          # (N, L)
    owner = np.repeat(np.arange(len(vaes)), [y.shape[1] for y in Y_test])
    A = torch.nn.functional.one_hot(torch.as_tensor(owner), len(vaes)).to(torch.float64)
    Z = model.z0.expand(len(owner), -1, -1).clone()
    with torch.no_grad():
        for p, vae in enumerate(vaes):
            Z[owner == p, p] = vae.encode(Y[owner == p] / vae.scale)[0]

    def fitted(Z):
        G = decode(model, Z).numpy()                                                    # (N, L, P)
        Y_hat = G[np.arange(len(owner)), :, owner].T                                    # (L, N)
        return [Y_hat[:, owner == p] for p in range(len(vaes))]

    start = fitted(Z)
    result = zstep(model, Y, A, Z, lambda_z)
    for _ in range(calls - 1):
        result = zstep(model, Y, A, result.Z, lambda_z, stats=result.stats)
    return start, fitted(result.Z)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["1:50", "1:200", "0.01:50", "0.01:200"],
                        help="beta:epochs pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-pixels", type=int, default=100)
    parser.add_argument("--test-pixels", type=int, default=100, help="per material")
    parser.add_argument("--train-purity", type=float, default=0.99)
    parser.add_argument("--test-purity", type=float, default=0.97)
    parser.add_argument("--lambda-z", type=float, default=1e-6)
    parser.add_argument("--calls", type=int, default=3, help="Z-step calls (each at most 20 LM iterations)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the solver")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())

    scene = make_scene("DC1", 70, 70, snr_db=30.0, seed=args.seed)
    L = scene.image.shape[0]
    Y = scene.image.reshape(L, -1).astype(np.float64)
    E = scene.endmembers.reshape(L, scene.endmembers.shape[1], -1)
    clean = np.einsum("lpn,pn->ln", E, scene.abundances.reshape(E.shape[1], -1))
    splits = split_pixels(scene, args.train_pixels, args.test_pixels, args.train_purity, args.test_purity, args.seed)
    bundles = [Y[:, train] for train, _ in splits]
    Y_test = [Y[:, test] for _, test in splits]
    print("DC1 70 x 70, %d bands, seed %d; materials %s; bundles %s pixels (> %.2f), held out %s (> %.2f)"
          % (L, args.seed, [scene.names[p] for p in MATERIALS], [b.shape[1] for b in bundles], args.train_purity,
             [y.shape[1] for y in Y_test], args.test_purity))
    for p, bundle, y, (_, test) in zip(MATERIALS, bundles, Y_test, splits):
        print("material %-6s held-out RMSE: bundle mean %.4f, floor (true m_pn) %.4f, noise %.4f"
              % (scene.names[p], rmse(y, bundle.mean(axis=1, keepdims=True)), rmse(y, E[:, p, test]),
                 rmse(y, clean[:, test])))
    print("held-out RMSE of the VAE fit, at the encoder mean -> after the Z-steps:")
    print("%-6s %6s %8s" % ("beta", "epochs", "train s"))
    for config in args.configs:
        beta, epochs = float(config.split(":")[0]), int(config.split(":")[1])
        start = time.perf_counter()
        vaes, _ = train_vaes(bundles, epochs=epochs, seed=args.seed, beta=beta)
        seconds = time.perf_counter() - start
        encoded, fitted = fit_held_out(vaes, bundles, Y_test, args.lambda_z, args.calls)
        print("%-6g %6d %8.1f   %s" % (beta, epochs, seconds, "   ".join(
            "%s %.4f -> %.4f" % (scene.names[p], rmse(y, e), rmse(y, f))
            for p, y, e, f in zip(MATERIALS, Y_test, encoded, fitted))))


if __name__ == "__main__":
    main()
