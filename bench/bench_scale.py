"""DeepGU on the large scene in this process and on a local Dask cluster: time, ms/pixel, speed-up, memory.

Run:  .venv/bin/python bench/bench_scale.py [--rows 2000 --cols 2000 --bands 100 --workers 2]

The scene and the model come from bench/bench_large_scene.py's writer and steps (int16 scene, VCA,
FCLS, 200 spatial bundles per material, VAEs; not timed here). Then core.jobs.unmix.run solves the
same tiles twice, each run in a fresh process: in process (CLUSTER empty) and on --workers
single-threaded worker processes (CLUSTER local:N's cluster, core.running.cluster.start_local_cluster,
started inside the timed run). Prints wall seconds, ms per pixel, the speed-up, the peak RSS of
each process (driver and every worker) and the largest abundance difference between the runs. Beside the
in-process run's ms/pixel: the floating-point work per pixel of the DeepGU step's matrix products (decoder and
Jacobian, statistics, Levenberg-Marquardt solves, ADMM's per-pixel update and Laplacian transforms:
core.solvers.unmix.product_flops, from the work each tile logs, halos included) and the rate it was done at, and the
thread's CPU seconds per pixel (what an idle machine's wall time would be, single-threaded).
Use --rows/--cols for a quicker look (e.g. --rows 500 --cols 500), --workers 0 for the in-process run
only, --cluster-only for the cluster run only (no speed-up or difference then), --methods elmm glmm plmm to time
the variability models in process beside DeepGU (core.jobs.variability.run, defaults; --threads 1 on a shared
machine), --baseline COMMIT to solve
the same tiles in process with that commit's core first (``git archive COMMIT core``; its time, the speed-up of this
tree and the largest abundance difference are printed). The reference workload (bench.measure.reference_seconds: 20
products of 1024 x 1024 float32 matrices on one thread) is timed before and after, and every in-process time is also
printed as a multiple of it. Run it on an idle machine.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_large_scene import step_bundles, step_fcls, step_train, step_vca, write_scene  # noqa: E402
from bench.measure import machine_line, measure, reference_seconds  # noqa: E402


class WorkLog:
    """Feedback keeping the matrix-product flops of the tiles' "DeepGU work" lines (core.solvers.unmix.deepgu_unmix)."""

    def __init__(self):
        self.flops = 0.0

    def info(self, message):
        match = re.match(r"DeepGU work on (\d+) pixels: .*; ([0-9.e+-]+) MFLOP per pixel", message)
        if match:
            self.flops += int(match.group(1)) * float(match.group(2)) * 1e6

    def set_progress(self, percent):
        pass

    def is_canceled(self):
        return False

    def check_canceled(self):
        pass


def unmix_in_process(path, model, init, out, tree=None):
    """core.jobs.unmix.run (of ``tree``'s core when given); returns (tiles, matrix-product flops of all tiles, CPU
    seconds of this process)."""
    if tree:
        sys.path.insert(0, tree)
    from core.jobs import unmix

    log, cpu = WorkLog(), time.process_time()
    n_tiles = unmix.run(path, model, out, init_abundances=init, feedback=log)
    return n_tiles, log.flops, time.process_time() - cpu


def unmix_on_local_cluster(path, model, init, out, workers):
    """Same as CLUSTER=local:N, with the workers' peak RSS (MiB) read before the cluster closes."""
    import distributed

    from core.running.cluster import start_local_cluster
    from core.jobs import unmix
    from core.solvers.unmix_settings import UnmixSettings

    with start_local_cluster(workers) as cluster, distributed.Client(cluster) as client:
        n_tiles = unmix.run(path, model, out, UnmixSettings(cluster=cluster.scheduler_address), init_abundances=init)
        usage = client.run(resource.getrusage, resource.RUSAGE_SELF)
    return n_tiles, [u.ru_maxrss / 1024.0 for u in usage.values()]


def variability_in_process(path, csv, init, out, method):
    from core.jobs import variability

    return variability.run(path, csv, out, variability.VariabilitySettings(method), init_abundances=init)


def prepare_scene_and_model(f, rows, cols, bands):
    """Write the bench scene and make its model, each step measured: ``f`` maps ``scene.tif``, ``em.csv``,
    ``fcls.tif``, ``bundles.csv`` and ``model.pt`` to their paths."""
    for function, kwargs in ((write_scene, dict(path=f["scene.tif"], rows=rows, cols=cols, bands=bands)),
                             (step_vca, dict(path=f["scene.tif"], csv=f["em.csv"])),
                             (step_fcls, dict(path=f["scene.tif"], csv=f["em.csv"], out=f["fcls.tif"])),
                             (step_bundles, dict(path=f["scene.tif"], csv=f["em.csv"], abundances=f["fcls.tif"],
                                                 out=f["bundles.csv"])),
                             (step_train, dict(bundles_csv=f["bundles.csv"], csv=f["em.csv"], model=f["model.pt"]))):
        measure(function, **kwargs)


