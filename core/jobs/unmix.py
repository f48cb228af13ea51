"""DeepGU unmixing of a raster, tile by tile with an overlap halo, in this process or on a Dask cluster.

Command line (the same parameters as ``deepgu:unmix``): ``python -m core.jobs.unmix --help``.
"""

import time
from dataclasses import replace

import numpy as np
import torch

from ..cluster import BytesCache, cluster_client, map_tasks
from ..errors import DeepGUError
from ..fcls import fcls
from ..magnitude import check_library, check_magnitudes
from ..feedback import ensure
from ..grid import check_same_grid
from ..model_file import check_compatible, load_model
from ..paths import check_paths
from ..raster_io import (OutputSet, block_rows, bounded_block_cache, endmember_band_names, iter_blocks, open_raster,
                         read_block, valid_pixels)
from ..defaults import DEVICES, MEMORY_MB, TV_KINDS, UNMIX
from ..regularisation import AUTO, describe, is_auto, measure_levels, resolve
from ..threads import map_in_threads
from ..tiling import tile_size, tiles
from ..unmix import deepgu_unmix, resolve_device
from ..unmix_settings import UnmixSettings
from ..validation import ContrastCheck, as_parameter
from ..window import window_label

#: pixels of overlap around each tile; the TV coupling's influence dies out well within it.
HALO = 8
#: side of the central window on which ``auto`` regularisation's levels are measured (pixels).
LEVEL_WINDOW = 256
#: rough working memory of the solver per pixel and per band x material, in bytes.
_BYTES_PER_PIXEL_BAND_MATERIAL = 160
#: smallest padded tile side, whatever MEMORY_MB says: smaller tiles spend most of their work on the halo.
MIN_TILE = 32


def _open_init(path, like, n_materials, window=None):
    """Describe the INIT_ABUNDANCES raster, checked against the image and the model. With a ``window`` of the
    image, a raster of the whole image's size is restricted to it, one of the window's size is taken as it is;
    either must lie on its grid (:func:`core.grid.check_same_grid`)."""
    info = open_raster(path, "INIT_ABUNDANCES")
    if info.n_bands != n_materials:
        raise DeepGUError("INIT_ABUNDANCES has %d bands but the model has %d materials" % (info.n_bands, n_materials))
    if window is not None and (info.rows, info.cols) == (window.rows, window.cols):
        check_same_grid(info, like.window(window), like_name="INPUT's EXTENT window")
        return info
    if window is not None and (info.rows, info.cols) != (like.rows, like.cols):
        raise DeepGUError("INIT_ABUNDANCES is %d x %d pixels but INPUT is %d x %d and its EXTENT window %d x %d"
                          % (info.rows, info.cols, like.rows, like.cols, window.rows, window.cols))
    check_same_grid(info, like)
    return info.window(window)


def _number_or_auto(text, option):
    """A command-line value: ``auto`` or a number."""
    if is_auto(text):
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise DeepGUError("%s must be a number or 'auto', got %r" % (option, text)) from None


def _check_contrast(info, n_materials, memory_mb, feedback, label):
    """Stream the image once: refuse it (naming ``label``) unless it has a non-zero pixel and ``n_materials``
    distinct ones."""
    contrast = ContrastCheck(info.n_bands, n_materials)
    for row0, n_rows in iter_blocks(info, block_rows(info, memory_mb)):
        feedback.check_canceled()
        contrast.update(valid_pixels(*read_block(info, row0, n_rows)))
    contrast.check(label)


def tile_layout(rows, cols, memory_mb, n_bands, n_materials, halo=HALO, feedback=None):
    """The tiles of a ``rows x cols`` image whose padded working set fits ``memory_mb``, padded side at least
    :data:`MIN_TILE` (a smaller budget is raised to it, with a note to ``feedback``)."""
    budget = memory_mb * 2 ** 20 // (_BYTES_PER_PIXEL_BAND_MATERIAL * n_bands * n_materials)
    size = max(tile_size(budget, halo), MIN_TILE - 2 * halo, 1)
    if size > tile_size(budget, halo):
        ensure(feedback).info("MEMORY_MB=%g gives tiles below %d x %d pixels: using %d x %d tiles (with the halo)"
                              % (memory_mb, MIN_TILE, MIN_TILE, size + 2 * halo, size + 2 * halo))
    return list(tiles(rows, cols, size, halo))


