"""DeepGU unmixing of a raster, tile by tile with an overlap halo, in this process or on a Dask cluster.

Command line (the same parameters as ``deepgu:unmix``): ``python -m core.jobs.unmix --help``.
"""

import time
from dataclasses import replace

from ..running.cluster import BytesCache, cluster_client
from ..errors import DeepGUError
from ..checks.magnitude import check_library, check_magnitudes
from ..feedback import ensure
from ..models.model_file import check_compatible, load_model
from ..checks.paths import check_paths
from ..files.raster_io import OutputSet, bounded_block_cache, endmember_band_names, open_raster
from ..defaults import BRIGHTNESS_KINDS, DEVICES, MEMORY_MB, TV_KINDS, UNMIX
from ..solvers.regularisation import AUTO, describe, is_auto, resolve, resolve_smoothness, weights_line
from ..solvers.unmix import deepgu_unmix, resolve_device
from ..solvers.unmix_settings import UnmixSettings
from ..validation import as_parameter
from ..files.window import window_label
from . import tiled
from .tiled import HALO, LEVEL_WINDOW, MIN_TILE, tile_layout  # noqa: F401 (MIN_TILE: part of this job's interface)

#: rough working memory of the solver per pixel and per band x material, in bytes (:mod:`.tiled`).
_BYTES_PER_PIXEL_BAND_MATERIAL = tiled.BYTES_PER_PIXEL_BAND_MATERIAL


def _number_or_auto(text, option):
    """A command-line value: ``auto`` or a number."""
    if is_auto(text):
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise DeepGUError("%s must be a number or 'auto', got %r" % (option, text)) from None


def _solve_block(context, tile, block, feedback=None):
    """Solve a tile's padded window ``block`` (:func:`.tiled.tile_block`) with ``context = (model or its file's
    bytes, settings, wanted, levels)`` (levels: the scene's :class:`.regularisation.Levels`, or None); returns
    ``{output key: (bands, rows, cols) block of the core}``, or None for a None block.
    A model given as bytes (on a cluster worker) is loaded once per worker process."""
    if block is None:
        return None
    model, settings, wanted, levels = context
    if isinstance(model, bytes):
        model = _worker_models(model)
    data, valid, A0 = block
    rs, cs = tile.core_in_pad
    result = deepgu_unmix(data, model, settings, mask=valid, A_init=A0, feedback=feedback,
                          endmembers="endmembers" in wanted, levels=levels)
    P, K, L = model.n_materials, model.latent_dim, model.n_bands
    blocks = {"abundances": result.abundances[:, rs, cs], "rmse": result.rmse[None, rs, cs]}
    if "endmembers" in wanted:   # (L, P, r, c) -> material-major (P*L, r, c)
        blocks["endmembers"] = result.endmembers[:, :, rs, cs].transpose(1, 0, 2, 3).reshape(P * L, tile.rows,
                                                                                              tile.cols)
    if "latent" in wanted:
        blocks["latent"] = result.latent[:, :, rs, cs].reshape(P * K, tile.rows, tile.cols)
    return blocks


_worker_models = BytesCache(lambda data: load_model("model file", data))


def tile_threads(settings, n_tiles):
    """:func:`.tiled.tile_threads` for ``settings.device``."""
    return tiled.tile_threads(n_tiles, gpu=resolve_device(settings.device).type == "cuda")


