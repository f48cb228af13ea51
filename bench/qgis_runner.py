"""Run Processing algorithms through ``qgis_process.bin`` as a user does, in a private QGIS configuration.

    env = qgis_environment(os.path.join(tmp, "qgis-config"))     # plugin installed and enabled there
    outputs = mandatory_outputs(env, "deepgu:workflow", folder, "run1-")      # qgis_process asks for these
    results = run(env, "deepgu:workflow", INPUT=..., MATERIALS=3, SEED=0, **outputs)
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class QgisProcessError(RuntimeError):
    """An algorithm run by qgis_process.bin failed; the message carries the end of its output."""


def qgis_environment(config):
    """Environment for qgis_process.bin with its configuration in ``config`` and this plugin enabled there."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=config)
    site = subprocess.run([sys.executable, "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    env["PYTHONPATH"] = site
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "install_plugin.sh")], env=env, check=True,
                   capture_output=True)
    return env


def run(env, algorithm, **parameters):
    """``qgis_process.bin --json run ALG -- K=V ...``; the results dict, or :class:`QgisProcessError`."""
    args = ["qgis_process.bin", "--json", "run", algorithm, "--"] + ["%s=%s" % kv for kv in parameters.items()]
    return _json(subprocess.run(args, env=env, capture_output=True, text=True), algorithm)["results"]


def _json(done, what):
    if done.returncode:
        raise QgisProcessError("%s failed:\n%s" % (what, done.stdout[-2000:] + done.stderr[-2000:]))
    return json.loads(done.stdout[done.stdout.index("{"):])


def mandatory_outputs(env, algorithm, folder, prefix=""):
    """``{name: path in folder}`` for every output ``qgis_process run`` requires (the non-optional destinations).

    Raster outputs get ``.tif``, file outputs the first extension of their file filter (``.out`` without one),
    so a bench keeps working when the workflow's steps and output names change.
    """
    done = subprocess.run(["qgis_process.bin", "--json", "help", algorithm], env=env, capture_output=True, text=True)
    outputs = {}
    for name, parameter in _json(done, "help " + algorithm)["parameters"].items():
        if not parameter["is_destination"] or parameter["optional"]:
            continue
        found = re.search(r"\*(\.\w+)", parameter["raw_definition"].get("file_filter") or "")
        extension = ".tif" if parameter["type"]["id"] == "rasterDestination" else found.group(1) if found else ".out"
        outputs[name] = os.path.join(folder, prefix + name.replace(":", "-") + extension)
    return outputs
