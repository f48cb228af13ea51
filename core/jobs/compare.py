"""Several unmixing methods on one scene, side by side in one HTML report (``deepgu:compare``).

Each method runs through its own job, the one ``deepgu:fcls``, ``deepgu:plmm``, ``deepgu:elmm``, ``deepgu:glmm``
and ``deepgu:unmix`` run (:mod:`.fcls`, :mod:`.variability`, :mod:`.unmix`: tiles, threads, cluster, auto weights and
checks as there, at their defaults), writing its abundances and per-pixel reconstruction RMSE to a temporary
folder that is removed afterwards. The report (:mod:`core.evaluation.report`) is then built from those rasters, the
time of each job and the weights its log states; with a REFERENCE abundance raster (on INPUT's grid,
:mod:`core.checks.grid`) every method is scored as ``deepgu:metrics`` scores (:func:`.metrics.accumulate`,
:class:`core.evaluation.metrics.MetricsAccumulator`: RMSE_A, its materials matched to the reference's), and with
true per-pixel endmembers (REFERENCE_ENDMEMBERS) RMSE_M and SAM_M too, the columns of the paper's Table III.

The report holds every map of every method in memory and in the page: the scene (or its EXTENT window) may have
at most :data:`core.defaults.COMPARE_MAX_PIXELS` pixels.
"""

import os
import tempfile
import time

import numpy as np

from ..checks.grid import check_same_grid
from ..checks.paths import check_paths
from ..defaults import COMPARE, COMPARE_MAX_PIXELS, COMPARE_METHODS
from ..errors import DeepGUError
from ..evaluation.metrics import match_materials
from ..evaluation.report import MethodReport, build_html, overall_rmse
from ..feedback import SubFeedback, ensure
from ..files.atomic import atomic_output
from ..files.library import read_spectra
from ..files.raster_io import open_raster, read_all, read_block
from ..files.window import window_label
from ..validation import as_parameter

#: how the report names each method.
LABELS = {"fcls": "FCLS", "plmm": "PLMM", "elmm": "ELMM", "glmm": "GLMM", "deepgu": "DeepGU"}
#: the start of the log line in which a method states the weights it used (:func:`core.solvers.unmix.deepgu_unmix`,
#: :func:`core.solvers.variability_models.describe_weights`); FCLS has none.
WEIGHTS_LINE = {"deepgu": "regularisation: ", "plmm": "PLMM weights: ", "elmm": "ELMM weights: ",
                "glmm": "GLMM weights: "}
#: the start of the line in which ``deepgu:unmix`` states the levels its auto weights were set from (:mod:`.unmix`).
DEEPGU_AUTO_LINE = "auto regularisation, measured on"


class _MethodLog(SubFeedback):
    """A method's share of the progress; its log lines are kept (``lines``) and passed on, prefixed by its label
    (``[ELMM] ...``)."""

    def __init__(self, parent, start, stop, label):
        super().__init__(parent, start, stop)
        self.label, self.lines = label, []

    def info(self, message):
        self.lines.append(message)
        self.parent.info("[%s] %s" % (self.label, message))


def choose_methods(methods, model_path):
    """The methods to run, in :data:`COMPARE_METHODS` order: ``methods`` (names; empty or None: every method that can
    run, DeepGU only with a model). Refusals name METHODS or MODEL."""
    if not methods:
        return [m for m in COMPARE_METHODS if m != "deepgu" or model_path]
    unknown = [m for m in methods if m not in COMPARE_METHODS]
    if unknown:
        raise DeepGUError("METHODS: unknown method %s (choose among %s)" % (", ".join(map(repr, unknown)),
                                                                            ", ".join(COMPARE_METHODS)))
    if "deepgu" in methods and not model_path:
        raise DeepGUError("METHODS includes deepgu, which needs a MODEL (a trained DeepGU model file): give MODEL or "
                          "leave deepgu out")
    return [m for m in COMPARE_METHODS if m in methods]


