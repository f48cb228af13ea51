"""Analyst regions (issue 22): the workflow with REGIONS drawn from the truth, against FCLS with the true references.

Run:  .venv/bin/python bench/bench_regions.py [--scenes DC1-usgs ...] [--seeds 0 1 2] [--json out.json]
      .venv/bin/python bench/bench_regions.py --figure docs/regions.png [--scenes DC1-other] [--seeds 0]
      .venv/bin/python bench/bench_regions.py --references [--scenes ...] [--seeds 0 1 2]

For each scene of bench/accuracy_scenes.py (every one available here, Samson included) and each seed, regions
are drawn as an analyst would, by a script: per material, the pixels whose true abundance is at least
``THRESHOLD`` (0.9) times that material's largest abundance in the scene, eroded by one pixel (3 x 3), and of
their connected pieces the ``AREAS`` (3) largest, each outlined as a polygon (GDAL Polygonize: pixel edges, so
the polygon holds exactly those pixel centres) and written in EPSG:4326 to a GeoJSON file with a ``material``
field. A material without such pixels is not drawn (the workflow then extracts it around the drawn ones). Then

    qgis_process.bin run deepgu:workflow -- INPUT=scene.tif MATERIALS=P SEED=s REGIONS=regions.geojson
        MATERIAL_FIELD=material (+ the outputs)

at every other default, scored by RMSE_A (eq. 14, materials matched) as bench/bench_accuracy.py does, next to
FCLS with the scene's true reference spectra (core.solvers.fcls on the whole scene) and the workflow's own FCLS (from
the region references). Goals (issue 22): DeepGU within 1.15x of FCLS with the true references on every synthetic
scene, and on Samson within 1.1x of its (the workflow's) FCLS on every seed. ``--figure`` runs the first scene
and seed and draws the regions on the scene with the true, FCLS and DeepGU maps (docs/regions.md).
``--references`` runs no QGIS: FCLS RMSE_A with the references taken from the same regions as the trimmed mean
(core.extraction.regions.trimmed_mean, what deepgu:regions uses), as the plain mean, and with the true references.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import NAMES, available, scene  # noqa: E402
from bench.bench_accuracy import OUTPUTS, WORKFLOW, run_once, workflow_outputs, write_scene  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from bench.qgis_runner import QgisProcessError, qgis_environment, run  # noqa: E402
from core.files.atomic import atomic_output  # noqa: E402
from core.solvers.fcls import fcls  # noqa: E402
from core.evaluation.metrics import match_materials  # noqa: E402
from core.files.raster_io import georeference, read_all  # noqa: E402

THRESHOLD = 0.9     # share of the material's largest true abundance a region pixel has at least
AREAS = 3           # regions per material at most (the largest eroded pieces)
FIELD = "material"
TINY = 1e-4        # a reference RMSE_A below this is FCLS itself (Samson): no ratio


def region_masks(abundances):
    """Per material, up to AREAS (rows, cols) bool masks of eroded near-pure pieces (module docstring)."""
    from scipy import ndimage
    masks = []
    for a in abundances:
        pure = ndimage.binary_erosion(a >= THRESHOLD * a.max(), np.ones((3, 3)))
        labels, count = ndimage.label(pure)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        masks.append([labels == 1 + k for k in np.argsort(-sizes, kind="stable")[:AREAS] if sizes[k] > 0])
    return masks


def write_regions(path, bench_scene):
    """Draw the scene's regions (EPSG:4326 GeoJSON, field ``material``); returns ``{material: pixels}``."""
    from osgeo import gdal, ogr, osr
    _, rows, cols = bench_scene.image.shape
    grid = georeference(rows, cols)
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    utm = osr.SpatialReference()
    utm.ImportFromWkt(grid.crs_wkt)
    utm.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    memory = ogr.GetDriverByName("Memory").CreateDataSource("")
    outlines = memory.CreateLayer("outlines", utm, ogr.wkbPolygon)
    outlines.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    out = ogr.GetDriverByName("GeoJSON").CreateDataSource(path)
    layer = out.CreateLayer("regions", wgs84, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn(FIELD, ogr.OFTString))
    drawn = {}
    for material, masks in zip(bench_scene.materials, region_masks(bench_scene.abundances)):
        for mask in masks:
            raster = gdal.GetDriverByName("MEM").Create("", cols, rows, 1, gdal.GDT_Byte)
            raster.SetGeoTransform(grid.transform)
            raster.GetRasterBand(1).WriteArray(mask.astype(np.uint8))
            gdal.Polygonize(raster.GetRasterBand(1), raster.GetRasterBand(1), outlines, 0)
            for polygon in list(outlines):
                geometry = polygon.GetGeometryRef().Clone()
                geometry.Transform(to_wgs84)
                feature = ogr.Feature(layer.GetLayerDefn())
                feature.SetGeometry(geometry)
                feature.SetField(FIELD, material)
                layer.CreateFeature(feature)
                outlines.DeleteFeature(polygon.GetFID())
            drawn[material] = drawn.get(material, 0) + int(mask.sum())
    out = None
    return drawn


