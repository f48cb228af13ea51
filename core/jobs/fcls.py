"""Fully constrained least-squares abundances of a raster, block by block, in this process or on a Dask cluster.

Command line (the same parameters as ``deepgu:fcls``): ``python -m core.jobs.fcls --help``.
"""

import numpy as np

from ..running.cluster import cluster_client, map_tasks
from ..defaults import FCLS
from ..errors import DeepGUError
from ..feedback import ensure
from ..solvers.fcls import fcls, reconstruction_rmse
from ..files.library import check_bands, read_spectra
from ..checks.magnitude import check_library, check_magnitudes
from ..checks.paths import check_paths
from ..files.raster_io import (OutputSet, block_rows, bounded_block_cache, iter_blocks, open_raster, read_block,
                               scatter, valid_pixels)
from ..validation import MAX_MEMORY_MB, ContrastCheck, as_parameter, finite
from ..files.window import window_label


def _solve_strip(info, M, row0, n_rows, with_rmse):
    """FCLS of rows ``[row0, row0 + n_rows)``.

    Returns ``(abundances (P, n_rows, cols), rmse (1, ...) or None, n_valid, ContrastCheck of the strip)``.
    """
    data, valid = read_block(info, row0, n_rows)
    Y = valid_pixels(data, valid)
    contrast = ContrastCheck(info.n_bands, M.shape[1])
    contrast.update(Y)
    A = fcls(Y, M) if Y.shape[1] else np.zeros((M.shape[1], 0))
    rmse = scatter(reconstruction_rmse(Y, M, A)[None], valid) if with_rmse else None
    return scatter(A, valid), rmse, Y.shape[1], contrast


def run(input_path, endmembers_csv, output, output_rmse=None, memory_mb=FCLS["MEMORY_MB"], cluster=FCLS["CLUSTER"],
        window=None, feedback=None):
    """Write FCLS abundances (one named band per material) and optionally the per-pixel RMSE.

    ``window`` (:class:`core.files.window.PixelWindow`): only those pixels of INPUT are read and unmixed, and the
    outputs cover just them (georeferenced to the window); None: the whole raster.

    ``cluster`` (see :func:`core.running.cluster.parse_cluster`): empty solves the strips here,
    otherwise they are tasks on a Dask cluster whose workers read their strip from the file.
    Returns the number of valid pixels unmixed. The image must have as many distinct valid pixels as there are
    materials (:class:`.validation.ContrastCheck`, merged over the strips).
    """
    feedback = ensure(feedback)
    check_paths({"INPUT": input_path, "ENDMEMBERS": endmembers_csv}, {"OUTPUT": output, "OUTPUT_RMSE": output_rmse})
    memory_mb = finite("MEMORY_MB", memory_mb, 0, MAX_MEMORY_MB, low_open=True)
    info = open_raster(input_path, "INPUT").window(window)
    with as_parameter("ENDMEMBERS"):
        library = read_spectra(endmembers_csv)
        check_bands(library, info.n_bands, info.wavelengths, "the endmember file")
        M = library.as_endmembers()
    check_library(M, "ENDMEMBERS", library.materials)
    check_magnitudes(info, M, "ENDMEMBERS")
    if M.shape[1] > info.n_bands:
        raise DeepGUError("%d endmembers but only %d bands: the problem is underdetermined"
                          % (M.shape[1], info.n_bands))
    strips = list(iter_blocks(info, block_rows(info, memory_mb)))
    n_valid = 0
    contrast = ContrastCheck(info.n_bands, M.shape[1])
    with bounded_block_cache(memory_mb), cluster_client(cluster, feedback) as client, \
            OutputSet({"abundances": "OUTPUT", "rmse": "OUTPUT_RMSE"}) as outputs:
        outputs.add("abundances", output, info, M.shape[1], band_names=library.materials)
        outputs.add("rmse", output_rmse, info, 1, band_names=["rmse"])
        tasks = [(info, M, row0, n_rows, "rmse" in outputs) for row0, n_rows in strips]
        if client is None:
            solved = _in_process(tasks, feedback)
        else:
            solved = map_tasks(client, _solve_strip, tasks, [n for _, n in strips], feedback=feedback)
        for index, (A, rmse, count, strip_contrast) in solved:
            row0 = strips[index][0]
            n_valid += count
            contrast.merge(strip_contrast)
            outputs.write("abundances", A, row0)
            if rmse is not None:
                outputs.write("rmse", rmse, row0)
        if n_valid == 0:
            raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % window_label(info.label, window))
        contrast.check(window_label(info.label, window))
    feedback.info("FCLS: %d valid pixels of %d" % (n_valid, info.n_pixels))
    return n_valid


def _in_process(tasks, feedback):
    """Yield ``(index, result)`` solving the strips one after the other in this process."""
    for index, task in enumerate(tasks):
        feedback.check_canceled()
        yield index, _solve_strip(*task)
        feedback.set_progress(100.0 * (index + 1) / len(tasks))


def main(argv=None):
    """``python -m core.jobs.fcls``: the ``deepgu:fcls`` algorithm on the command line."""
    from .cli import add_common_arguments, job_parser, run_command, window

    parser = job_parser("FCLS abundances (deepgu:fcls) of INPUT with the endmember library ENDMEMBERS, written to "
                        "OUTPUT.", [("INPUT", "hyperspectral image"), ("ENDMEMBERS", "endmember library (CSV or .sli)"),
                                    ("OUTPUT", "abundance raster to write")])
    parser.add_argument("--output-rmse", help="reconstruction RMSE raster")
    add_common_arguments(parser, FCLS)
    return run_command(parser, argv, lambda args, feedback: run(
        args.input, args.endmembers, args.output, output_rmse=args.output_rmse, memory_mb=args.memory_mb,
        cluster=args.cluster, window=window(args), feedback=feedback))


if __name__ == "__main__":
    # run the module under its package name, so that cluster workers find its functions by name
    import importlib
    import sys

    sys.exit(importlib.import_module(__spec__.name).main())