def _check_model(model_path, info, n_materials):
    """Load MODEL early (a bad one is refused before any method runs) and check it against INPUT and ENDMEMBERS."""
    from ..models.model_file import check_compatible, load_model

    with as_parameter("MODEL"):
        model = load_model(model_path)
        check_compatible(model, info.n_bands, info.wavelengths)
    if model.n_materials != n_materials:
        raise DeepGUError("MODEL has %d materials but ENDMEMBERS has %d: the methods must unmix the same materials"
                          % (model.n_materials, n_materials))


def _run_method(method, input_path, endmembers, model_path, outputs, memory_mb, cluster, window, feedback):
    """Run ``method``'s job on INPUT, writing ``outputs = (abundances, rmse, per-pixel endmembers or None)`` (FCLS
    writes no endmembers: they are ENDMEMBERS at every pixel)."""
    abundances, rmse, per_pixel = outputs
    if method == "fcls":
        from . import fcls as job
        job.run(input_path, endmembers, abundances, output_rmse=rmse, memory_mb=memory_mb, cluster=cluster,
                window=window, feedback=feedback)
    elif method == "deepgu":
        from ..solvers.unmix_settings import UnmixSettings
        from . import unmix as job
        job.run(input_path, model_path, abundances, UnmixSettings(memory_mb=memory_mb, cluster=cluster),
                output_rmse=rmse, output_endmembers=per_pixel, window=window, feedback=feedback)
    else:
        from . import variability as job
        job.run(input_path, endmembers, abundances, job.VariabilitySettings(method, memory_mb=memory_mb,
                                                                            cluster=cluster),
                output_rmse=rmse, output_endmembers=per_pixel, window=window, feedback=feedback)


def _weights(method, lines):
    """What ``method``'s log ``lines`` say about its weights (DeepGU's with the levels its auto ones came from)."""
    if method == "fcls":
        return "none (the endmembers are fixed)"
    prefix = WEIGHTS_LINE[method]
    found = [line[len(prefix):] for line in lines if line.startswith(prefix)]
    if not found:
        return "not in the log (see the method's log)"
    auto = [line.partition(": ")[2] for line in lines if line.startswith(DEEPGU_AUTO_LINE)]
    return found[0] + (" (auto: %s)" % auto[0] if method == "deepgu" and auto else "")


def _open_truth(reference, reference_endmembers, scene, window, n_materials):
    """REFERENCE (and REFERENCE_ENDMEMBERS) on INPUT's grid, restricted to ``window``: ``(A* (P, rows, cols) NaN at
    nodata, valid, A*'s raster, per-pixel endmembers' raster or None)``."""
    info = open_raster(reference, "REFERENCE")
    check_same_grid(info, scene)
    if info.n_bands != n_materials:
        raise DeepGUError("REFERENCE has %d bands but ENDMEMBERS has %d materials: give one abundance band per "
                          "material" % (info.n_bands, n_materials))
    info = info.window(window)
    data, valid = read_block(info, 0, info.rows)
    data[:, ~valid] = np.nan
    per_pixel = None
    if reference_endmembers:
        per_pixel = open_raster(reference_endmembers, "REFERENCE_ENDMEMBERS")
        check_same_grid(per_pixel, scene)
        if per_pixel.n_bands != n_materials * scene.n_bands:
            raise DeepGUError("REFERENCE_ENDMEMBERS has %d bands but needs %d x %d (materials x INPUT's bands, "
                              "material-major)" % (per_pixel.n_bands, n_materials, scene.n_bands))
        per_pixel = per_pixel.window(window)
    return data, valid, info, per_pixel


def _scores(method, outputs, truth, m0, memory_mb, feedback):
    """``method``'s scores against ``truth`` (:func:`_open_truth`) from its ``outputs``, streamed
    (:func:`.metrics.accumulate`): ``{"RMSE_A", "perm"}``, with true endmembers ``"RMSE_M"`` and ``"SAM_M"`` too
    (FCLS's endmembers: ``m0`` at every pixel)."""
    from .metrics import accumulate

    _, _, A_true, M_true = truth
    estimate = open_raster(outputs[0])
    per_pixel = open_raster(outputs[2]) if outputs[2] else None
    accumulator = accumulate(estimate, A_true, per_pixel, M_true, constant_endmembers=m0 if method == "fcls" else None,
                             memory_mb=memory_mb, feedback=feedback)
    if accumulator.n_pixels == 0:
        raise DeepGUError("REFERENCE is nodata at every valid pixel of INPUT")
    return accumulator.result()


