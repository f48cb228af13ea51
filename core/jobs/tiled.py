"""Raster jobs solved tile by tile with an overlap halo, in this process (threads) or on a Dask cluster.

The machinery ``deepgu:unmix`` and the variability methods (``deepgu:elmm``, ``glmm``, ``plmm``) share: the tile
layout sized from MEMORY_MB, the streamed contrast check, the INIT_ABUNDANCES raster, the regularisation levels
of the central window, and :func:`solve_tiles`, which runs a job's ``solve(context, tile, block, feedback=None)``
on every tile (a module-level function and a picklable ``context``: on a cluster the context is sent once to
every worker) and yields the solved core blocks for the job to write.
"""

import numpy as np
import torch

from ..running.cluster import map_tasks
from ..errors import DeepGUError
from ..solvers.fcls import fcls
from ..feedback import ensure
from ..checks.grid import check_same_grid
from ..files.raster_io import block_rows, bounded_block_cache, iter_blocks, open_raster, read_block, valid_pixels
from ..solvers.regularisation import measure_levels
from ..running.threads import map_in_threads
from ..running.tiling import tile_size, tiles
from ..validation import ContrastCheck

#: pixels of overlap around each tile; the TV coupling's influence dies out well within it.
HALO = 8
#: side of the central window on which ``auto`` regularisation's levels are measured (pixels).
LEVEL_WINDOW = 256
#: rough working memory of the solvers per pixel and per band x material, in bytes.
BYTES_PER_PIXEL_BAND_MATERIAL = 160
#: smallest padded tile side, whatever MEMORY_MB says: smaller tiles spend most of their work on the halo.
MIN_TILE = 32


def open_init(path, like, n_materials, window=None, what="the model"):
    """Describe the INIT_ABUNDANCES raster, checked against the image and ``n_materials``. With a ``window`` of the
    image, a raster of the whole image's size is restricted to it, one of the window's size is taken as it is;
    either must lie on its grid (:func:`core.checks.grid.check_same_grid`)."""
    info = open_raster(path, "INIT_ABUNDANCES")
    if info.n_bands != n_materials:
        raise DeepGUError("INIT_ABUNDANCES has %d bands but %s has %d materials" % (info.n_bands, what, n_materials))
    if window is not None and (info.rows, info.cols) == (window.rows, window.cols):
        check_same_grid(info, like.window(window), like_name="INPUT's EXTENT window")
        return info
    if (info.rows, info.cols) != (like.rows, like.cols):
        raise DeepGUError("INIT_ABUNDANCES is %d x %d pixels but INPUT is %d x %d%s"
                          % (info.rows, info.cols, like.rows, like.cols,
                             "" if window is None else " and its EXTENT window %d x %d" % (window.rows, window.cols)))
    check_same_grid(info, like)
    return info.window(window)


def check_contrast(info, n_materials, memory_mb, feedback, label=None):
    """Stream the image once: refuse it (naming ``label``, default the raster's) unless it has a non-zero pixel and
    ``n_materials`` distinct ones."""
    contrast = ContrastCheck(info.n_bands, n_materials)
    for row0, n_rows in iter_blocks(info, block_rows(info, memory_mb)):
        feedback.check_canceled()
        contrast.update(valid_pixels(*read_block(info, row0, n_rows)))
    contrast.check(label or info.label)


def tile_layout(rows, cols, memory_mb, n_bands, n_materials, halo=HALO, feedback=None):
    """The tiles of a ``rows x cols`` image whose padded working set fits ``memory_mb``, padded side at least
    :data:`MIN_TILE` (a smaller budget is raised to it, with a note to ``feedback``)."""
    budget = memory_mb * 2 ** 20 // (BYTES_PER_PIXEL_BAND_MATERIAL * n_bands * n_materials)
    size = max(tile_size(budget, halo), MIN_TILE - 2 * halo, 1)
    if size > tile_size(budget, halo):
        ensure(feedback).info("MEMORY_MB=%g gives tiles below %d x %d pixels: using %d x %d tiles (with the halo)"
                              % (memory_mb, MIN_TILE, MIN_TILE, size + 2 * halo, size + 2 * halo))
    return list(tiles(rows, cols, size, halo))


