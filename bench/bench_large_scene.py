"""The workflow on a scene larger than memory allows to load comfortably: 2000 x 2000 x 100, P = 4, int16.

Run:  .venv/bin/python bench/bench_large_scene.py [--rows 2000 --cols 2000 --bands 100] [--skip-unmix]

The scene (1.6 GB as float32, 0.8 GB as int16 with a 1e-4 scale factor and a nodata border) is
written strip by strip: abundances are a softmax of smooth random fields drawn on a coarse
grid and upsampled, endmembers the first 4 shipped library spectra (100 of their bands)
scaled by a smooth per-pixel brightness. Then every workflow step runs file to file
(core/jobs, as the QGIS algorithms run them, with the workflow model's settings: spatial
bundles of 200 pixels from the FCLS abundances, DeepGU from FCLS, default memory budgets),
each in a fresh process, and the wall time and peak resident memory of that process are
printed. Target: every step under 1.5 GiB. Needs about 2.5 GB of disk for the temporary
files (DEEPGU_BENCH_TMP chooses where). Run it on an otherwise idle machine: two torch
processes on two cores slow each other down many-fold.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line, measure

SCALE = 1e-4
NODATA = -32768


def write_scene(path, rows, cols, bands, n_materials=4, seed=0, strip=100):
    """Write the int16 scene strip by strip; memory is one strip of float32."""
    from osgeo import gdal
    from scipy.ndimage import zoom

    from core.files.raster_io import georeference
    from core.evaluation.synthetic import load_library

    rng = np.random.default_rng(seed)
    wavelengths, library, _ = load_library()
    pick = np.linspace(0, library.shape[0] - 1, bands).round().astype(int)
    M = library[pick, :n_materials]
    coarse = rng.normal(size=(n_materials + 1, rows // 50 + 2, cols // 50 + 2))
    like = georeference(rows, cols)
    ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, bands, gdal.GDT_Int16,
                                              ["TILED=YES", "INTERLEAVE=BAND", "BIGTIFF=YES"])
    ds.SetGeoTransform(like.transform)
    ds.SetProjection(like.crs_wkt)
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.SetNoDataValue(NODATA)
        band.SetScale(SCALE)
        band.SetMetadataItem("wavelength", "%g" % wavelengths[pick[b]])
        band.SetMetadataItem("wavelength_units", "Nanometers")
    for row0 in range(0, rows, strip):
        n = min(strip, rows - row0)
        fields = np.stack([zoom(c, 50, order=1)[row0:row0 + n, :cols] for c in coarse])   # (P+1, n, cols)
        logits = fields[:n_materials] / 0.3
        A = np.exp(logits - logits.max(axis=0))
        A /= A.sum(axis=0)
        brightness = 1.0 + 0.15 * np.tanh(fields[n_materials])                         # (n, cols)
        Y = np.einsum("lp,prc->lrc", M, A) * brightness
        Y += rng.normal(0.0, 0.003, Y.shape)
        raw = np.clip(np.round(Y / SCALE), -32767, 32767).astype(np.int16)
        raw[:, :, :2] = NODATA                                                          # nodata border
        for b in range(bands):
            ds.GetRasterBand(b + 1).WriteArray(raw[b], 0, row0)
    ds = None


def step_vca(path, csv):
    from core.jobs import vca
    vca.run(path, 4, csv, seed=0)


def step_fcls(path, csv, out):
    from core.jobs import fcls
    fcls.run(path, csv, out)


def step_bundles(path, csv, abundances, out):
    from core.jobs import bundles
    bundles.run(path, csv, out, method="spatial", n_pixels=200, abundances_path=abundances)


def step_train(bundles_csv, csv, model):
    from core.jobs import train
    train.run(bundles_csv, csv, model, seed=0)


def step_unmix(path, model, init, out):
    from core.feedback import ConsoleFeedback
    from core.jobs import unmix

    class ProgressBar(ConsoleFeedback):
        """The progress bar on stderr, without the per-iteration log lines."""

        def info(self, message):
            pass

    return unmix.run(path, model, out, init_abundances=init, feedback=ProgressBar())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--cols", type=int, default=2000)
    parser.add_argument("--bands", type=int, default=100)
    parser.add_argument("--skip-unmix", action="store_true", help="stop before the (long) DeepGU step")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    float_gib = args.rows * args.cols * args.bands * 4 / 2 ** 30
    print("scene %d x %d x %d int16 (scale %g), P = 4; %.2f GiB as float32"
          % (args.rows, args.cols, args.bands, SCALE, float_gib), flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("DEEPGU_BENCH_TMP")) as tmp:
        f = {name: os.path.join(tmp, name) for name in ("scene.tif", "em.csv", "fcls.tif", "bundles.csv",
                                                          "model.pt", "deepgu.tif")}
        steps = [("scene (write)", write_scene, dict(path=f["scene.tif"], rows=args.rows, cols=args.cols,
                                                      bands=args.bands)),
                 ("VCA", step_vca, dict(path=f["scene.tif"], csv=f["em.csv"])),
                 ("FCLS", step_fcls, dict(path=f["scene.tif"], csv=f["em.csv"], out=f["fcls.tif"])),
                 ("bundles", step_bundles, dict(path=f["scene.tif"], csv=f["em.csv"], abundances=f["fcls.tif"],
                                               out=f["bundles.csv"])),
                 ("train VAEs", step_train, dict(bundles_csv=f["bundles.csv"], csv=f["em.csv"], model=f["model.pt"]))]
        if not args.skip_unmix:
            steps.append(("DeepGU", step_unmix, dict(path=f["scene.tif"], model=f["model.pt"], init=f["fcls.tif"],
                                                     out=f["deepgu.tif"])))
        for name, function, kwargs in steps:
            seconds, peak, _ = measure(function, **kwargs)
            per_pixel = "   %.3f ms/pixel" % (1000.0 * seconds / (args.rows * args.cols)) if name == "DeepGU" else ""
            print("%-14s %8.1f s   peak RSS %6.0f MiB%s" % (name, seconds, peak, per_pixel), flush=True)


if __name__ == "__main__":
    main()