def run(input_path, endmembers, output_html, methods=None, model_path=None, reference=None,
        reference_endmembers=None, memory_mb=COMPARE["MEMORY_MB"], cluster=COMPARE["CLUSTER"], window=None,
        feedback=None):
    """Run ``methods`` (:func:`choose_methods`) on INPUT (or its ``window``) and write the report to ``output_html``.

    ``endmembers``: the library M0 of FCLS, PLMM, ELMM and GLMM; ``model_path``: the DeepGU model (its own
    references); ``reference``: true abundances on INPUT's grid with one band per material, or None;
    ``reference_endmembers`` (with ``reference``): true per-pixel endmembers (P x L bands, material-major), or None.
    Returns ``{method: {"seconds", "weights", "RMSE_Y"[, "RMSE_A", "perm"[, "RMSE_M", "SAM_M"]]}}``.
    """
    feedback = ensure(feedback)
    check_paths({"INPUT": input_path, "ENDMEMBERS": endmembers, "MODEL": model_path, "REFERENCE": reference,
                 "REFERENCE_ENDMEMBERS": reference_endmembers}, {"OUTPUT_HTML": output_html})
    chosen = choose_methods(methods, model_path)
    if reference_endmembers and not reference:
        raise DeepGUError("REFERENCE_ENDMEMBERS needs REFERENCE (the true abundances) too")
    scene = open_raster(input_path, "INPUT")
    info = scene.window(window)
    label = window_label(scene.label, window)
    if info.n_pixels > COMPARE_MAX_PIXELS:
        side = int(COMPARE_MAX_PIXELS ** 0.5)
        raise DeepGUError("%s has %d x %d = %d pixels; the comparison report shows every map of every method and "
                          "takes at most %d: give an EXTENT (e.g. %d x %d pixels) to compare on a part of it"
                          % (label, info.rows, info.cols, info.n_pixels, COMPARE_MAX_PIXELS, side, side))
    with as_parameter("ENDMEMBERS"):
        library = read_spectra(endmembers)
    materials = list(library.materials)
    if model_path and "deepgu" in chosen:
        _check_model(model_path, info, len(materials))
    truth = _open_truth(reference, reference_endmembers, scene, window, len(materials)) if reference else None
    with tempfile.TemporaryDirectory(prefix="deepgu-compare-") as folder:
        reports, names = _run_all(chosen, input_path, endmembers, model_path, truth, library, memory_mb, cluster,
                                  window, folder, feedback)
    facts = [("INPUT", input_path), ("Pixels", "%d x %d%s" % (info.rows, info.cols, "" if window is None else
                                                             " (EXTENT: rows %d-%d, cols %d-%d)"
                                                             % (window.row0, window.row0 + window.rows - 1,
                                                                window.col0, window.col0 + window.cols - 1))),
             ("ENDMEMBERS", endmembers)]
    facts += [("MODEL", model_path)] if "deepgu" in chosen else []
    facts += [("REFERENCE", reference)] if reference else []
    facts += [("REFERENCE_ENDMEMBERS", reference_endmembers)] if reference_endmembers else []
    if truth is not None:
        note = ("The rows are REFERENCE's bands; each method's materials are matched to them "
                "(core/evaluation/metrics.py).")
    else:
        note = ("The rows are the materials of ENDMEMBERS; DeepGU's (its MODEL's) are matched to them by name, "
                "else by abundance RMSE.")
    page = build_html("DeepGU comparison: %s" % os.path.basename(input_path), facts, names, reports,
                      truth[0] if truth is not None else None,
                      ["Each method ran as its own algorithm does at its defaults (its weights set from the data).",
                       note])
    feedback.check_canceled()
    with atomic_output(output_html, "w", what="OUTPUT_HTML", encoding="utf-8") as stream:
        stream.write(page)
    feedback.set_progress(100)
    summary = {}
    for m in reports:
        summary[m.method] = {"seconds": m.seconds, "weights": m.weights, "RMSE_Y": overall_rmse(m.rmse)}
        summary[m.method].update({key: ([int(p) for p in value] if key == "perm" else value)
                                  for key, value in (m.scores or {}).items()})
    return summary