def _central_levels(info, m0):
    """Regularisation levels of FCLS with ``m0`` on the central window of the raster."""
    rows, cols = min(LEVEL_WINDOW, info.rows), min(LEVEL_WINDOW, info.cols)
    data, valid = read_block(info, (info.rows - rows) // 2, rows, (info.cols - cols) // 2, cols)
    if not valid.any():
        raise DeepGUError("the central %d x %d pixels of %s are all nodata: give LAMBDA_Z and LAMBDA_A "
                          "explicitly" % (rows, cols, info.label))
    A = np.full((m0.shape[1],) + valid.shape, np.nan)
    A[:, valid] = fcls(data[:, valid].astype(np.float64), m0)
    return measure_levels(data, m0, A, valid)


def _tile_block(info, tile, init_block):
    """The padded window of ``tile``: ``(data, valid, A0)``, valid where INPUT is and, with ``init_block`` (the
    window's ``(A0, valid)`` of INIT_ABUNDANCES, or None), where A0 is too; None when the core has no valid pixel."""
    data, valid = read_block(info, tile.pad_row0, tile.pad_rows, tile.pad_col0, tile.pad_cols)
    A0 = None
    if init_block is not None:
        A0, init_valid = init_block
        valid &= init_valid
    rs, cs = tile.core_in_pad
    return (data, valid, A0) if valid[rs, cs].any() else None


def _solve_block(model, tile, block, settings, wanted, feedback=None):
    """Solve a tile's padded window ``block`` (:func:`_tile_block`); returns ``{output key: (bands, rows, cols)
    block of the core}``, or None for a None block."""
    if block is None:
        return None
    data, valid, A0 = block
    rs, cs = tile.core_in_pad
    result = deepgu_unmix(data, model, settings, mask=valid, A_init=A0, feedback=feedback,
                          endmembers="endmembers" in wanted)
    P, K, L = model.n_materials, model.latent_dim, model.n_bands
    blocks = {"abundances": result.abundances[:, rs, cs], "rmse": result.rmse[None, rs, cs]}
    if "endmembers" in wanted:   # (L, P, r, c) -> material-major (P*L, r, c)
        blocks["endmembers"] = result.endmembers[:, :, rs, cs].transpose(1, 0, 2, 3).reshape(P * L, tile.rows,
                                                                                              tile.cols)
    if "latent" in wanted:
        blocks["latent"] = result.latent[:, :, rs, cs].reshape(P * K, tile.rows, tile.cols)
    return blocks


_worker_models = BytesCache(lambda data: load_model("model file", data))


def _solve_tile_on_worker(model_bytes, info, tile, init_block, settings, wanted):
    """A tile read and solved in a cluster worker: the model's bytes reach each worker once and are loaded once."""
    with bounded_block_cache(settings.memory_mb):
        return _solve_block(_worker_models(model_bytes), tile, _tile_block(info, tile, init_block), settings, wanted)


def _read_init(init, tile):
    if init is None:
        return None
    return read_block(init, tile.pad_row0, tile.pad_rows, tile.pad_col0, tile.pad_cols)


def tile_threads(settings, n_tiles):
    """Tiles solved at once in this process: one per torch thread (``torch.get_num_threads()``, the cores
    unless limited) and at most ``n_tiles`` on a CPU, one on a GPU (:mod:`core.threads`)."""
    if resolve_device(settings.device).type == "cuda":
        return 1
    return max(1, min(torch.get_num_threads(), n_tiles))


def _solve_logged(header, model, tile, block, settings, wanted, feedback=None):
    """:func:`_solve_block` with ``header`` (a tile's log line, or None) logged first."""
    if header:
        feedback.info(header)
    return _solve_block(model, tile, block, settings, wanted, feedback)


def _in_process(info, model, layout, init, settings, wanted, feedback):
    """Yield ``(tile, blocks)`` as the tiles are solved in this process, :func:`tile_threads` at a time; the
    raster is read here, in the calling thread. Each tile's log lines reach ``feedback`` together."""
    def header(number, tile):
        if len(layout) == 1:
            return None
        return "tile %d/%d: rows %d-%d, cols %d-%d" % (number + 1, len(layout), tile.row0, tile.row0 + tile.rows - 1,
                                                       tile.col0, tile.col0 + tile.cols - 1)

    tasks = ((header(number, tile), model, tile, _tile_block(info, tile, _read_init(init, tile)), settings, wanted)
             for number, tile in enumerate(layout))
    n_threads = tile_threads(settings, len(layout))
    for index, lines, blocks in map_in_threads(_solve_logged, tasks, len(layout), n_threads, feedback):
        for line in lines:
            feedback.info(line)
        yield layout[index], blocks


def _on_cluster(client, model_path, info, layout, init, settings, wanted, feedback):
    """Yield ``(tile, blocks)`` as the cluster's workers finish them (any order).

    Workers read their tile of the image themselves; the (small) initial abundances are read here.
    """
    with open(model_path, "rb") as stream:
        model_bytes = stream.read()
    tasks = ((info, tile, _read_init(init, tile), settings, wanted) for tile in layout)
    feedback.info("%d tiles on the cluster" % len(layout))
    for index, blocks in map_tasks(client, _solve_tile_on_worker, tasks, [tile.rows * tile.cols for tile in layout],
                                   shared=(model_bytes,), feedback=feedback):
        yield layout[index], blocks


def run(input_path, model_path, output, settings=None, init_abundances=None, output_endmembers=None,
        output_latent=None, output_rmse=None, window=None, halo=HALO, feedback=None):
    """Unmix ``input_path`` with the DeepGU model at ``model_path`` (see :func:`core.unmix.deepgu_unmix`) and
    :class:`.unmix_settings.UnmixSettings` ``settings`` (default: the defaults).

    The raster is cut into square tiles sized from ``settings.memory_mb``; each is solved with a
    ``halo``-pixel margin of its neighbours and only its core is written. ``settings.cluster``
    (see :func:`core.cluster.parse_cluster`): empty solves the tiles here, one per CPU core at a time
    (:func:`tile_threads`, :mod:`core.threads`), otherwise they are tasks on a Dask cluster; the tiles and
    the result are the same. Outputs:
    abundances (P named bands), optional per-pixel endmembers (P x L bands), latent
    codes (P x K bands) and reconstruction RMSE. ``"auto"`` regularisation is resolved once for
    the whole scene, from FCLS with the model's references on the central window of
    :data:`LEVEL_WINDOW` x :data:`LEVEL_WINDOW` pixels (:mod:`core.regularisation`), so every
    tile uses the same weights. Returns the number of tiles.
    ``window`` (:class:`core.window.PixelWindow`): only those pixels of INPUT are read and unmixed (tiles
    within it, regularisation measured on its centre) and the outputs cover just them, georeferenced to the
    window; INIT_ABUNDANCES is then of the image's size or of the window's.
    Before any tile is solved the parameters are checked, and the image is read once to check that it has
    the contrast to unmix (:class:`.validation.ContrastCheck`); tiles are at least :data:`MIN_TILE` pixels
    wide, halo included, whatever ``settings.memory_mb``. GDAL's block cache is held to a quarter of
    ``settings.memory_mb`` meanwhile (:func:`core.raster_io.bounded_block_cache`).
    """
    feedback = ensure(feedback)
    check_paths({"INPUT": input_path, "MODEL": model_path, "INIT_ABUNDANCES": init_abundances},
                {"OUTPUT": output, "OUTPUT_ENDMEMBERS": output_endmembers, "OUTPUT_LATENT": output_latent,
                 "OUTPUT_RMSE": output_rmse})
    settings = settings or UnmixSettings()
    start = time.perf_counter()
    with bounded_block_cache(settings.memory_mb):
        n_tiles, n_pixels = _unmix_file(input_path, model_path, output, settings, init_abundances, output_endmembers,
                                        output_latent, output_rmse, window, halo, feedback)
        seconds = time.perf_counter() - start
        feedback.info("DeepGU: %d pixels unmixed in %.1f s, %.3f ms/pixel"
                      % (n_pixels, seconds, 1e3 * seconds / n_pixels))
    return n_tiles


def _unmix_file(input_path, model_path, output, settings, init_abundances, output_endmembers, output_latent,
                output_rmse, window, halo, feedback):
    """:func:`run` once its paths are checked, inside its block-cache limit; returns the tile and pixel counts."""
    scene = open_raster(input_path, "INPUT")
    info = scene.window(window)
    with as_parameter("MODEL"):
        model = load_model(model_path)
        check_compatible(model, info.n_bands, info.wavelengths)
    check_library(model.m0, "MODEL's reference endmembers", model.names)
    check_magnitudes(info, model.m0, "MODEL's reference endmembers")
    P, K, L = model.n_materials, model.latent_dim, model.n_bands
    label = window_label(info.label, window)
    _check_contrast(info, P, min(settings.memory_mb, MEMORY_MB), feedback, label)  # a streamed check: strips suffice
    layout = tile_layout(info.rows, info.cols, settings.memory_mb, L, P, halo, feedback)
    init = _open_init(init_abundances, scene, P, window) if init_abundances else None
    latent_names = ["%s z%d" % (name, k + 1) for name in model.names for k in range(K)]
    if is_auto(settings.lambda_z) or is_auto(settings.lambda_a):
        levels = _central_levels(info, model.m0)
        feedback.info("auto regularisation, measured on the central %d x %d pixels: %s"
                      % (min(LEVEL_WINDOW, info.rows), min(LEVEL_WINDOW, info.cols), describe(levels)))
        lambda_z, lambda_a = resolve(settings.lambda_z, settings.lambda_a, levels)
        settings = replace(settings, lambda_z=lambda_z, lambda_a=lambda_a)
    any_valid = False
    with cluster_client(settings.cluster, feedback) as client, OutputSet(
            {"abundances": "OUTPUT", "endmembers": "OUTPUT_ENDMEMBERS", "latent": "OUTPUT_LATENT",
             "rmse": "OUTPUT_RMSE"}) as outputs:
        outputs.add("abundances", output, info, P, band_names=model.names)
        outputs.add("endmembers", output_endmembers, info, P * L,
                    band_names=endmember_band_names(model.names, info.wavelengths, L), wavelengths=None)
        outputs.add("latent", output_latent, info, P * K, band_names=latent_names)
        outputs.add("rmse", output_rmse, info, 1, band_names=["rmse"])
        wanted = {key for key in ("endmembers", "latent") if key in outputs}
        if client is None:
            solved = _in_process(info, model, layout, init, settings, wanted, feedback)
        else:
            solved = _on_cluster(client, model_path, info, layout, init, settings, wanted, feedback)
        for tile, blocks in solved:
            if blocks is None:
                continue        # never-written blocks read as nodata (SPARSE_OK)
            any_valid = True
            for key, block in blocks.items():
                outputs.write(key, block, tile.row0, tile.col0)
        if not any_valid and init is not None:      # INPUT has valid pixels (the contrast check)
            raise DeepGUError("INIT_ABUNDANCES %s is nodata or non-finite at every valid pixel of INPUT"
                              % init_abundances)
        if not any_valid:
            raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % label)
    feedback.set_progress(100)
    return len(layout), info.rows * info.cols