def _ratio(value, reference):
    """``value / reference`` as text, '-' where the reference is 0 (Samson's truth is FCLS with its references)."""
    return "%.2f" % (value / reference) if reference > TINY else "-"


def rmse_a(estimate, truth):
    """RMSE_A (eq. 14) of abundances (P, N) after matching materials to ``truth`` (P, N)."""
    return float(np.sqrt(np.mean((estimate[match_materials(estimate, truth)] - truth) ** 2)))


def true_reference_fcls(bench_scene):
    """RMSE_A of FCLS with the scene's true reference spectra."""
    L, P = bench_scene.reference.shape
    A = fcls(bench_scene.image.reshape(L, -1).astype(np.float64), bench_scene.reference)
    return rmse_a(A, bench_scene.abundances.reshape(P, -1).astype(np.float64))


def compare_references(names, seeds):
    """Print FCLS RMSE_A with region references by trimmed mean, by plain mean, and with the true references."""
    from core.extraction.regions import trimmed_mean
    print("| scene | seed | FCLS, trimmed-mean references | FCLS, mean references | FCLS, true references |")
    print("|---|---|---|---|---|")
    for name in names:
        for seed in seeds:
            bench_scene = scene(name, seed)
            L, P = bench_scene.reference.shape
            Y = bench_scene.image.reshape(L, -1).astype(np.float64)
            truth = bench_scene.abundances.reshape(P, -1).astype(np.float64)
            pixels = [Y[:, np.any(pieces, axis=0).ravel()] if pieces else None
                      for pieces in region_masks(bench_scene.abundances)]
            if any(p is None for p in pixels):
                print("| %s | %d | a material has no region | | |" % (name, seed))
                continue
            scores = [rmse_a(fcls(Y, np.stack([reference(p) for p in pixels], axis=1)), truth)
                      for reference in (trimmed_mean, lambda p: p.mean(axis=1))]
            print("| %s | %d | %.4f | %.4f | %.4f |" % (name, seed, scores[0], scores[1],
                                                         true_reference_fcls(bench_scene)), flush=True)