def _run_all(chosen, input_path, endmembers, model_path, truth, library, memory_mb, cluster, window, folder,
             feedback):
    """Run the ``chosen`` methods one after the other, their rasters in ``folder``; returns their
    :class:`core.evaluation.report.MethodReport` s (materials in the rows' order) and the rows' names."""
    materials = list(library.materials)
    m0 = library.as_endmembers().astype(np.float64)
    reports, anchor, names = [], None, materials
    for index, method in enumerate(chosen):
        feedback.check_canceled()
        log = _MethodLog(feedback, 95.0 * index / len(chosen), 95.0 * (index + 1) / len(chosen), LABELS[method])
        outputs = tuple(os.path.join(folder, "%s-%s.tif" % (method, kind))
                        for kind in ("abundances", "rmse", "endmembers"))
        if truth is None or truth[3] is None or method == "fcls":
            outputs = outputs[:2] + (None,)
        start = time.perf_counter()
        _run_method(method, input_path, endmembers, model_path, outputs, memory_mb, cluster, window, log)
        seconds = time.perf_counter() - start
        A, valid, written = read_all(outputs[0])
        band_names = written.band_names
        del written                 # its file is closed: Windows removes no open file (below, and the folder)
        A[:, ~valid] = np.nan
        rmse = read_all(outputs[1])[0][0]
        rmse[~valid] = np.nan
        scores, order = None, np.arange(len(materials))
        if truth is not None:
            scores = _scores(method, outputs, truth, m0, memory_mb, SubFeedback(log, 100.0, 100.0))
            order = scores["perm"]
            if index == 0:          # the rows' names: the reference's, else those of the first method's match
                names = truth[2].band_names if all(truth[2].band_names) else [band_names[p] for p in order]
        elif method == "deepgu" and sorted(band_names) == sorted(materials):
            order = [band_names.index(name) for name in materials]
        elif method == "deepgu" and anchor is not None:
            order = match_materials(A[:, valid], anchor[:, valid])
        elif method == "deepgu":
            names = band_names
        for path in outputs:        # the per-pixel endmembers can be large: each method's go before the next runs
            if path:
                os.remove(path)
        A = A[np.asarray(order)]
        anchor = A if anchor is None else anchor
        reports.append(MethodReport(method, LABELS[method], A, rmse, seconds, _weights(method, log.lines), scores,
                                    log.lines))
        feedback.info("%s done in %.1f s" % (LABELS[method], seconds))
    return reports, names


def main(argv=None):
    """``python -m core.jobs.compare``: the ``deepgu:compare`` algorithm on the command line."""
    from .cli import add_common_arguments, job_parser, run_command, window

    parser = job_parser("FCLS, PLMM, ELMM, GLMM and DeepGU (deepgu:compare) on INPUT, side by side in one HTML report.",
                        [("INPUT", "hyperspectral image"), ("ENDMEMBERS", "endmember library M0 (CSV or .sli)"),
                         ("OUTPUT_HTML", "report to write (.html)")])
    parser.add_argument("--model", help="DeepGU model file: DeepGU runs only with it")
    parser.add_argument("--reference", help="true abundances on INPUT's grid: each method is scored")
    parser.add_argument("--reference-endmembers", help="true per-pixel endmembers (with --reference): RMSE_M, SAM_M")
    parser.add_argument("--methods", nargs="+", choices=COMPARE_METHODS,
                        help="the methods to run (default: every one that can run)")
    add_common_arguments(parser, COMPARE)
    return run_command(parser, argv, lambda args, feedback: run(
        args.input, args.endmembers, args.output_html, methods=args.methods, model_path=args.model,
        reference=args.reference, reference_endmembers=args.reference_endmembers, memory_mb=args.memory_mb,
        cluster=args.cluster, window=window(args), feedback=feedback))


if __name__ == "__main__":
    # run the module under its package name, so that cluster workers find its functions by name
    import importlib
    import sys

    sys.exit(importlib.import_module(__spec__.name).main())