def run(input_path, model_path, output, settings=None, init_abundances=None, output_endmembers=None,
        output_latent=None, output_rmse=None, window=None, halo=HALO, feedback=None):
    """Unmix ``input_path`` with the DeepGU model at ``model_path`` (see :func:`core.solvers.unmix.deepgu_unmix`) and
    :class:`.unmix_settings.UnmixSettings` ``settings`` (default: the defaults).

    The raster is cut into square tiles sized from ``settings.memory_mb``; each is solved with a
    ``halo``-pixel margin of its neighbours and only its core is written. ``settings.cluster``
    (see :func:`core.running.cluster.parse_cluster`): empty solves the tiles here, one per CPU core at a time
    (:func:`tile_threads`, :mod:`core.running.threads`), otherwise they are tasks on a Dask cluster; the tiles and
    the result are the same. Outputs:
    abundances (P named bands), optional per-pixel endmembers (P x L bands), latent
    codes (P x K bands) and reconstruction RMSE. ``"auto"`` regularisation is resolved once for
    the whole scene, from FCLS with the model's references on the central window of
    :data:`LEVEL_WINDOW` x :data:`LEVEL_WINDOW` pixels (:mod:`core.solvers.regularisation`), so every
    tile uses the same weights. Returns the number of tiles.
    ``window`` (:class:`core.files.window.PixelWindow`): only those pixels of INPUT are read and unmixed (tiles
    within it, regularisation measured on its centre) and the outputs cover just them, georeferenced to the
    window; INIT_ABUNDANCES is then of the image's size or of the window's.
    Before any tile is solved the parameters are checked, and the image is read once to check that it has
    the contrast to unmix (:class:`.validation.ContrastCheck`); tiles are at least :data:`MIN_TILE` pixels
    wide, halo included, whatever ``settings.memory_mb``. GDAL's block cache is held to a quarter of
    ``settings.memory_mb`` meanwhile (:func:`core.files.raster_io.bounded_block_cache`).
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
    tiled.check_contrast(info, P, min(settings.memory_mb, MEMORY_MB), feedback, label)  # streamed: strips suffice
    layout = tile_layout(info.rows, info.cols, settings.memory_mb, L, P, halo, feedback)
    init = tiled.open_init(init_abundances, scene, P, window) if init_abundances else None
    latent_names = ["%s z%d" % (name, k + 1) for name in model.names for k in range(K)]
    levels, auto_weights = None, is_auto(settings.lambda_z) or is_auto(settings.lambda_a)
    if (is_auto(settings.lambda_z) or is_auto(settings.lambda_a) or is_auto(settings.code_smoothing)
            or settings.start == "elmm"):      # ELMM's own weights are auto: every tile uses the scene's levels
        levels = tiled.central_levels(info, model.m0)
        feedback.info("auto regularisation, measured on the central %d x %d pixels: %s"
                      % (min(LEVEL_WINDOW, info.rows), min(LEVEL_WINDOW, info.cols), describe(levels)))
        lambda_z, lambda_a = resolve(settings.lambda_z, settings.lambda_a, levels)
        settings = replace(settings, lambda_z=lambda_z, lambda_a=lambda_a,
                           code_smoothing=resolve_smoothness(settings.code_smoothing, levels))
    with cluster_client(settings.cluster, feedback) as client, OutputSet(
            {"abundances": "OUTPUT", "endmembers": "OUTPUT_ENDMEMBERS", "latent": "OUTPUT_LATENT",
             "rmse": "OUTPUT_RMSE"}) as outputs:
        outputs.add("abundances", output, info, P, band_names=model.names)
        outputs.add("endmembers", output_endmembers, info, P * L,
                    band_names=endmember_band_names(model.names, info.wavelengths, L), wavelengths=None)
        outputs.add("latent", output_latent, info, P * K, band_names=latent_names)
        outputs.add("rmse", output_rmse, info, 1, band_names=["rmse"])
        wanted = {key for key in ("endmembers", "latent") if key in outputs}
        worker_context = None
        if client is not None:
            # the tiles' log lines stay on the workers: the weights they all use are stated here
            feedback.info(weights_line(settings.lambda_z, settings.lambda_a, levels if auto_weights else None))
            with open(model_path, "rb") as stream:
                worker_context = (stream.read(), settings, wanted, levels)
        solved = tiled.solve_tiles(info, layout, init, _solve_block, (model, settings, wanted, levels), client,
                                   settings.memory_mb, feedback, tile_threads(settings, len(layout)), worker_context)
        tiled.write_tiles(outputs, solved, label, init_abundances)
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
    parser.add_argument("--brightness", choices=BRIGHTNESS_KINDS, default=UNMIX["BRIGHTNESS"],
                        help="where a material's change of brightness goes: its spectrum (the paper's model) or "
                             "the abundances (the codes change shape only, as FCLS attributes brightness)")
    parser.add_argument("--device", choices=DEVICES, default=UNMIX["DEVICE"])
    parser.add_argument("--output-endmembers", help="per-pixel endmembers raster (P x L bands)")
    parser.add_argument("--output-latent", help="latent codes raster (P x K bands)")
    parser.add_argument("--output-rmse", help="reconstruction RMSE raster")
    add_common_arguments(parser, UNMIX)
    return run_command(parser, argv, lambda args, feedback: run(
        args.input, args.model, args.output, UnmixSettings(
            lambda_z=_number_or_auto(args.lambda_z, "--lambda-z"),
            lambda_a=_number_or_auto(args.lambda_a, "--lambda-a"),
            max_iter=args.max_iter, tol=args.tolerance, tv=args.tv, brightness=args.brightness, device=args.device,
            memory_mb=args.memory_mb,
            cluster=args.cluster),
        init_abundances=args.init_abundances, output_endmembers=args.output_endmembers,
        output_latent=args.output_latent, output_rmse=args.output_rmse, window=window(args), feedback=feedback))


if __name__ == "__main__":
    # run the module under its package name, so that cluster workers find its functions by name
    import importlib
    import sys

    sys.exit(importlib.import_module(__spec__.name).main())
