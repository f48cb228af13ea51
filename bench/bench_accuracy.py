"""Accuracy benchmark of record (issue 9): the shipped workflow at its defaults, as a user runs it.

Run:  .venv/bin/python bench/bench_accuracy.py [--scenes samson DC1-usgs ...] [--seeds 0 1 2 3 4]
                                               [--set NAME=VALUE ...] [--json results.json] [--methods elmm glmm plmm]

For each scene of bench/accuracy_scenes.py and each seed: the scene is written as a georeferenced
GeoTIFF with its band wavelengths, then

    qgis_process.bin run deepgu:workflow -- INPUT=scene.tif MATERIALS=P SEED=s
        fcls:FCLS_ABUNDANCES=fcls.tif unmix:DEEPGU_ABUNDANCES=deepgu.tif (+ the other outputs it requires)

runs in a private QGIS configuration with the plugin enabled, every other parameter at its default
(``--set`` adds workflow parameters, for experiments only: the table of record uses none). The FCLS
and DeepGU abundance outputs are scored against the true abundances by RMSE_A (the paper's eq. 14,
``sqrt(mean_{p,n} (a_pn - a*_pn)^2)``, after matching materials by core.evaluation.metrics.match_materials),
with the RMSE of each matched material alongside. Seconds are the wall time of one workflow run
(qgis_process start-up included). Prints one line per run, then per scene: the FCLS and DeepGU
means over seeds, their ratio, the seed where DeepGU is worst (its RMSE_A and whether DeepGU is
above FCLS there) and the mean seconds per run; the summary is also a Markdown table for README.
Runs are serial (the machine has 2 cores). ``--json`` is rewritten after every run, so an interrupted
run keeps what it finished; ``--report`` prints the table of a saved file.
``--methods`` also runs ``deepgu:elmm`` / ``glmm`` / ``plmm`` after each workflow run, at their defaults, from the
workflow's reference endmembers and FCLS abundances (the paper's protocol), and prints a second table of every
method's RMSE_A and ratio to FCLS; the table above is unchanged.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import NAMES, available, scene  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from bench.qgis_runner import QgisProcessError, mandatory_outputs, qgis_environment, run  # noqa: E402
from core.files.atomic import atomic_output  # noqa: E402
from core.evaluation.metrics import match_materials  # noqa: E402
from core.files.raster_io import georeference, read_all, write_raster  # noqa: E402

WORKFLOW = "deepgu:workflow"
# method -> the workflow output that holds its abundances
OUTPUTS = {"fcls": "fcls:FCLS_ABUNDANCES", "deepgu": "unmix:DEEPGU_ABUNDANCES"}
#: the parametric variability models --methods can add (deepgu:elmm, ...)
EXTRA_METHODS = ("elmm", "glmm", "plmm")


def write_scene(bench_scene, path):
    """The scene's image as a float32 GeoTIFF (EPSG:32633, 30 m pixels) with band wavelengths in nm."""
    _, rows, cols = bench_scene.image.shape
    write_raster(path, bench_scene.image, georeference(rows, cols),
                 band_names=["%g nm" % w for w in bench_scene.wavelengths], wavelengths=bench_scene.wavelengths)


def score(path, truth):
    """RMSE_A (eq. 14) of the abundance raster at ``path`` and the RMSE of each matched material, truth order."""
    estimate, _, _ = read_all(path)
    P = truth.shape[0]
    A, T = estimate.reshape(P, -1).astype(np.float64), truth.reshape(P, -1).astype(np.float64)
    errors = (A[match_materials(A, T)] - T) ** 2
    return float(np.sqrt(errors.mean())), np.sqrt(errors.mean(axis=1)).tolist()


def workflow_outputs(env, folder):
    """``{output name: path}``: the outputs qgis_process requires and the two scored abundance rasters."""
    outputs = mandatory_outputs(env, WORKFLOW, folder)
    for method, output in OUTPUTS.items():
        outputs.setdefault(output, os.path.join(folder, method + ".tif"))
    return outputs


