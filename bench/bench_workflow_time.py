"""Wall time of the shipped workflow through qgis_process, this tree against a baseline commit, in one run.

Run:  .venv/bin/python bench/bench_workflow_time.py [--repeats 2] [--baseline f2e433f] [--size 70] [--materials 4]
      .venv/bin/python bench/bench_workflow_time.py --stages [--baseline f2e433f]

A ``size`` x ``size`` DC1 scene (198 bands, 30 dB, seed 0) from deepgu:synthetic, then for each repeat: the
reference workload (bench.measure.reference_seconds: 20 products of 1024 x 1024 float32 matrices on one thread),
then ``qgis_process.bin run deepgu:workflow -- INPUT=scene.tif MATERIALS=4 SEED=0`` (+ the outputs it requires,
every other parameter at its default) with the baseline commit's plugin (``git archive``, installed in a private
QGIS configuration) and with this tree's, one after the other. Prints each run's wall time (qgis_process start-up
included) and its ratio to the reference workload, the best of the repeats, the speed-up, and the time of each
step as this tree's log reports it ("deepgu:... done in X s", "DeepGU: ... ms/pixel").

``--stages``: where the seconds go, without QGIS: core.pipeline.run_pipeline on the same scene at its defaults (the
workflow's steps in one process, seed 0), for the baseline and for this tree, each in a fresh process on one torch
thread, with the CPU seconds of the imports (numpy, torch, the core) and of each step. CPU seconds of one thread
are what the step costs on an idle core; other processes' load inflates them far less than wall seconds.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line, reference_seconds  # noqa: E402
from bench.qgis_runner import QgisProcessError, mandatory_outputs, qgis_environment, run  # noqa: E402


def plugin_environment(tree, config):
    """:func:`qgis_environment` with the plugin of ``tree`` (a copy of the repository) installed instead."""
    env = qgis_environment(config)
    subprocess.run(["bash", os.path.join(tree, "scripts", "install_plugin.sh")], env=env, check=True,
                   capture_output=True)
    return env


def workflow(env, scene, materials, folder, prefix):
    """Run the workflow once; returns (wall seconds, its log)."""
    outputs = mandatory_outputs(env, "deepgu:workflow", folder, prefix)
    args = ["qgis_process.bin", "run", "deepgu:workflow", "--", "INPUT=%s" % scene, "MATERIALS=%d" % materials,
            "SEED=0"] + ["%s=%s" % kv for kv in outputs.items()]
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise QgisProcessError("deepgu:workflow failed:\n%s" % (done.stdout[-2000:] + done.stderr[-2000:]))
    return seconds, done.stdout


def stages(tree, size, materials):
    """In a fresh process: CPU seconds of the imports and of each step of ``tree``'s run_pipeline (one torch thread)."""
    start = time.process_time()
    sys.path.insert(0, tree)
    import torch

    import core.pipeline as pipeline
    try:
        from core.evaluation.synthetic import make_scene
    except ImportError:                 # a baseline from before core was grouped by role
        from core.synthetic import make_scene

    cpu = {"imports": time.process_time() - start}
    torch.set_num_threads(1)
    scene = make_scene("DC1", size, size, 30.0, seed=0, n_materials=materials)
    steps = {"vca_starts": "references", "best_start": "references", "refine_purest": "references", "fcls": "fcls",
             "select_bundles": "bundles", "train_endmember_model": "VAE training", "deepgu_unmix": "DeepGU"}

    def timed(function, step):
        def wrapper(*args, **kwargs):
            begin = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                cpu[step] = cpu.get(step, 0.0) + time.process_time() - begin
        return wrapper

    for name, step in steps.items():
        setattr(pipeline, name, timed(getattr(pipeline, name), step))
    pipeline.run_pipeline(scene.image, materials, seed=0)
    print("  ".join("%s %.2f" % item for item in cpu.items()) + "  | total %.2f CPU s" % sum(cpu.values()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", default="f2e433f", help="commit whose plugin is timed beside this tree's")
    parser.add_argument("--size", type=int, default=70, help="scene rows and columns")
    parser.add_argument("--materials", type=int, default=4)
    parser.add_argument("--stages", action="store_true", help="CPU seconds per step in one process (no QGIS)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return stages(args.child, args.size, args.materials)
    print(machine_line(), flush=True)
    print("scene: %d x %d DC1, 198 bands, %d materials; baseline %s; load average %.1f (other processes share the "
          "cores: seconds grow with it, ratios less)" % (args.size, args.size, args.materials, args.baseline,
                                                         os.getloadavg()[0]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "baseline")
        os.makedirs(base)
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.baseline], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        if args.stages:
            for name, tree in (("old", base), ("new", ROOT)):
                print("%s: " % name, end="", flush=True)
                subprocess.run([sys.executable, os.path.abspath(__file__), "--child", tree, "--size", str(args.size),
                                "--materials", str(args.materials)], check=True)
            return
        envs = {"old": plugin_environment(base, os.path.join(tmp, "old-config")),
                "new": qgis_environment(os.path.join(tmp, "new-config"))}
        scene = os.path.join(tmp, "scene.tif")
        run(envs["new"], "deepgu:synthetic", KIND=0, ROWS=args.size, COLS=args.size, MATERIALS=args.materials,
            SNR=30, SEED=0, OUTPUT=scene)
        times, log = {"reference": [], "old": [], "new": []}, ""
        for repeat in range(args.repeats):
            times["reference"].append(reference_seconds())
            for name in ("old", "new"):
                seconds, output = workflow(envs[name], scene, args.materials, tmp, "%s%d-" % (name, repeat))
                times[name].append(seconds)
                log = output if name == "new" else log
            print("repeat %d: reference %.2f s; workflow old %.1f s (%.1fx reference), new %.1f s (%.1fx reference)"
                  % (repeat + 1, times["reference"][-1], times["old"][-1], times["old"][-1] / times["reference"][-1],
                     times["new"][-1], times["new"][-1] / times["reference"][-1]), flush=True)
    best = {name: min(values) for name, values in times.items()}
    print("best of %d: reference %.2f s; workflow old %.1f s (%.1fx reference), new %.1f s (%.1fx reference); "
          "speed-up %.2fx" % (args.repeats, best["reference"], best["old"], best["old"] / best["reference"],
                              best["new"], best["new"] / best["reference"], best["old"] / best["new"]))
    print("steps of the last new run, from its log:")
    for line in log.splitlines():
        if re.search(r"done in \d|ms/pixel", line):
            print("  " + line.strip())


if __name__ == "__main__":
    try:
        main()
    except QgisProcessError as error:
        sys.exit(str(error))
