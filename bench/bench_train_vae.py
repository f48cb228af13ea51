"""VAE training time: the batched training (this tree) against the per-material loop of a baseline commit, in one run.

Run:  .venv/bin/python bench/bench_train_vae.py [--epochs 200] [--repeats 3] [--baseline f2e433f]

Bundles: a 70 x 70 DC1 scene with 4 materials and 198 bands (core.synthetic, seed 0, 30 dB), the 200 pixels of
highest true abundance per material (the workflow's bundle size). Each repeat times the reference workload
(bench.measure.reference_seconds: 20 products of 1024 x 1024 float32 matrices, one thread), then, each in a fresh
process after a one-epoch warm-up, core.vae.train_vaes of the baseline commit (``git archive BASELINE core``: its
per-material loop) and of this tree, both from seed 0. Prints each wall and CPU time, the best of the repeats and
their ratios (old / new; each / reference), and how far the new models are from the old: the largest relative
difference of the loss curves and of the decoded spectra on a grid of latent codes. On a shared machine
the CPU seconds (one thread) are the steadier figure.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line, reference_seconds  # noqa: E402

N_BUNDLE = 200


def make_bundles(path):
    """The bench's bundles, saved to ``path`` (.npz, one array per material)."""
    from core.synthetic import make_scene

    scene = make_scene("DC1", 70, 70, 30.0, seed=0, n_materials=4)
    A = scene.abundances.reshape(4, -1)
    Y = scene.image.reshape(scene.image.shape[0], -1).astype(np.float64)
    np.savez(path, *[Y[:, np.argsort(-A[p], kind="stable")[:N_BUNDLE]] for p in range(4)])


def child(tree, bundles_path, out_path, epochs):
    """In a fresh process: train with ``tree``'s core.vae and save the curves, decoded spectra and seconds."""
    sys.path.insert(0, tree)
    import torch

    from core.vae import train_vaes

    data = np.load(bundles_path)
    bundles = [data["arr_%d" % p] for p in range(len(data.files))]
    train_vaes(bundles, epochs=1, seed=0)                           # warm-up: torch's first calls
    wall, cpu = time.perf_counter(), time.process_time()
    vaes, curves = train_vaes(bundles, epochs=epochs, seed=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    u = torch.linspace(-3.0, 3.0, 13)
    z = torch.stack(torch.meshgrid(u, u, indexing="ij"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        decoded = np.stack([vae.decode(z).numpy() for vae in vaes])
    np.savez(out_path, curves=np.stack(curves), decoded=decoded, seconds=[wall, cpu])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default="f2e433f", help="commit whose per-material training is timed")
    parser.add_argument("--child", nargs=4, metavar=("TREE", "BUNDLES", "OUT", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child[:3], int(args.child[3]))
    print(machine_line(), flush=True)
    print("bundles: 70 x 70 DC1, 4 materials, 198 bands, %d pixels each; %d epochs; baseline %s; load average %.1f"
          % (N_BUNDLE, args.epochs, args.baseline, os.getloadavg()[0]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "baseline")
        os.makedirs(base)
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.baseline, "core"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        bundles = os.path.join(tmp, "bundles.npz")
        make_bundles(bundles)
        times = {"reference": [], "old": [], "new": []}
        results = {}
        for repeat in range(args.repeats):
            times["reference"].append((reference_seconds(), float("nan")))
            for name, tree in (("old", base), ("new", ROOT)):
                out = os.path.join(tmp, "%s.npz" % name)
                subprocess.run([sys.executable, os.path.abspath(__file__), "--child", tree, bundles, out,
                                str(args.epochs)], check=True)
                results[name] = np.load(out)
                times[name].append(tuple(results[name]["seconds"]))
            print("repeat %d: reference %.2f s; old %.2f s wall, %.2f s CPU; new %.2f s wall, %.2f s CPU"
                  % (repeat + 1, times["reference"][-1][0], *times["old"][-1], *times["new"][-1]), flush=True)
    best = {name: np.min(np.array(values), axis=0) for name, values in times.items()}
    ref = best["reference"][0]
    print("best of %d: reference %.2f s | old %.2f s wall (%.1fx reference), %.2f s CPU | new %.2f s wall (%.1fx "
          "reference), %.2f s CPU" % (args.repeats, ref, best["old"][0], best["old"][0] / ref, best["old"][1],
                                      best["new"][0], best["new"][0] / ref, best["new"][1]))
    print("speed-up old / new: %.2fx wall, %.2fx CPU" % (best["old"][0] / best["new"][0],
                                                         best["old"][1] / best["new"][1]))
    old, new = results["old"], results["new"]
    print("new against old: loss curves within %.1e (relative), decoded spectra within %.1e (relative, per material "
          "%s)" % (np.max(np.abs(new["curves"] - old["curves"]) / np.abs(old["curves"])),
                   np.max(np.abs(new["decoded"] - old["decoded"]) / np.abs(old["decoded"])),
                   " ".join("%.1e" % v for v in np.max(np.abs(new["decoded"] - old["decoded"])
                                                       / np.abs(old["decoded"]), axis=(1, 2)))))


if __name__ == "__main__":
    main()