def central_levels(info, m0, names=("LAMBDA_Z", "LAMBDA_A")):
    """Regularisation levels of FCLS with ``m0`` on the central window of the raster (``names``: the weights to
    give explicitly when that window is all nodata)."""
    rows, cols = min(LEVEL_WINDOW, info.rows), min(LEVEL_WINDOW, info.cols)
    data, valid = read_block(info, (info.rows - rows) // 2, rows, (info.cols - cols) // 2, cols)
    if not valid.any():
        raise DeepGUError("the central %d x %d pixels of %s are all nodata: give %s explicitly"
                          % (rows, cols, info.label, " and ".join(names)))
    A = np.full((m0.shape[1],) + valid.shape, np.nan)
    A[:, valid] = fcls(data[:, valid].astype(np.float64), m0)
    return measure_levels(data, m0, A, valid)


def tile_block(info, tile, init_block):
    """The padded window of ``tile``: ``(data, valid, A0)``, valid where INPUT is and, with ``init_block`` (the
    window's ``(A0, valid)`` of INIT_ABUNDANCES, or None), where A0 is too; None when the core has no valid pixel."""
    data, valid = read_block(info, tile.pad_row0, tile.pad_rows, tile.pad_col0, tile.pad_cols)
    A0 = None
    if init_block is not None:
        A0, init_valid = init_block
        valid &= init_valid
    rs, cs = tile.core_in_pad
    return (data, valid, A0) if valid[rs, cs].any() else None


def read_init(init, tile):
    """``(A0, valid)`` of INIT_ABUNDANCES (``init``, or None) on the padded window of ``tile``."""
    if init is None:
        return None
    return read_block(init, tile.pad_row0, tile.pad_rows, tile.pad_col0, tile.pad_cols)


def tile_threads(n_tiles, gpu=False):
    """Tiles solved at once in this process: one per torch thread (``torch.get_num_threads()``, the cores
    unless limited) and at most ``n_tiles`` on a CPU, one on a GPU (:mod:`core.running.threads`)."""
    if gpu:
        return 1
    return max(1, min(torch.get_num_threads(), n_tiles))


def _solve_logged(header, solve, context, tile, block, feedback=None):
    """``solve(context, tile, block)`` with ``header`` (a tile's log line, or None) logged first."""
    if header:
        feedback.info(header)
    return solve(context, tile, block, feedback=feedback)


def _solve_on_worker(solve, context, info, tile, init_block, memory_mb):
    """A tile read and solved in a cluster worker."""
    with bounded_block_cache(memory_mb):
        return solve(context, tile, tile_block(info, tile, init_block))


def solve_tiles(info, layout, init, solve, context, client, memory_mb, feedback, n_threads=1, worker_context=None):
    """Yield ``(tile, blocks)`` as the tiles of ``layout`` are solved, ``blocks = solve(context, tile, block,
    feedback=...)`` (None for a tile without valid pixels).

    ``client`` None: in this process, ``n_threads`` tiles at a time (:func:`core.running.threads.map_in_threads`; the
    raster is read here, in the calling thread, and each tile's log lines reach ``feedback`` together). Otherwise
    on the Dask cluster of ``client`` (any order): ``worker_context`` (default ``context``) is sent once to every
    worker, the workers read their tile of the image themselves and the (small) initial abundances are read here.
    """
    if client is not None:
        tasks = ((info, tile, read_init(init, tile), memory_mb) for tile in layout)
        feedback.info("%d tiles on the cluster" % len(layout))
        for index, blocks in map_tasks(client, _solve_on_worker, tasks, [tile.rows * tile.cols for tile in layout],
                                       shared=(solve, context if worker_context is None else worker_context),
                                       feedback=feedback):
            yield layout[index], blocks
        return

    def header(number, tile):
        if len(layout) == 1:
            return None
        return "tile %d/%d: rows %d-%d, cols %d-%d" % (number + 1, len(layout), tile.row0, tile.row0 + tile.rows - 1,
                                                       tile.col0, tile.col0 + tile.cols - 1)

    tasks = ((header(number, tile), solve, context, tile, tile_block(info, tile, read_init(init, tile)))
             for number, tile in enumerate(layout))
    for index, lines, blocks in map_in_threads(_solve_logged, tasks, len(layout), n_threads, feedback):
        for line in lines:
            feedback.info(line)
        yield layout[index], blocks


def write_tiles(outputs, solved, label, init_path=None):
    """Write every solved tile's blocks to ``outputs`` (:class:`core.files.raster_io.OutputSet`); refuse a run in which
    no tile had a valid pixel (INPUT has some: the contrast check); ``label`` names the pixels read
    (:func:`core.files.window.window_label`)."""
    any_valid = False
    for tile, blocks in solved:
        if blocks is None:
            continue        # never-written blocks read as nodata (SPARSE_OK)
        any_valid = True
        for key, block in blocks.items():
            outputs.write(key, block, tile.row0, tile.col0)
    if not any_valid and init_path:
        raise DeepGUError("INIT_ABUNDANCES %s is nodata or non-finite at every valid pixel of INPUT" % init_path)
    if not any_valid:
        raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % label)
