"""Missing Python packages never stop the plugin loading; deepgu:install_dependencies installs them for QGIS.

Unit tests of core/dependencies.py (QGIS's Python on fake install layouts, pip's command lines, progress and
cancel), then QGIS through qgis_process: scipy hidden (tests/hide_packages/sitecustomize.py) or torch absent
(a PYTHONPATH without the venv), every algorithm is listed and the ones that need the package say so in one line.
"""

import glob
import os
import subprocess
import sys

import pytest

from conftest import ROOT, qgis_env, require_qgis
from core import defaults, dependencies
from core.errors import Canceled, DeepGUError
from helpers import Recorder

HIDE = os.path.join(ROOT, "tests", "hide_packages")


def _files(*paths):
    return lambda path: path in paths


@pytest.mark.parametrize("layout, expected", [
    # Linux desktop: sys.executable is QGIS itself; the interpreter of this Python version under exec_prefix
    (dict(executable="/usr/bin/qgis", prefix="/usr", exec_prefix="/usr", platform="linux",
          files=("/usr/bin/python3.11", "/usr/bin/python3")), "/usr/bin/python3.11"),
    # Linux, no python3.11 binary: python3 beside QGIS, then python3 on PATH
    (dict(executable="/opt/qgis/bin/qgis", prefix="/opt/qgis", exec_prefix="/opt/qgis", platform="linux",
          files=("/opt/qgis/bin/python3",)), "/opt/qgis/bin/python3"),
    (dict(executable="/opt/qgis/bin/qgis", prefix="/opt/qgis", exec_prefix="/opt/qgis", platform="linux",
          files=("/usr/local/bin/python3",), which="/usr/local/bin/python3"), "/usr/local/bin/python3"),
    # qgis_process (embedded): sys.executable is the first python3 on PATH, here a pyenv shim: not QGIS's
    (dict(executable="/root/.pyenv/shims/python3", prefix="/usr", exec_prefix="/usr", platform="linux",
          files=("/root/.pyenv/shims/python3", "/usr/bin/python3.11")), "/usr/bin/python3.11"),
    # a Python script run in a venv: sys.executable is Python itself
    (dict(executable="/home/u/venv/bin/python", prefix="/home/u/venv", exec_prefix="/usr", platform="linux",
          files=("/home/u/venv/bin/python", "/usr/bin/python3.11")), "/home/u/venv/bin/python"),
    # Windows OSGeo4W: QGIS's exe in bin, Python in apps/Python312
    (dict(executable="C:\\OSGeo4W\\bin\\qgis-bin.exe", prefix="C:\\OSGeo4W\\apps\\Python312",
          exec_prefix="C:\\OSGeo4W\\apps\\Python312", platform="win32",
          files=("C:\\OSGeo4W\\bin\\python3.exe", "C:\\OSGeo4W\\apps\\Python312\\python.exe")),
     "C:\\OSGeo4W\\apps\\Python312\\python.exe"),
    # Windows, only the launcher beside QGIS
    (dict(executable="C:\\Program Files\\QGIS 3.44\\bin\\qgis-ltr-bin.exe", prefix="C:\\Program Files\\QGIS 3.44\\apps"
          "\\Python312", exec_prefix="C:\\Program Files\\QGIS 3.44\\apps\\Python312", platform="win32",
          files=("C:\\Program Files\\QGIS 3.44\\bin\\python3.exe",)), "C:\\Program Files\\QGIS 3.44\\bin\\python3.exe"),
    # macOS QGIS.app
    (dict(executable="/Applications/QGIS.app/Contents/MacOS/QGIS",
          prefix="/Applications/QGIS.app/Contents/Frameworks", exec_prefix="/Applications/QGIS.app/Contents/Frameworks",
          platform="darwin", files=("/Applications/QGIS.app/Contents/MacOS/bin/python3",)),
     "/Applications/QGIS.app/Contents/MacOS/bin/python3"),
    (dict(executable="/Applications/QGIS.app/Contents/MacOS/QGIS", prefix="/opt/py", exec_prefix="/opt/py",
          platform="darwin", files=("/opt/py/bin/python3.11",)), "/opt/py/bin/python3.11"),
    # nothing there
    (dict(executable="/usr/bin/qgis", prefix="/usr", exec_prefix="/usr", platform="linux", files=()), None),
])
def test_find_python_on_each_platform_layout(layout, expected):
    found = dependencies.find_python(layout["executable"], layout["prefix"], layout["exec_prefix"],
                                     layout["platform"], (3, 11), isfile=_files(*layout["files"]),
                                     which=lambda name: layout.get("which"))
    assert found == expected


