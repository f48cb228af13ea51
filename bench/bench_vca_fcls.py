"""Time VCA and FCLS on a 1000 x 1000 x 200 scene with P = 5 (issue 2's targets).

Run:  .venv/bin/python bench/bench_vca_fcls.py [--rows 1000 --cols 1000 --bands 200]
Each step runs in a fresh process (core/jobs, file to file, as the plugin runs it);
the peak resident memory is that process's, interpreter and libraries included.
Targets: FCLS < 20 s, VCA < 10 s, peak memory < 3 x the scene's float32 size.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line, measure


def write_scene(path, rows, cols, bands, n_materials, seed=0):
    """A linear mixture of smooth random spectra with Dirichlet abundances, 30 dB noise, 5 pure pixels."""
    from osgeo import gdal

    from core.files.raster_io import georeference

    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, bands)
    M = np.stack([0.3 + 0.2 * np.sin(2 * np.pi * (k + 1) * t / 3 + rng.uniform(0, 6)) + 0.2 * t * rng.uniform()
                  for k in range(n_materials)], axis=1).astype(np.float32)
    like = georeference(rows, cols)
    ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, bands, gdal.GDT_Float32,
                                              ["INTERLEAVE=BAND", "TILED=YES"])
    ds.SetGeoTransform(like.transform)
    ds.SetProjection(like.crs_wkt)
    strip = 100
    for row0 in range(0, rows, strip):
        n = min(strip, rows - row0)
        A = rng.dirichlet(np.ones(n_materials), size=n * cols).T.astype(np.float32)
        if row0 == 0:
            A[:, :n_materials] = np.eye(n_materials)
        Y = M @ A
        Y += rng.normal(0, np.sqrt(np.mean(Y ** 2) / 1000.0), Y.shape).astype(np.float32)
        cube = Y.reshape(bands, n, cols)
        for b in range(bands):
            ds.GetRasterBand(b + 1).WriteArray(cube[b], 0, row0)
    ds = None


def run_vca(path, p, csv):
    from core.jobs import vca
    vca.run(path, p, csv, seed=0)


def run_fcls(path, csv, out):
    from core.jobs import fcls
    return fcls.run(path, csv, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cols", type=int, default=1000)
    parser.add_argument("--bands", type=int, default=200)
    parser.add_argument("--materials", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())
    scene_mib = args.rows * args.cols * args.bands * 4 / 2 ** 20
    print("scene %d x %d x %d, P = %d, float32 size %.0f MiB" % (args.rows, args.cols, args.bands,
                                                               args.materials, scene_mib))
    with tempfile.TemporaryDirectory(dir=os.environ.get("DEEPGU_BENCH_TMP")) as tmp:
        scene = os.path.join(tmp, "scene.tif")
        write_scene(scene, args.rows, args.cols, args.bands, args.materials)
        csv = os.path.join(tmp, "em.csv")
        seconds, peak, _ = measure(run_vca, path=scene, p=args.materials, csv=csv)
        print("VCA : %6.2f s  peak RSS %6.0f MiB (%.2f x scene)" % (seconds, peak, peak / scene_mib))
        seconds, peak, _ = measure(run_fcls, path=scene, csv=csv, out=os.path.join(tmp, "a.tif"))
        print("FCLS: %6.2f s  peak RSS %6.0f MiB (%.2f x scene)" % (seconds, peak, peak / scene_mib))


if __name__ == "__main__":
    main()
