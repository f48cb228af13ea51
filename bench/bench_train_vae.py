"""VAE training time: the batched training (this tree) against the per-material loop of a baseline commit, in one run.

Run:  .venv/bin/python bench/bench_train_vae.py [--epochs 200] [--repeats 3] [--baseline f2e433f]

Bundles: a 70 x 70 DC1 scene with 4 materials and 198 bands (core.evaluation.synthetic, seed 0, 30 dB), the 200 pixels
of highest true abundance per material (the workflow's bundle size). Each repeat times the reference workload
(bench.measure.reference_seconds: 20 products of 1024 x 1024 float32 matrices, one thread), then, each in a fresh
process after a one-epoch warm-up, core.models.vae.train_vaes of the baseline commit (``git archive BASELINE core``: its
per-material loop) and of this tree, both from seed 0. Prints each wall and CPU time, the best of the repeats and
their ratios (old / new; each / reference), and how far the new models are from the old: the largest relative
difference of the loss curves and of the decoded spectra on a grid of latent codes. On a shared machine
the CPU seconds (one thread) are the steadier figure. Each repeat also prints the free cores
(bench.measure.free_cores: 2.0 when two threads each get a core, 1.0 when they share one): the new training runs
two threads, so its wall time shows their gain only where that figure is near 2.
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

from bench.measure import free_cores, machine_line, reference_seconds  # noqa: E402

N_BUNDLE = 200
#: relative noise of the yardstick run: round-off of the bundle values
PERTURBATION = 1e-7


def make_bundles(path):
    """The bench's bundles, saved to ``path`` (.npz, one array per material)."""
    from core.evaluation.synthetic import make_scene

    scene = make_scene("DC1", 70, 70, 30.0, seed=0, n_materials=4)
    A = scene.abundances.reshape(4, -1)
    Y = scene.image.reshape(scene.image.shape[0], -1).astype(np.float64)
    np.savez(path, *[Y[:, np.argsort(-A[p], kind="stable")[:N_BUNDLE]] for p in range(4)])


def child(tree, bundles_path, out_path, epochs, perturbation):
    """In a fresh process: train twice with ``tree``'s core.models.vae (the first call pays one-time costs such as
    imports made on first use) and save the curves, decoded spectra and seconds. ``perturbation``: relative Gaussian
    noise put on the bundles first (the round-off yardstick)."""
    sys.path.insert(0, tree)
    import torch

    try:
        from core.models.vae import train_vaes
    except ImportError:                 # a baseline from before core was grouped by role
        from core.vae import train_vaes

    data = np.load(bundles_path)
    rng = np.random.default_rng(1)
    bundles = [data["arr_%d" % p] * (1.0 + perturbation * rng.standard_normal(data["arr_%d" % p].shape))
               for p in range(len(data.files))]
    seconds = []
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        vaes, curves = train_vaes(bundles, epochs=epochs, seed=0)
        seconds += [time.perf_counter() - wall, time.process_time() - cpu]
    u = torch.linspace(-3.0, 3.0, 13)
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        decoded = np.stack([vae.decode(grid).numpy() for vae in vaes])
        own = np.stack([vae.decode(vae.encode(torch.as_tensor(np.maximum(b.T / vae.scale, 0.0),
                                                               dtype=torch.float32))[0]).numpy()
                        for vae, b in zip(vaes, bundles)])
    np.savez(out_path, curves=np.stack(curves), decoded=decoded, own=own, seconds=seconds)


def distance(new, old):
    """Largest relative differences, new against old: loss curves, decoded grid and bundle codes per material."""
    relative = {key: np.abs(new[key] - old[key]) / np.abs(old[key]) for key in ("curves", "decoded", "own")}
    return "loss curves %.1e; decoded on the grid %s; at the bundle's codes %s" % (
        relative["curves"].max(), " ".join("%.1e" % v for v in relative["decoded"].max(axis=(1, 2))),
        " ".join("%.1e" % v for v in relative["own"].max(axis=(1, 2))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default="f2e433f", help="commit whose per-material training is timed")
    parser.add_argument("--child", nargs=5, metavar=("TREE", "BUNDLES", "OUT", "EPOCHS", "NOISE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child[:3], int(args.child[3]), float(args.child[4]))
    print(machine_line(), flush=True)
    print("bundles: 70 x 70 DC1, 4 materials, 198 bands, %d pixels each; %d epochs; baseline %s; load average %.1f"
          % (N_BUNDLE, args.epochs, args.baseline, os.getloadavg()[0]), flush=True)
    runs = (("old", "base", 0.0), ("new", "this", 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"base": os.path.join(tmp, "baseline"), "this": ROOT}
        os.makedirs(trees["base"])
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.baseline, "core"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", trees["base"]], input=archive, check=True)
        bundles = os.path.join(tmp, "bundles.npz")
        make_bundles(bundles)
        times, results = {name: [] for name in ("reference", "old", "new")}, {}
        for repeat in range(args.repeats):
            times["reference"].append(reference_seconds())
            times.setdefault("cores", []).append(free_cores())
            for name, tree, noise in runs + ((("old-perturbed", "base", PERTURBATION),) if repeat == 0 else ()):
                out = os.path.join(tmp, "%s.npz" % name)
                subprocess.run([sys.executable, os.path.abspath(__file__), "--child", trees[tree], bundles, out,
                                str(args.epochs), str(noise)], check=True)
                results[name] = dict(np.load(out))
                times.setdefault(name, []).append(results[name]["seconds"])
            print("repeat %d: reference %.2f s, free cores %.1f; old %.2f s wall, %.2f s CPU (first call %.2f, %.2f); "
                  "new %.2f s wall, %.2f s CPU (first call %.2f, %.2f)"
                  % (repeat + 1, times["reference"][-1], times["cores"][-1], *times["old"][-1][[2, 3, 0, 1]],
                     *times["new"][-1][[2, 3, 0, 1]]), flush=True)
    ref = min(times["reference"])
    best = {name: np.min(np.array(times[name]), axis=0) for name in ("old", "new")}
    for label, column in (("second call", 2), ("first call", 0)):
        old, new = best["old"][column:column + 2], best["new"][column:column + 2]
        print("best of %d, %s: old %.2f s wall (%.1fx reference), %.2f s CPU | new %.2f s wall (%.1fx reference), "
              "%.2f s CPU | speed-up %.2fx wall, %.2fx CPU" % (args.repeats, label, old[0], old[0] / ref, old[1],
                                                               new[0], new[0] / ref, new[1], old[0] / new[0],
                                                               old[1] / new[1]))
    print("reference workload: best %.2f s" % ref)
    print("new against old: " + distance(results["new"], results["old"]))
    print("yardstick, old on bundles x (1 + %g N(0, 1)) against old: %s"
          % (PERTURBATION, distance(results["old-perturbed"], results["old"])))

if __name__ == "__main__":
    main()