def run_once(env, bench_scene, seed, folder, outputs, extra, methods=()):
    """One workflow run on ``bench_scene``: ``{"seed", "seconds", method: RMSE_A, method + "_materials": [...]}``.

    Passes INPUT, MATERIALS, SEED, ``outputs`` (:func:`workflow_outputs`) and ``extra``; then runs each of
    ``methods`` (:data:`EXTRA_METHODS`) from the workflow's references and FCLS abundances (``method + "_seconds"``).
    """
    scene_path = os.path.join(folder, "scene.tif")
    write_scene(bench_scene, scene_path)
    start = time.perf_counter()
    run(env, WORKFLOW, INPUT=scene_path, MATERIALS=bench_scene.n_materials, SEED=seed, **outputs, **extra)
    result = {"seed": seed, "seconds": time.perf_counter() - start}
    for method, output in OUTPUTS.items():
        result[method], result[method + "_materials"] = score(outputs[output], bench_scene.abundances)
    references = next(path for name, path in outputs.items() if name.startswith("endmembers:"))
    extra_paths = []
    for method in methods:
        extra_paths.append(os.path.join(folder, method + ".tif"))
        start = time.perf_counter()
        run(env, "deepgu:" + method, INPUT=scene_path, ENDMEMBERS=references,
            INIT_ABUNDANCES=outputs[OUTPUTS["fcls"]], OUTPUT=extra_paths[-1])
        result[method + "_seconds"] = time.perf_counter() - start
        result[method], result[method + "_materials"] = score(extra_paths[-1], bench_scene.abundances)
    for path in [scene_path] + list(outputs.values()) + extra_paths:
        if os.path.exists(path):
            os.unlink(path)
    return result


def summarise(runs):
    """Per-scene summary of its runs (those that finished)."""
    done = [r for r in runs if "deepgu" in r]
    if not done:
        return {"failed": len(runs)}
    fcls, deepgu = np.mean([r["fcls"] for r in done]), np.mean([r["deepgu"] for r in done])
    worst = max(done, key=lambda r: r["deepgu"])
    return {"fcls": fcls, "deepgu": deepgu, "ratio": deepgu / fcls, "worst_seed": worst["seed"],
            "worst_deepgu": worst["deepgu"], "worst_above_fcls": worst["deepgu"] > worst["fcls"],
            "seeds_above_fcls": sum(r["deepgu"] > r["fcls"] for r in done),
            "seconds": np.mean([r["seconds"] for r in done]), "runs": len(done), "failed": len(runs) - len(done)}


