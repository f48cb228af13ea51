"""ELMM, GLMM or PLMM unmixing of a raster (``deepgu:elmm``, ``deepgu:glmm``, ``deepgu:plmm``), tile by tile with
an overlap halo, in this process or on a Dask cluster (:mod:`.tiled`, as ``deepgu:unmix``).

The methods are those of :mod:`core.solvers.variability_models`; their auto weights are resolved once for the whole
scene, from FCLS with the references on the central window (:func:`.tiled.central_levels`), so every tile uses
the same numbers.
"""

from dataclasses import dataclass

from ..running.cluster import cluster_client
from ..defaults import MEMORY_MB
from ..errors import DeepGUError
from ..feedback import ensure
from ..files.library import check_bands, read_spectra
from ..checks.magnitude import check_library, check_magnitudes
from ..checks.paths import check_paths
from ..files.raster_io import OutputSet, bounded_block_cache, endmember_band_names, open_raster
from ..validation import MAX_ITERATIONS, MAX_MEMORY_MB, as_parameter, finite, integer
from ..files.window import window_label
from ..solvers.variability_models import (WEIGHTS, check_weights, describe_weights, method_defaults, needs_levels,
                                  resolve_weights, unmix_variability)
from . import tiled


@dataclass(frozen=True)
class VariabilitySettings:
    """A variability method's run: ``method`` (elmm, glmm or plmm), ``weights`` ({name: number or None = auto},
    :data:`core.solvers.variability_models.WEIGHTS`), ``max_iter``, ``tol``, ``memory_mb`` (per tile) and ``cluster``
    (:func:`core.running.cluster.parse_cluster`); None: the method's default (:data:`core.defaults.ELMM`, ...). Checked
    on creation with messages naming the Processing parameter."""

    method: str
    weights: dict = None
    max_iter: int = None
    tol: float = None
    memory_mb: float = None
    cluster: str = None

    def __post_init__(self):
        table = method_defaults(self.method)
        for name, key in (("max_iter", "MAX_ITER"), ("tol", "TOLERANCE"), ("memory_mb", "MEMORY_MB"),
                          ("cluster", "CLUSTER")):
            if getattr(self, name) is None:
                object.__setattr__(self, name, table[key])
        checked = dict(weights=check_weights(self.method, self.weights),
                       max_iter=integer("MAX_ITER", self.max_iter, 1, MAX_ITERATIONS),
                       tol=finite("TOLERANCE", self.tol, 0, 1, low_open=True),
                       memory_mb=finite("MEMORY_MB", self.memory_mb, 0, MAX_MEMORY_MB, low_open=True),
                       cluster=(self.cluster or "").strip())
        for name, value in checked.items():
            object.__setattr__(self, name, value)


def variability_band_names(method, names, wavelengths, n_bands):
    """Band names of OUTPUT_VARIABILITY: ELMM ``psi soil``; GLMM ``psi soil @ 450 nm`` (material-major);
    PLMM ``||dM|| soil``."""
    if method == "glmm":
        return ["psi " + name for name in endmember_band_names(names, wavelengths, n_bands)]
    return [("psi %s" if method == "elmm" else "||dM|| %s") % name for name in names]


def _solve_block(context, tile, block, feedback=None):
    """Solve a tile's padded window ``block`` (:func:`.tiled.tile_block`) with ``context = (settings with the
    resolved weights, M0, wanted)``; returns ``{output key: (bands, rows, cols) block of the core}``, or None."""
    if block is None:
        return None
    settings, M0, wanted = context
    data, valid, A0 = block
    rs, cs = tile.core_in_pad
    result = unmix_variability(settings.method, data, M0, settings.weights, mask=valid, A_init=A0,
                               max_iter=settings.max_iter, tol=settings.tol, endmembers="endmembers" in wanted,
                               feedback=feedback)
    L, P = M0.shape
    blocks = {"abundances": result.abundances[:, rs, cs], "rmse": result.rmse[None, rs, cs]}
    if "endmembers" in wanted:   # (L, P, r, c) -> material-major (P*L, r, c)
        blocks["endmembers"] = result.endmembers[:, :, rs, cs].transpose(1, 0, 2, 3).reshape(P * L, tile.rows,
                                                                                              tile.cols)
    if "variability" in wanted:
        blocks["variability"] = result.variability[:, rs, cs]
    return blocks