def test_pip_commands_install_into_the_target_only():
    commands = dependencies.pip_commands("/py", "/t", ["scipy", "torch", "distributed"], platform="linux")
    assert [names for names, _ in commands] == [["scipy", "distributed"], ["torch"]]
    (_, first), (_, second) = commands
    assert first[:6] == ["/py", "-m", "pip", "install", "--target", "/t"]
    assert first[-2:] == ["scipy", "dask[distributed]"] and "--index-url" not in first
    assert second[second.index("--index-url") + 1] == dependencies.TORCH_CPU_INDEX and second[-1] == "torch"
    # macOS: PyPI's torch is the CPU build already
    assert len(dependencies.pip_commands("/py", "/t", ["torch"], platform="darwin")) == 1
    # offline: one command, no index at all
    (_, offline), = dependencies.pip_commands("/py", "/t", ["torch"], find_links="/w", platform="linux")
    assert "--no-index" in offline and offline[offline.index("--find-links") + 1] == "/w"
    assert "--index-url" not in offline
    (_, both), = dependencies.pip_commands("/py", "/t", ["torch"], find_links="/w", index_url="http://i",
                                           platform="win32")
    assert "--no-index" not in both and both[both.index("--index-url") + 1] == "http://i"


def test_pip_progress_rises_to_100():
    progress = dependencies.PipProgress()
    lines = ["Looking in links: /w", "Processing /w/torch.whl", "Collecting sympy", "Collecting filelock",
             "Installing collected packages: sympy, filelock, torch", "Successfully installed torch-2.13.0"]
    values = [progress.update(line) for line in lines]
    assert values == sorted(values) and values[0] == 0 and 0 < values[1] < values[3] < 60 and values[-1] == 100


def _fake_pip(tmp_path, body):
    script = tmp_path / "fake_pip.py"
    script.write_text("import sys, time\n" + body)
    return [sys.executable, str(script)]


def test_run_pip_stops_pip_on_cancel(tmp_path):
    marker = tmp_path / "finished"
    argv = _fake_pip(tmp_path, "print('Collecting torch', flush=True)\ntime.sleep(30)\nopen(%r, 'w')\n" % str(marker))
    feedback = Recorder(cancel_after=1, counting="progress")
    with pytest.raises(Canceled):
        dependencies.run_pip(argv, feedback)
    assert feedback.messages == ["Collecting torch"] and not marker.exists()


def test_run_pip_failure_is_one_line_with_pips_error(tmp_path):
    argv = _fake_pip(tmp_path, "print('ERROR: No matching distribution found for torch')\nsys.exit(1)\n")
    with pytest.raises(DeepGUError, match="pip failed .*No matching distribution found for torch"):
        dependencies.run_pip(argv, Recorder())


def test_missing_names_only_what_cannot_be_imported():
    assert dependencies.missing(("json", "deepgu_no_such_package")) == ["deepgu_no_such_package"]


def _qgis(tmp_path, hide="", pythonpath=None):
    """qgis_process with the plugin in a fresh profile; ``hide``: packages the sitecustomize blocker hides."""
    require_qgis()
    env = qgis_env(tmp_path / "cfg")
    env["PYTHONPATH"] = os.pathsep.join([HIDE] + ([pythonpath] if pythonpath else []))
    env["DEEPGU_HIDE"] = hide
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "install_plugin.sh")], env=env, check=True,
                   capture_output=True)

    def run(*args, timeout=300):
        return subprocess.run(["qgis_process.bin"] + [str(a) for a in args], env=env, capture_output=True,
                              text=True, timeout=timeout)
    return run


def _listed(run):
    return sorted(line.split()[0][len("deepgu:"):] for line in run("list").stdout.splitlines()
                  if line.strip().startswith("deepgu:"))


def _fails_naming(run, algorithm, package, *parameters):
    done = run("run", algorithm, "--", *parameters)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "cannot import %s" % package in output and dependencies.INSTALLER in output, output[-2000:]
    assert "Traceback" not in output
    return output