def figure(env, bench_scene, seed, folder, path):
    """Run the workflow with regions once and draw the scene with its regions and the maps (PNG at ``path``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    scene_path, regions = os.path.join(folder, "scene.tif"), os.path.join(folder, "regions.geojson")
    write_scene(bench_scene, scene_path)
    write_regions(regions, bench_scene)
    outputs = workflow_outputs(env, folder)
    run(env, WORKFLOW, INPUT=scene_path, MATERIALS=bench_scene.n_materials, SEED=seed, REGIONS=regions,
        MATERIAL_FIELD=FIELD, **outputs)
    P = bench_scene.n_materials
    truth = bench_scene.abundances
    maps = {"true": truth}
    for method, output in OUTPUTS.items():
        estimate = read_all(outputs[output])[0]
        maps[method] = estimate[match_materials(estimate.reshape(P, -1), truth.reshape(P, -1))]
    L = bench_scene.image.shape[0]
    bands = [int(L * f) for f in (0.75, 0.5, 0.2)]
    rgb = bench_scene.image[bands].transpose(1, 2, 0)
    rgb = np.clip(rgb / np.percentile(rgb, 99), 0, 1)
    fig = Figure(figsize=(2.2 * (P + 1), 2.2 * 3 + 0.4))
    colours = ["red", "cyan", "yellow", "magenta", "lime", "orange"]
    masks = region_masks(truth)
    for r, (label, name) in enumerate((("true", "true abundances"), ("fcls", "FCLS (workflow, regions)"),
                                       ("deepgu", "DeepGU (workflow, regions)"))):
        ax = fig.add_subplot(3, P + 1, r * (P + 1) + 1)
        ax.set_axis_off()
        if r == 0:
            ax.imshow(rgb)
            for p, pieces in enumerate(masks):
                for mask in pieces:
                    ax.contour(mask, levels=[0.5], colors=colours[p % len(colours)], linewidths=1.0)
            ax.set_title("scene + regions", fontsize=8)
        else:
            ax.text(0.5, 0.5, "%s\nRMSE_A %.3f" % (name, rmse_a(maps[label].reshape(P, -1), truth.reshape(P, -1))),
                    ha="center", va="center", fontsize=8)
        for p in range(P):
            ax = fig.add_subplot(3, P + 1, r * (P + 1) + p + 2)
            ax.imshow(maps[label][p], vmin=0, vmax=1, cmap="viridis")
            ax.set_axis_off()
            if r == 0:
                ax.set_title("%s (outlined in %s)" % (bench_scene.materials[p], colours[p % len(colours)]), fontsize=8)
    fig.suptitle("%s seed %d: regions drawn where the true abundance >= %.1f x its maximum, eroded"
                 % (bench_scene.name, seed, THRESHOLD), fontsize=8)
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(path)
    print("wrote %s" % path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", choices=NAMES, help="default: all available here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", metavar="OUT", help="save every run as it finishes")
    parser.add_argument("--figure", metavar="PNG", help="run the first scene and seed once and draw it")
    parser.add_argument("--references", action="store_true", help="compare region references by FCLS only")
    args = parser.parse_args()
    names = args.scenes or available()
    print(machine_line(), flush=True)
    if args.references:
        compare_references(names, args.seeds)
        return
    print("# %s with REGIONS (threshold %.2f x max, eroded 3 x 3, %d largest areas per material, EPSG:4326); "
          "load average %.1f (shared machine)" % (WORKFLOW, THRESHOLD, AREAS, os.getloadavg()[0]), flush=True)
    record = {"runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        env = qgis_environment(os.path.join(tmp, "qgis-config"))
        if args.figure:
            figure(env, scene(names[0], args.seeds[0]), args.seeds[0], tmp, os.path.abspath(args.figure))
            return
        outputs = workflow_outputs(env, tmp)
        regions = os.path.join(tmp, "regions.geojson")
        for name in names:
            runs = record["runs"][name] = []
            for seed in args.seeds:
                bench_scene = scene(name, seed)
                if os.path.exists(regions):
                    os.unlink(regions)
                drawn = write_regions(regions, bench_scene)
                truth_fcls = true_reference_fcls(bench_scene)
                try:
                    r = run_once(env, bench_scene, seed, tmp, outputs, {"REGIONS": regions, "MATERIAL_FIELD": FIELD})
                except QgisProcessError as error:
                    print("%-17s seed %d: FAILED %s" % (name, seed, str(error).splitlines()[-1]), flush=True)
                    runs.append({"seed": seed, "error": str(error)})
                    continue
                r.update(true_fcls=truth_fcls, drawn=drawn)
                runs.append(r)
                print("%-17s seed %d: RMSE_A FCLS(true refs) %.4f | workflow+regions: FCLS %.4f DeepGU %.4f | "
                      "DeepGU/FCLS(true) %s DeepGU/FCLS(workflow) %.2f | region pixels %s | %.0f s" % (
                          name, seed, truth_fcls, r["fcls"], r["deepgu"], _ratio(r["deepgu"], truth_fcls),
                          r["deepgu"] / r["fcls"], " ".join("%s %d" % kv for kv in drawn.items()), r["seconds"]),
                      flush=True)
                if args.json:
                    with atomic_output(args.json, "w") as f:
                        json.dump(record, f, indent=1, default=float)
    print("# load average at the end: %.1f" % os.getloadavg()[0])
    print()
    print("| scene | FCLS true refs | FCLS (regions) | DeepGU (regions) | DeepGU / FCLS true: mean, worst seed "
          "| DeepGU / its FCLS: worst seed |")
    print("|---|---|---|---|---|---|")
    for name, runs in record["runs"].items():
        done = [r for r in runs if "deepgu" in r]
        if not done:
            print("| %s | failed | | | | |" % name)
            continue
        ratios = [r["deepgu"] / r["true_fcls"] for r in done if r["true_fcls"] > TINY]
        own = [r["deepgu"] / r["fcls"] for r in done]
        print("| %s | %.4f | %.4f | %.4f | %s | %.2f |" % (
            name, np.mean([r["true_fcls"] for r in done]), np.mean([r["fcls"] for r in done]),
            np.mean([r["deepgu"] for r in done]), "%.2f, %.2f" % (np.mean(ratios), max(ratios)) if ratios else "-",
            max(own)))
    print("\nseeds %s; workflow defaults plus REGIONS and MATERIAL_FIELD" % " ".join(map(str, args.seeds)))


if __name__ == "__main__":
    main()