def run(input_path, endmembers_csv, output, settings, init_abundances=None, output_endmembers=None,
        output_variability=None, output_rmse=None, window=None, halo=tiled.HALO, feedback=None):
    """Unmix ``input_path`` with ``settings.method`` and the references of ``endmembers_csv`` (the library M0).

    Outputs: abundances (P named bands), optional per-pixel endmembers (P x L bands, material-major), the method's
    variability (ELMM: P scaling factors; GLMM: P x L; PLMM: ||dM_n||_F per material) and the reconstruction
    RMSE. INIT_ABUNDANCES (of the image's or ``window``'s size; default FCLS with M0), ``window``, the tiles,
    threads and cluster as :func:`core.jobs.unmix.run`. Returns the number of tiles.
    """
    feedback = ensure(feedback)
    check_paths({"INPUT": input_path, "ENDMEMBERS": endmembers_csv, "INIT_ABUNDANCES": init_abundances},
                {"OUTPUT": output, "OUTPUT_ENDMEMBERS": output_endmembers, "OUTPUT_VARIABILITY": output_variability,
                 "OUTPUT_RMSE": output_rmse})
    with bounded_block_cache(settings.memory_mb):
        return _run(input_path, endmembers_csv, output, settings, init_abundances, output_endmembers,
                    output_variability, output_rmse, window, halo, feedback)


def _run(input_path, endmembers_csv, output, settings, init_abundances, output_endmembers, output_variability,
         output_rmse, window, halo, feedback):
    scene = open_raster(input_path, "INPUT")
    info = scene.window(window)
    with as_parameter("ENDMEMBERS"):
        library = read_spectra(endmembers_csv)
        check_bands(library, info.n_bands, info.wavelengths, "the endmember file")
        M0 = library.as_endmembers().astype(float)
    L, P = M0.shape
    if P > L:
        raise DeepGUError("%d endmembers but only %d bands: the problem is underdetermined" % (P, L))
    check_library(M0, "ENDMEMBERS", library.materials)
    check_magnitudes(info, M0, "ENDMEMBERS")
    label = window_label(info.label, window)
    tiled.check_contrast(info, P, min(settings.memory_mb, MEMORY_MB), feedback, label)
    layout = tiled.tile_layout(info.rows, info.cols, settings.memory_mb, L, P, halo, feedback)
    init = tiled.open_init(init_abundances, scene, P, window, "ENDMEMBERS") if init_abundances else None
    method, levels = settings.method, None
    if needs_levels(method, settings.weights):
        auto = [name.upper() for name in WEIGHTS[method] if settings.weights[name] is None]
        levels = tiled.central_levels(info, M0, auto)
    weights = resolve_weights(method, settings.weights, M0, levels)
    feedback.info(describe_weights(method, weights, [n for n in WEIGHTS[method] if settings.weights[n] is None],
                                   levels))
    context = (_resolved(settings, weights), M0, None)
    with cluster_client(settings.cluster, feedback) as client, OutputSet(
            {"abundances": "OUTPUT", "endmembers": "OUTPUT_ENDMEMBERS", "variability": "OUTPUT_VARIABILITY",
             "rmse": "OUTPUT_RMSE"}) as outputs:
        outputs.add("abundances", output, info, P, band_names=library.materials)
        outputs.add("endmembers", output_endmembers, info, P * L,
                    band_names=endmember_band_names(library.materials, info.wavelengths, L), wavelengths=None)
        n_variability = P * L if method == "glmm" else P
        outputs.add("variability", output_variability, info, n_variability,
                    band_names=variability_band_names(method, library.materials, info.wavelengths, L),
                    wavelengths=None)
        outputs.add("rmse", output_rmse, info, 1, band_names=["rmse"])
        context = context[:2] + ({key for key in ("endmembers", "variability") if key in outputs},)
        solved = tiled.solve_tiles(info, layout, init, _solve_block, context, client, settings.memory_mb, feedback,
                                   tiled.tile_threads(len(layout)))
        tiled.write_tiles(outputs, solved, label, init_abundances)
    feedback.set_progress(100)
    return len(layout)


def _resolved(settings, weights):
    """``settings`` with every weight a number (the whole scene's)."""
    return VariabilitySettings(settings.method, weights, settings.max_iter, settings.tol, settings.memory_mb,
                               settings.cluster)