def extract_core(commit, folder):
    """``commit``'s ``core`` package extracted into ``folder`` (created; ``git archive``); returns ``folder``."""
    os.makedirs(folder)
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "core"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--cols", type=int, default=2000)
    parser.add_argument("--bands", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="0: the in-process run only")
    parser.add_argument("--cluster-only", action="store_true", help="skip the in-process run")
    parser.add_argument("--baseline", help="also solve in process with this commit's core, first")
    parser.add_argument("--methods", nargs="*", default=[], choices=["elmm", "glmm", "plmm"],
                        help="also run these variability models in process (defaults, the same FCLS start and tiles) "
                             "and print their time per pixel over DeepGU's")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the in-process runs (0: torch's default); 1 on a shared machine, where "
                             "two-thread kernels slow down many-fold when another process competes for the cores")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(machine_line(), flush=True)
    reference = reference_seconds()
    print("reference workload: %.2f s; load average %.1f" % (reference, os.getloadavg()[0]), flush=True)
    pixels = args.rows * args.cols
    print("scene %d x %d x %d int16, P = 4" % (args.rows, args.cols, args.bands), flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("DEEPGU_BENCH_TMP")) as tmp:
        f = {name: os.path.join(tmp, name) for name in ("scene.tif", "em.csv", "fcls.tif", "bundles.csv",
                                                          "model.pt", "here.tif", "cluster.tif")}
        start = time.perf_counter()
        prepare_scene_and_model(f, args.rows, args.cols, args.bands)
        print("scene and model ready in %.0f s" % (time.perf_counter() - start), flush=True)
        common = dict(path=f["scene.tif"], model=f["model.pt"], init=f["fcls.tif"])
        if args.baseline and not args.cluster_only:
            tree = extract_core(args.baseline, os.path.join(tmp, "baseline"))
            base_s, base_rss, (_, base_flops, base_cpu) = measure(unmix_in_process, out=os.path.join(tmp, "base.tif"),
                                                                  tree=tree, **common)
            print("baseline %s in process: %8.1f s  %.3f ms/pixel (%.1fx reference)  peak RSS %.0f MiB; %.3g MFLOP "
                  "per pixel; CPU %.1f s, %.3f ms/pixel; load average %.1f"
                  % (args.baseline, base_s, 1000.0 * base_s / pixels, base_s / reference, base_rss,
                     base_flops / pixels / 1e6, base_cpu, 1000.0 * base_cpu / pixels, os.getloadavg()[0]), flush=True)
        if not args.cluster_only:
            here_s, here_rss, (n_tiles, flops, cpu_s) = measure(unmix_in_process, out=f["here.tif"], **common)
            print("DeepGU in process:   %8.1f s  %.3f ms/pixel (%.1fx reference)  %d tiles  peak RSS %.0f MiB"
                  % (here_s, 1000.0 * here_s / pixels, here_s / reference, n_tiles, here_rss), flush=True)
            print("  work: %.3g MFLOP per pixel in matrix products, done at %.2f GFLOP/s (wall); CPU %.1f s, "
                  "%.3f ms/pixel; load average %.1f" % (flops / pixels / 1e6, flops / here_s / 1e9, cpu_s,
                                                        1000.0 * cpu_s / pixels, os.getloadavg()[0]), flush=True)
            if args.baseline:
                from core.files.raster_io import read_all

                print("  against the baseline: speed-up %.2fx wall, %.2fx CPU; max |abundance difference| %.2e"
                      % (base_s / here_s, base_cpu / cpu_s, float(np.nanmax(np.abs(
                          read_all(f["here.tif"])[0] - read_all(os.path.join(tmp, "base.tif"))[0])))), flush=True)
            print("reference workload after: %.2f s" % reference_seconds(), flush=True)
            for method in args.methods:
                seconds, rss, _ = measure(variability_in_process, path=f["scene.tif"], csv=f["em.csv"],
                                          init=f["fcls.tif"], out=os.path.join(tmp, method + ".tif"), method=method)
                print("%s in process:     %8.1f s  %.3f ms/pixel  %.2fx DeepGU's time  peak RSS %.0f MiB"
                      % (method.upper(), seconds, 1000.0 * seconds / pixels, seconds / here_s, rss), flush=True)
        if args.workers == 0:
            return
        there_s, driver_rss, (_, worker_rss) = measure(unmix_on_local_cluster, out=f["cluster.tif"],
                                                       workers=args.workers, **common)
        print("DeepGU on local:%d:    %8.1f s  %.3f ms/pixel  %speak RSS driver %.0f MiB, workers %s MiB"
              % (args.workers, there_s, 1000.0 * there_s / pixels,
                 "" if args.cluster_only else "speed-up %.2fx  " % (here_s / there_s), driver_rss,
                 " ".join("%.0f" % r for r in worker_rss)), flush=True)
        if args.cluster_only:
            return
        from core.files.raster_io import read_all

        print("max |abundance difference| between the runs: %.2e"
              % float(np.max(np.abs(read_all(f["here.tif"])[0] - read_all(f["cluster.tif"])[0]))))


if __name__ == "__main__":
    main()
