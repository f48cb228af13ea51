"""Time the training of 3 VAEs on 100-pixel bundles at 224 bands (the paper's setting).

Run:  .venv/bin/python bench/bench_train_vae.py [--epochs 200 50] [--pixels 100]

Bundles: the authors' example bundle (shared/data/vae_example/training_EM_data.mat,
100 pure pixels at the 224 AVIRIS bands) when present, completed to three with
synthetic bundles: a library spectrum interpolated to the 224 AVIRIS wavelengths,
times a random per-pixel scale in [0.85, 1.15] and a linear tilt of +-10 %, plus
1 % Gaussian noise. Each model is trained by core.vae.train_vaes (one CPU thread,
the defaults of core.vae) for each epoch count: core.defaults.TRAINVAE["EPOCHS"] and the
paper's 50. Prints seconds per model and in total. About 30 s on 2 cores.
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.io import loadmat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line
from core.synthetic import load_library
from core.defaults import TRAINVAE
from core.vae import train_vaes

DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
EXAMPLE = os.path.join(DATA, "vae_example", "training_EM_data.mat")
WAVELENGTHS = os.path.join(DATA, "usgs", "AVIRIS_wavelengths.mat")
N_BANDS = 224


def aviris_wavelengths():
    """The 224 AVIRIS band centres (nm), or an even 400-2500 nm grid without the data folder."""
    if os.path.exists(WAVELENGTHS):
        return loadmat(WAVELENGTHS)["AVIRIS_wavlen"].ravel().astype(float)
    return np.linspace(400.0, 2500.0, N_BANDS)


def synthetic_bundle(spectrum, n_pixels, rng):
    """(L, n_pixels) copies of ``spectrum`` (L,): scale U(0.85, 1.15) x (1 + tilt U(-0.1, 0.1) t) + 1 % noise."""
    t = np.linspace(-1.0, 1.0, spectrum.size)[:, None]
    factors = rng.uniform(0.85, 1.15, n_pixels) * (1.0 + rng.uniform(-0.1, 0.1, n_pixels) * t)
    bundle = spectrum[:, None] * factors
    return bundle + 0.01 * bundle.mean() * rng.standard_normal(bundle.shape)


def make_bundles(n_pixels, seed=0):
    """Three (224, n_pixels) bundles and a line saying where they come from."""
    rng = np.random.default_rng(seed)
    wavelengths, spectra, names = load_library()
    order = np.argsort(wavelengths)
    bundles, sources = [], []
    if os.path.exists(EXAMPLE):
        bundles.append(loadmat(EXAMPLE)["trainingData"].T[:, :n_pixels].astype(float))
        sources.append("authors' example bundle")
    target = aviris_wavelengths()
    for p in range(3 - len(bundles)):
        spectrum = np.interp(target, wavelengths[order], spectra[order, p])
        bundles.append(synthetic_bundle(spectrum, n_pixels, rng))
        sources.append("synthetic from library '%s'" % names[p])
    return bundles, sources


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[TRAINVAE["EPOCHS"], 50])
    parser.add_argument("--pixels", type=int, default=100, help="pixels per bundle")
    args = parser.parse_args()
    print(machine_line())
    bundles, sources = make_bundles(args.pixels)
    print("bundles (%d bands x %s pixels): %s" % (N_BANDS, [b.shape[1] for b in bundles], "; ".join(sources)))
    for epochs in args.epochs:
        seconds, losses = [], []
        for p, bundle in enumerate(bundles):
            start = time.perf_counter()
            _, (curve,) = train_vaes([bundle], epochs=epochs, seed=p)
            seconds.append(time.perf_counter() - start)
            losses.append(curve[-1])
        print("epochs %4d: %s s per model, total %.2f s (final training loss %s)" % (
            epochs, " ".join("%.2f" % s for s in seconds), sum(seconds), " ".join("%.2f" % v for v in losses)))


if __name__ == "__main__":
    main()
