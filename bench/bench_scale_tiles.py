"""DeepGU on tile-sized samples of the large scene: CPU seconds and iterations per tile, this tree and a baseline.

Run:  .venv/bin/python bench/bench_scale_tiles.py [--baseline 80d5617] [--repeats 2] [--rows 2000 --cols 2000]

bench/bench_scale.py's 2000 x 2000 x 100 scene and model (bench/bench_large_scene.py's writer and steps, not timed)
are made once; the auto regularisation levels are measured on its central window as core.jobs.unmix does. Then
six padded tiles of 113 x 113 pixels (the size core.jobs.unmix cuts this scene into at the default memory budget)
at fixed places are solved by core.solvers.unmix.deepgu_unmix at the defaults, FCLS abundances as the start, on
one torch thread, in a fresh process per tree (the baseline's core from ``git archive``, then this tree's), the two
trees alternating ``--repeats`` times (each tile's best CPU time is kept). Prints, per tile and tree: CPU seconds
and ms per pixel, outer iterations, ADMM iterations of each outer iteration, decoder evaluations per pixel and the
Z-step's share of the loop's wall time; then the totals, the speed-up in CPU seconds, the largest abundance
difference between the trees and the reference workload (bench.measure.reference_seconds) before and after. The
large scene's tiles take more outer iterations than small scenes' (bench/bench_scale.py with --rows 512 --cols 512),
so their per-pixel cost is what the 2000 x 2000 run pays.
"""

import argparse
import os
import pickle
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_scale import extract_core, prepare_scene_and_model  # noqa: E402
from bench.measure import machine_line, measure, reference_seconds  # noqa: E402

#: the padded tiles' top-left corners (row, col) in the 2000 x 2000 scene, and their side
CORNERS = ((700, 700), (800, 900), (1000, 1100), (1200, 800), (300, 1500), (1500, 300))
SIDE = 113


def cut_tiles(scene, fcls, model, out):
    """The scene's levels and the tiles' (data, valid, A0) blocks, pickled to ``out``."""
    from core.files.raster_io import open_raster
    from core.jobs import tiled
    from core.models.model_file import load_model

    info, init = open_raster(scene, "INPUT").window(None), open_raster(fcls, "INIT").window(None)
    levels = tiled.central_levels(info, load_model(model).m0)
    blocks = []
    for row, col in CORNERS:
        data, valid = tiled.read_block(info, row, SIDE, col, SIDE)
        A0, init_valid = tiled.read_block(init, row, SIDE, col, SIDE)
        blocks.append((data, valid & init_valid, A0))
    with open(out, "wb") as stream:
        pickle.dump((levels, blocks), stream)


def solve_tiles(tiles, model, repeats, tree=None):
    """Solve the pickled tiles with ``tree``'s core (default this tree's) on one thread; per tile a dict of the
    figures and the abundances."""
    import time

    if tree:
        sys.path.insert(0, tree)
    import torch

    from core.models.model_file import load_model
    from core.solvers.regularisation import resolve
    from core.solvers.unmix import deepgu_unmix
    from core.solvers.unmix_settings import UnmixSettings

    torch.set_num_threads(1)
    with open(tiles, "rb") as stream:
        levels, blocks = pickle.load(stream)
    model = load_model(model)
    lambda_z, lambda_a = resolve("auto", "auto", levels)
    settings = UnmixSettings(lambda_z=lambda_z, lambda_a=lambda_a)
    results = []
    for data, valid, A0 in blocks:
        best = float("inf")
        for _ in range(repeats):
            cpu = time.process_time()
            result = deepgu_unmix(data, model, settings, mask=valid, A_init=A0, levels=levels, endmembers=False)
            best = min(best, time.process_time() - cpu)
        history = result.history
        results.append({"cpu": best, "pixels": int(valid.sum()), "outer": result.n_iter,
                        "admm": [h["admm_iterations"] for h in history],
                        "evaluations": result.work["evaluations"] / valid.sum(),
                        "z_share": sum(h["z_seconds"] for h in history) / sum(h["seconds"] for h in history),
                        "abundances": result.abundances})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--cols", type=int, default=2000)
    parser.add_argument("--bands", type=int, default=100)
    parser.add_argument("--baseline", default="80d5617", help="commit whose core is timed first")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    reference = reference_seconds()
    print("reference workload: %.2f s; load average %.1f" % (reference, os.getloadavg()[0]), flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("DEEPGU_BENCH_TMP")) as tmp:
        f = {name: os.path.join(tmp, name) for name in ("scene.tif", "em.csv", "fcls.tif", "bundles.csv", "model.pt",
                                                          "tiles.pkl")}
        prepare_scene_and_model(f, args.rows, args.cols, args.bands)
        measure(cut_tiles, scene=f["scene.tif"], fcls=f["fcls.tif"], model=f["model.pt"], out=f["tiles.pkl"])
        tree = extract_core(args.baseline, os.path.join(tmp, "baseline"))
        runs = {}
        for _ in range(args.repeats):                      # the trees alternate, so that both see the same load
            for name, path in (("baseline " + args.baseline, tree), ("this tree", None)):
                results = measure(solve_tiles, tiles=f["tiles.pkl"], model=f["model.pt"], repeats=1, tree=path)[2]
                for best, result in zip(runs.setdefault(name, results), results):
                    best["cpu"] = min(best["cpu"], result["cpu"])
        for name in runs:
            for (row, col), r in zip(CORNERS, runs[name]):
                print("%s, tile at (%d, %d): CPU %.2f s, %.4f ms/pixel; %d outer iterations, ADMM %s; %.2f decoder "
                      "evaluations per pixel; Z-step %.0f%% of the loop"
                      % (name, row, col, r["cpu"], 1e3 * r["cpu"] / r["pixels"], r["outer"], r["admm"],
                         r["evaluations"], 100 * r["z_share"]), flush=True)
        (base_name, base), (_, new) = runs.items()
        cpu = [sum(r["cpu"] for r in rs) for rs in (base, new)]
        pixels = sum(r["pixels"] for r in new)
        difference = max(float(np.nanmax(np.abs(a["abundances"] - b["abundances"]))) for a, b in zip(base, new))
        print("total CPU: %s %.2f s (%.4f ms/pixel), this tree %.2f s (%.4f ms/pixel): %.2fx; max |abundance "
              "difference| %.2e" % (base_name, cpu[0], 1e3 * cpu[0] / pixels, cpu[1], 1e3 * cpu[1] / pixels,
                                    cpu[0] / cpu[1], difference))
    print("reference workload after: %.2f s; load average %.1f" % (reference_seconds(), os.getloadavg()[0]))


if __name__ == "__main__":
    main()