def test_without_scipy_every_algorithm_is_listed_and_scipy_steps_name_it(tmp_path):
    run = _qgis(tmp_path, hide="scipy")
    assert _listed(run) == sorted(defaults.ALGORITHMS)
    scene, library = tmp_path / "scene.tif", tmp_path / "library.csv"
    done = run("run", "deepgu:synthetic", "--", "ROWS=12", "COLS=12", "OUTPUT=%s" % scene,
               "OUTPUT_LIBRARY=%s" % library)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # FCLS needs numpy only: it runs
    done = run("run", "deepgu:fcls", "--", "INPUT=%s" % scene, "ENDMEMBERS=%s" % library,
               "OUTPUT=%s" % (tmp_path / "fcls.tif"))
    assert done.returncode == 0 and (tmp_path / "fcls.tif").exists(), done.stdout[-2000:] + done.stderr[-2000:]
    _fails_naming(run, "deepgu:endmembers", "scipy", "INPUT=%s" % scene, "OUTPUT=%s" % (tmp_path / "em.csv"))
    _fails_naming(run, "deepgu:metrics", "scipy", "ESTIMATE=%s" % (tmp_path / "fcls.tif"),
                  "REFERENCE=%s" % (tmp_path / "fcls.tif"))
    assert not (tmp_path / "em.csv").exists()


def test_without_torch_every_algorithm_is_listed_and_torch_steps_name_it(tmp_path):
    probe = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system Python has torch: nothing to hide it from")
    run = _qgis(tmp_path, hide="torch")
    assert _listed(run) == sorted(defaults.ALGORITHMS)
    for f in ("b.csv", "e.csv"):
        (tmp_path / f).write_text("band,a\n1,0.5\n")
    _fails_naming(run, "deepgu:trainvae", "torch", "BUNDLES=%s" % (tmp_path / "b.csv"),
                  "ENDMEMBERS=%s" % (tmp_path / "e.csv"), "OUTPUT=%s" % (tmp_path / "m.pt"))


