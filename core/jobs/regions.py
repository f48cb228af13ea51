"""Reference spectra from analyst regions (:mod:`core.extraction.regions`), file to file; also a command line::

    python -m core.jobs.regions INPUT REGIONS MATERIAL_FIELD OUTPUT [--bundles PATH] [--min-pixels N]

REGIONS is any vector file OGR reads (GeoPackage, GeoJSON, shapefile; its first layer), reprojected to
INPUT's CRS; OUTPUT and the bundles are CSV or ENVI ``.sli`` by extension.
"""

import sys

import numpy as np

from ..files.atomic import together
from ..defaults import REGIONS
from ..feedback import ensure
from ..files.library import write_spectra
from ..checks.paths import check_paths
from ..files.raster_io import open_raster
from ..extraction.regions import read_regions, region_references
from ..validation import MAX_MEMORY_MB, finite, integer
from .cli import job_parser, run_command


def run(input_path, regions, output, output_bundles=None, min_pixels=REGIONS["MIN_PIXELS"],
        memory_mb=REGIONS["MEMORY_MB"], feedback=None):
    """One reference spectrum per material of ``regions`` (:class:`core.extraction.regions.Region` s in INPUT's CRS) to
    the library ``output``; with ``output_bundles``, every region pixel (with its row and col) to that bundle file,
    the format deepgu:bundles writes. Both appear together or neither.

    Returns ``(materials [K], M (L, K), rows, cols, pixel materials, info)`` (rows, cols, pixel materials: of
    every region pixel, in material order).
    """
    feedback = ensure(feedback)
    check_paths({"INPUT": input_path}, {"OUTPUT": output, "OUTPUT_BUNDLES": output_bundles})
    min_pixels = integer("MIN_PIXELS", min_pixels, 1)
    memory_mb = finite("MEMORY_MB", memory_mb, 0, MAX_MEMORY_MB, low_open=True)
    info = open_raster(input_path, "INPUT")
    materials, M, groups = region_references(info, regions, min_pixels, memory_mb, feedback)
    flat = np.concatenate([f for _, f, _ in groups])
    rows, cols = divmod(flat, info.cols)
    pixel_materials = [material for material, f, _ in groups for _ in range(f.size)]
    with together():
        write_spectra(output, M, materials, info.wavelengths)
        if output_bundles:
            write_spectra(output_bundles, np.concatenate([s for _, _, s in groups], axis=1), pixel_materials,
                          info.wavelengths, rows, cols, what="OUTPUT_BUNDLES")
    for material, f, _ in groups:
        feedback.info("%s: reference = trimmed mean of %d region pixels" % (material, f.size))
    feedback.set_progress(100)
    return materials, M, rows, cols, pixel_materials, info


def main(argv=None):
    parser = job_parser(__doc__.splitlines()[0], [
        ("INPUT", "hyperspectral raster"), ("REGIONS", "vector file of polygons or points (any CRS)"),
        ("MATERIAL_FIELD", "the attribute naming each feature's material"),
        ("OUTPUT", "library of the references (.csv or .sli)")])
    parser.add_argument("--bundles", help="also write the region pixels as a bundle file (.csv or .sli)")
    parser.add_argument("--min-pixels", type=int, default=REGIONS["MIN_PIXELS"],
                        help="fewest valid pixels per material (%d)" % REGIONS["MIN_PIXELS"])
    parser.add_argument("--memory-mb", type=int, default=REGIONS["MEMORY_MB"],
                        help="working memory, MB (%d)" % REGIONS["MEMORY_MB"])

    def job(args, feedback):
        info = open_raster(args.input, "INPUT")
        run(args.input, read_regions(args.regions, args.material_field, info.crs_wkt), args.output, args.bundles,
            args.min_pixels, args.memory_mb, feedback)

    return run_command(parser, argv, job)


if __name__ == "__main__":
    sys.exit(main())