def table(summaries, seeds, settings):
    """The summary as Markdown."""
    lines = ["| scene | FCLS RMSE_A | DeepGU RMSE_A | DeepGU/FCLS | worst seed: DeepGU | DeepGU > FCLS there "
             "| seeds with DeepGU > FCLS | s per run |", "|---|---|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        if "deepgu" not in s:
            lines.append("| %s | failed | | | | | | |" % name)
            continue
        lines.append("| %s | %.4f | %.4f | %.2f | %d: %.4f | %s | %d of %d | %.1f |" % (
            name, s["fcls"], s["deepgu"], s["ratio"], s["worst_seed"], s["worst_deepgu"],
            "yes" if s["worst_above_fcls"] else "no", s["seeds_above_fcls"], s["runs"], s["seconds"])
            + (" (%d failed)" % s["failed"] if s["failed"] else ""))
    lines.append("")
    lines.append("RMSE_A: mean over seeds %s; workflow defaults (only INPUT, MATERIALS, SEED and outputs given)%s."
                 % (" ".join(map(str, seeds)), "".join(", except %s=%s" % kv for kv in settings.items())))
    return "\n".join(lines)


def methods_table(runs, methods):
    """Markdown: per scene, the mean RMSE_A over seeds of FCLS, DeepGU and ``methods``, with ratios to FCLS."""
    names = ["fcls", "deepgu"] + list(methods)
    lines = ["| scene | " + " | ".join(n.upper() if n != "deepgu" else "DeepGU" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for scene_name, scene_runs in runs.items():
        done = [r for r in scene_runs if all(n in r for n in names)]
        if not done:
            continue
        means = {n: np.mean([r[n] for r in done]) for n in names}
        lines.append("| %s | %.4f | " % (scene_name, means["fcls"]) + " | ".join(
            "%.4f (%.2f)" % (means[n], means[n] / means["fcls"]) for n in names[1:]) + " |")
    lines.append("")
    lines.append("RMSE_A mean over seeds (ratio to FCLS); %s at their defaults from the workflow's references and "
                 "FCLS abundances." % ", ".join("deepgu:" + m for m in methods))
    return "\n".join(lines)


def parse_settings(pairs):
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            sys.exit("--set expects NAME=VALUE, got %r" % pair)
        settings[key] = value
    return settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", choices=NAMES, help="default: all available here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra workflow parameters (experiments; the benchmark of record uses none)")
    parser.add_argument("--json", metavar="OUT", help="save every run (as it finishes) and the summaries as JSON")
    parser.add_argument("--report", metavar="JSON", help="print the table of a saved --json file; run nothing")
    parser.add_argument("--methods", nargs="*", default=[], choices=EXTRA_METHODS,
                        help="also run these variability models after each workflow run (second table)")
    args = parser.parse_args()
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        print(saved["machine"])
        print("# from %s (%s)" % (args.report, "complete" if "summary" in saved else "interrupted: finished runs only"))
        print(table({name: summarise(runs) for name, runs in saved["runs"].items()}, saved["seeds"], saved["settings"]))
        return
    extra = parse_settings(args.set)
    names = args.scenes or available()
    machine = machine_line()
    print(machine, flush=True)
    missing = [name for name in NAMES if name not in names and args.scenes is None]
    if missing:
        print("# not available here: %s" % ", ".join(missing), flush=True)
    print("# %s, parameters: defaults%s; load average %.1f (other processes share the cores: seconds grow with it)"
          % (WORKFLOW, "".join(" %s=%s" % kv for kv in extra.items()), os.getloadavg()[0]), flush=True)
    record = {"machine": machine, "workflow": WORKFLOW, "settings": extra, "seeds": args.seeds, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        env = qgis_environment(os.path.join(tmp, "qgis-config"))
        outputs = workflow_outputs(env, tmp)
        for name in names:
            runs = record["runs"][name] = []
            for seed in args.seeds:
                bench_scene = scene(name, seed)
                try:
                    r = run_once(env, bench_scene, seed, tmp, outputs, extra, args.methods)
                    print("%-17s seed %d: RMSE_A FCLS %.4f DeepGU %.4f (per material %s: %s) %.1f s%s" % (
                        name, seed, r["fcls"], r["deepgu"], "/".join(bench_scene.materials),
                        " ".join("%.3f" % v for v in r["deepgu_materials"]), r["seconds"],
                        "".join("; %s %.4f %.1f s" % (m.upper(), r[m], r[m + "_seconds"]) for m in args.methods)),
                          flush=True)
                except QgisProcessError as error:
                    print("%-17s seed %d: FAILED %s" % (name, seed, str(error).splitlines()[-1]), flush=True)
                    r = {"seed": seed, "error": str(error)}
                runs.append(r)
                save(args.json, record)
    record["summary"] = {name: summarise(runs) for name, runs in record["runs"].items()}
    save(args.json, record)
    print("# load average at the end: %.1f" % os.getloadavg()[0])
    print()
    print(table(record["summary"], args.seeds, extra))
    if args.methods:
        print()
        print(methods_table(record["runs"], args.methods))


def save(path, record):
    """Write ``record`` to ``path`` as JSON (nothing when path is None), replacing the file whole."""
    if path:
        with atomic_output(path, "w") as f:
            json.dump(record, f, indent=1, default=float)


if __name__ == "__main__":
    main()
