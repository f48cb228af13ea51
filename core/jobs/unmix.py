"""DeepGU unmixing of a raster, tile by tile with an overlap halo."""

import numpy as np

from ..errors import DeepGUError
from ..fcls import fcls
from ..feedback import SubFeedback, ensure
from ..model_file import check_compatible, load_model
from ..raster_io import OutputSet, endmember_band_names, open_raster, read_block
from ..regularisation import AUTO, describe, is_auto, measure_levels, resolve
from ..tiling import tile_size, tiles
from ..unmix import deepgu_unmix

#: pixels of overlap around each tile; the TV coupling's influence dies out well within it.
HALO = 8
#: side of the central window on which ``auto`` regularisation's levels are measured (pixels).
LEVEL_WINDOW = 256
#: rough working memory of the solver per pixel and per band x material, in bytes.
_BYTES_PER_PIXEL_BAND_MATERIAL = 160


def _open_init(path, like, n_materials):
    """Describe the INIT_ABUNDANCES raster, checked against the image and the model."""
    info = open_raster(path)
    if (info.rows, info.cols) != (like.rows, like.cols):
        raise DeepGUError("INIT_ABUNDANCES is %d x %d pixels but the image is %d x %d"
                          % (info.rows, info.cols, like.rows, like.cols))
    if info.n_bands != n_materials:
        raise DeepGUError("INIT_ABUNDANCES has %d bands but the model has %d materials" % (info.n_bands, n_materials))
    return info


def _central_levels(info, m0):
    """Regularisation levels of FCLS with ``m0`` on the central window of the raster."""
    rows, cols = min(LEVEL_WINDOW, info.rows), min(LEVEL_WINDOW, info.cols)
    data, valid = read_block(info, (info.rows - rows) // 2, rows, (info.cols - cols) // 2, cols)
    if not valid.any():
        raise DeepGUError("the central %d x %d pixels of %s are all nodata: give LAMBDA_Z and LAMBDA_A "
                          "explicitly" % (rows, cols, info.path))
    A = np.full((m0.shape[1],) + valid.shape, np.nan)
    A[:, valid] = fcls(data[:, valid].astype(np.float64), m0)
    return measure_levels(data, m0, A, valid)


def run(input_path, model_path, output, init_abundances=None, output_endmembers=None, output_latent=None,
        output_rmse=None, lambda_z=AUTO, lambda_a=AUTO, max_iter=10, tol=1e-3, tv="anisotropic", device="auto",
        memory_mb=1024, halo=HALO, feedback=None):
    """Unmix ``input_path`` with the DeepGU model at ``model_path`` (see :func:`core.unmix.deepgu_unmix`).

    The raster is cut into square tiles sized from ``memory_mb``; each is solved with a
    ``halo``-pixel margin of its neighbours and only its core is written. Outputs:
    abundances (P named bands), optional per-pixel endmembers (P x L bands), latent
    codes (P x K bands) and reconstruction RMSE. ``"auto"`` regularisation is resolved once for
    the whole scene, from FCLS with the model's references on the central window of
    :data:`LEVEL_WINDOW` x :data:`LEVEL_WINDOW` pixels (:mod:`core.regularisation`), so every
    tile uses the same weights. Returns the number of tiles.
    """
    feedback = ensure(feedback)
    info = open_raster(input_path)
    model = load_model(model_path)
    check_compatible(model, info.n_bands, info.wavelengths)
    P, K, L = model.n_materials, model.latent_dim, model.n_bands
    budget = memory_mb * 2 ** 20 // (_BYTES_PER_PIXEL_BAND_MATERIAL * L * P)
    layout = list(tiles(info.rows, info.cols, tile_size(budget, halo), halo))
    init = _open_init(init_abundances, info, P) if init_abundances else None
    latent_names = ["%s z%d" % (name, k + 1) for name in model.names for k in range(K)]
    if is_auto(lambda_z) or is_auto(lambda_a):
        levels = _central_levels(info, model.m0)
        feedback.info("auto regularisation, measured on the central %d x %d pixels: %s"
                      % (min(LEVEL_WINDOW, info.rows), min(LEVEL_WINDOW, info.cols), describe(levels)))
        lambda_z, lambda_a = resolve(lambda_z, lambda_a, levels)
    any_valid = False
    with OutputSet() as outputs:
        outputs.add("abundances", output, info, P, band_names=model.names)
        outputs.add("endmembers", output_endmembers, info, P * L,
                    band_names=endmember_band_names(model.names, info.wavelengths, L), wavelengths=None)
        outputs.add("latent", output_latent, info, P * K, band_names=latent_names)
        outputs.add("rmse", output_rmse, info, 1, band_names=["rmse"])
        for number, tile in enumerate(layout):
            feedback.check_canceled()
            data, valid = read_block(info, tile.pad_row0, tile.pad_rows, tile.pad_col0, tile.pad_cols)
            rs, cs = tile.core_in_pad
            if not valid[rs, cs].any():
                continue        # never-written blocks read as nodata (SPARSE_OK)
            any_valid = True
            A0 = None
            if init is not None:
                A0, init_valid = read_block(init, tile.pad_row0, tile.pad_rows, tile.pad_col0, tile.pad_cols)
                valid &= init_valid
            if len(layout) > 1:
                feedback.info("tile %d/%d: rows %d-%d, cols %d-%d" % (number + 1, len(layout), tile.row0,
                              tile.row0 + tile.rows - 1, tile.col0, tile.col0 + tile.cols - 1))
            result = deepgu_unmix(data, model, mask=valid, A_init=A0, lambda_z=lambda_z, lambda_a=lambda_a,
                                  max_iter=max_iter, tol=tol, tv=tv, device=device,
                                  feedback=SubFeedback(feedback, 100.0 * number / len(layout),
                                                       100.0 * (number + 1) / len(layout)))
            outputs.write("abundances", result.abundances[:, rs, cs], tile.row0, tile.col0)
            if "endmembers" in outputs:
                # (L, P, r, c) -> material-major (P*L, r, c)
                E = result.endmembers[:, :, rs, cs].transpose(1, 0, 2, 3).reshape(P * L, tile.rows, tile.cols)
                outputs.write("endmembers", E, tile.row0, tile.col0)
            if "latent" in outputs:
                outputs.write("latent", result.latent[:, :, rs, cs].reshape(P * K, tile.rows, tile.cols),
                              tile.row0, tile.col0)
            outputs.write("rmse", result.rmse[None, rs, cs], tile.row0, tile.col0)
        if not any_valid:
            raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % input_path)
    feedback.set_progress(100)
    return len(layout)