def _local_torch_wheel():
    """The torch 2.13 CPU wheel for this Python in one of pip's find-links folders, or None."""
    listed = subprocess.run(["/usr/bin/python3", "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    folders = os.environ.get("PIP_FIND_LINKS", "").split()
    folders += [value.strip("'") for key, _, value in (line.partition("=") for line in listed.splitlines())
                if key.endswith("find-links")]
    tag = "cp%d%d" % sys.version_info[:2]
    for folder in folders:
        for wheel in sorted(glob.glob(os.path.join(folder, "torch-2.13*%s*.whl" % tag))):
            return wheel
    return None


def test_install_dependencies_then_trainvae_in_a_fresh_profile(tmp_path):
    """A profile whose Python has no torch (nor dask): the installer, offline from a folder of wheels, then
    deepgu:trainvae in the same profile trains a model with the installed torch."""
    require_qgis()
    if subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("the system Python has torch: nothing to install")
    wheel = _local_torch_wheel()
    if wheel is None:
        pytest.skip("no local torch 2.13 wheel in pip's find-links folders")
    # The offline folder: the local torch wheel and the wheels of its and dask's dependencies, as pip resolves them
    # with its own configuration (the same Python as QGIS's).
    wheels = tmp_path / "wheels"
    done = subprocess.run(["/usr/bin/python3", "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "--dest",
                           str(wheels), wheel, "dask[distributed]"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip("pip cannot gather torch's and dask's dependencies here: %s" % done.stderr.strip()[-300:])
    run = _qgis(tmp_path)
    profile_deps = tmp_path / "cfg" / "profiles" / "default" / "python" / "dependencies"
    done = run("run", "deepgu:install_dependencies", "--json", "--", "FIND_LINKS=%s" % wheels, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert '"INSTALLED": "torch,distributed"' in output.replace("\n", "") or "torch,distributed" in output
    assert (profile_deps / "torch" / "__init__.py").exists() and (profile_deps / "distributed").is_dir()
    # with QGIS's own Python (/usr/bin/python3.X here), not the first python3 on PATH
    minor = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[1])"], capture_output=True,
                           text=True).stdout.strip()
    assert "into %s with /usr/bin/python3.%s" % (profile_deps, minor) in output, output[-3000:]
    # the next qgis_process call (a new QGIS) finds torch in the profile and trains
    bundles, endmembers, model = tmp_path / "b.csv", tmp_path / "e.csv", tmp_path / "m.pt"
    bands = range(1, 7)
    endmembers.write_text("band,a,b\n" + "".join("%d,%g,%g\n" % (b, 0.1 * b, 0.9 - 0.1 * b) for b in bands))
    bundles.write_text("band," + ",".join(["a"] * 5 + ["b"] * 5) + "\n" + "".join(
        "%d,%s\n" % (b, ",".join("%g" % (0.1 * b * (1 + 0.02 * k) if k < 5 else (0.9 - 0.1 * b) * (1 + 0.02 * (k - 5)))
                                 for k in range(10))) for b in bands))
    done = run("run", "deepgu:trainvae", "--", "BUNDLES=%s" % bundles, "ENDMEMBERS=%s" % endmembers, "EPOCHS=5",
               "OUTPUT=%s" % model, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert model.stat().st_size > 0
    # and it is a model file: torch from the profile folder reads it
    probe = subprocess.run(["/usr/bin/python3", "-c", "import sys; sys.path.append(%r); sys.path.insert(0, %r); "
                            "from core.models.model_file import load_model; m = load_model(%r); print(len(m.names))"
                            % (str(profile_deps), ROOT, str(model))], capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.split()[-1] == "2", probe.stderr[-2000:]


def test_pinned_numpy_is_held_and_its_copy_removed(tmp_path):
    import numpy

    assert "numpy==%s" % numpy.__version__ in dependencies.pins()
    for entry in ("numpy", "numpy.libs", "numpy-2.3.0.dist-info", "torch", "numpyro"):
        (tmp_path / entry).mkdir()
    dependencies.drop_pinned(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["numpyro", "torch"]
    (_, argv), = dependencies.pip_commands("/py", "/t", ["scipy"], constraint="/c.txt")
    assert argv[argv.index("--constraint") + 1] == "/c.txt"


MESSAGE_BAR = """
import sys
from qgis.core import QgsApplication
app = QgsApplication([], True)
app.initQgis()
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QPushButton
import importlib.util
spec = importlib.util.spec_from_file_location('deepgu', %r, submodule_search_locations=[%r])
deepgu = importlib.util.module_from_spec(spec); sys.modules['deepgu'] = deepgu; spec.loader.exec_module(deepgu)
class Iface:
    bar = QgsMessageBar()
    def messageBar(self):
        return self.bar
plugin = deepgu.classFactory(Iface())
opened = []
plugin.open_installer = lambda: opened.append(True)
plugin.report_missing([])
print('ITEMS_NONE', len(Iface.bar.items()))
plugin.report_missing(['scipy', 'torch'])
items = Iface.bar.items()
print('ITEMS', len(items))
print('TEXT', items[0].text())
buttons = items[0].findChildren(QPushButton)
print('BUTTONS', [b.text() for b in buttons])
[b for b in buttons if b.text().startswith('Install')][0].click()
print('OPENED', opened)
"""


def test_desktop_message_bar_names_the_missing_packages_with_an_install_button(tmp_path):
    require_qgis()
    done = subprocess.run([sys.executable, "-c", MESSAGE_BAR % (os.path.join(ROOT, "__init__.py"), ROOT)],
                          env=qgis_env(tmp_path / "cfg"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["ITEMS_NONE"] == "0" and lines["ITEMS"] == "1"
    assert "scipy" in lines["TEXT"] and "torch" in lines["TEXT"]
    assert lines["OPENED"] == "[True]"


def test_a_python_without_pip_is_named(tmp_path, monkeypatch):
    no_pip = tmp_path / "python3"
    no_pip.write_text("#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n")
    no_pip.chmod(0o755)
    monkeypatch.setattr(dependencies, "find_python", lambda *args: str(no_pip))
    with pytest.raises(DeepGUError, match="pip is missing for QGIS's Python %s" % no_pip):
        dependencies.qgis_python()
    monkeypatch.setattr(dependencies, "find_python", lambda *args: None)
    with pytest.raises(DeepGUError, match="cannot find the Python interpreter that runs QGIS"):
        dependencies.qgis_python()
    # a real Python with pip is accepted
    monkeypatch.setattr(dependencies, "find_python", lambda *args: sys.executable)
    assert dependencies.qgis_python() == sys.executable