def main(argv=None):
    """``python -m core.jobs.unmix``: the ``deepgu:unmix`` algorithm on the command line."""
    from .cli import add_common_arguments, job_parser, run_command, window

    parser = job_parser("DeepGU unmixing (deepgu:unmix) of INPUT with the model file MODEL, written to OUTPUT.",
                        [("INPUT", "hyperspectral image"), ("MODEL", "DeepGU model file (deepgu:trainvae)"),
                         ("OUTPUT", "abundance raster to write")])
    parser.add_argument("--init-abundances", help="initial abundances (default: FCLS with the model's m_p0)")
    parser.add_argument("--lambda-z", default=AUTO, help="latent regularisation (a number, or auto: the default)")
    parser.add_argument("--lambda-a", default=AUTO, help="spatial smoothing (a number, or auto: the default)")
    parser.add_argument("--max-iter", type=int, default=UNMIX["MAX_ITER"],
                        help="maximum alternations (%d)" % UNMIX["MAX_ITER"])
    parser.add_argument("--tolerance", type=float, default=UNMIX["TOLERANCE"],
                        help="stop when A and Z change, or the cost decreases, by less than this fraction (%g)"
                             % UNMIX["TOLERANCE"])
    parser.add_argument("--tv", choices=TV_KINDS, default=UNMIX["TV"])
    parser.add_argument("--device", choices=DEVICES, default=UNMIX["DEVICE"])
    parser.add_argument("--output-endmembers", help="per-pixel endmembers raster (P x L bands)")
    parser.add_argument("--output-latent", help="latent codes raster (P x K bands)")
    parser.add_argument("--output-rmse", help="reconstruction RMSE raster")
    add_common_arguments(parser, UNMIX)
    return run_command(parser, argv, lambda args, feedback: run(
        args.input, args.model, args.output, UnmixSettings(
            lambda_z=_number_or_auto(args.lambda_z, "--lambda-z"),
            lambda_a=_number_or_auto(args.lambda_a, "--lambda-a"),
            max_iter=args.max_iter, tol=args.tolerance, tv=args.tv, device=args.device, memory_mb=args.memory_mb,
            cluster=args.cluster),
        init_abundances=args.init_abundances, output_endmembers=args.output_endmembers,
        output_latent=args.output_latent, output_rmse=args.output_rmse, window=window(args), feedback=feedback))


if __name__ == "__main__":
    # run the module under its package name, so that cluster workers find its functions by name
    import importlib
    import sys

    sys.exit(importlib.import_module(__spec__.name).main())
