"""The Python packages the plugin needs beyond what QGIS brings (numpy, GDAL), and installing them for QGIS.

- :data:`PACKAGES`: each package by import name, with its pip requirement and what needs it;
- :func:`missing`: those QGIS's Python cannot import (``importlib.util.find_spec``, nothing is imported);
- :func:`find_python`: the Python interpreter that runs QGIS (inside QGIS ``sys.executable`` is QGIS itself);
- :func:`pip_commands` and :func:`install`: ``pip install --target <folder>``, never into a system Python; the
  plugin puts ``<QGIS profile>/python/dependencies`` (:func:`dependencies_folder`) first on ``sys.path`` when it
  loads (:func:`add_to_path`).

First, because ``pip --target`` ignores what is installed already: torch needs a newer sympy than Debian 12's,
and the folder's own copy must win. Except for :data:`PINNED` (numpy): GDAL's and QGIS's compiled modules are
built against QGIS's numpy, so pip is held to that version (a constraint) and the copy pip puts in the folder is
removed again.

Never imports qgis: the plugin passes QGIS's paths in.
"""

import importlib
import importlib.util
import ntpath
import os
import posixpath
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading

from .errors import Canceled, DeepGUError

#: import name -> (pip requirement, what needs it), in install order.
PACKAGES = {
    "scipy": ("scipy", "endmembers, bundles, metrics, workflow"),
    "torch": ("torch", "trainvae, samplevae, unmix, workflow"),
    "distributed": ("dask[distributed]", "CLUSTER of fcls and unmix"),
}
#: packages QGIS's own compiled modules depend on: never shadowed from the dependencies folder.
PINNED = ("numpy",)
#: the algorithm that installs them.
INSTALLER = "deepgu:install_dependencies"
#: PyTorch's index of CPU-only builds (Linux and Windows; on macOS PyPI's torch is the CPU/MPS build already).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def missing(names=tuple(PACKAGES)):
    """The import names among ``names`` that this Python cannot import (no module found, or its finder refuses)."""
    absent = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(name)
    return absent


def requirement(name):
    """pip's requirement of the import name ``name``."""
    return PACKAGES[name][0]


def missing_message(names):
    """One line naming the missing packages ``names`` and how to install them."""
    return ("QGIS's Python cannot import %s: install %s with the algorithm %s (Processing toolbox > DeepGU > "
            "Install Python dependencies), then run this again"
            % (", ".join(names), "it" if len(names) == 1 else "them", INSTALLER))


def dependencies_folder(settings_dir):
    """``<QGIS profile folder>/python/dependencies``: where :data:`INSTALLER` installs by default."""
    return os.path.join(settings_dir, "python", "dependencies")


def add_to_path(folder):
    """Put ``folder`` first on ``sys.path`` (once) if it exists."""
    folder = os.path.abspath(folder)
    if os.path.isdir(folder) and folder not in sys.path:
        sys.path.insert(0, folder)
        importlib.invalidate_caches()


def pins():
    """``name==version`` of each :data:`PINNED` package this Python has."""
    found = []
    for name in PINNED:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append("%s==%s" % (name, module.__version__))
    return found


def drop_pinned(target):
    """Remove from ``target`` the copies pip put there of :data:`PINNED` packages (QGIS's own ones stay in use)."""
    for name in PINNED:
        for path in [os.path.join(target, name), os.path.join(target, name + ".libs")] + [
                os.path.join(target, entry) for entry in os.listdir(target)
                if entry.startswith(name + "-") and entry.endswith(".dist-info")]:
            if os.path.isdir(path):
                shutil.rmtree(path)


def _looks_like_python(path):
    return re.fullmatch(r"python[0-9.]*(\.exe)?", ntpath.basename(path or "").lower()) is not None


def find_python(executable, prefix, exec_prefix, platform, version, isfile=os.path.isfile, which=shutil.which):
    """The Python interpreter that runs QGIS, or None: the first candidate that is a file.

    ``executable``, ``prefix``, ``exec_prefix``, ``platform``, ``version``: ``sys.executable`` (QGIS itself in
    the desktop), ``sys.prefix``, ``sys.exec_prefix``, ``sys.platform``, ``sys.version_info[:2]``; ``isfile`` and
    ``which`` are injectable for tests. The candidates, by platform:

    - Windows (OSGeo4W, standalone installer): ``python.exe`` of ``sys.exec_prefix``/``sys.prefix``
      (``<QGIS>/apps/Python3x``), then ``python3.exe``/``python.exe`` in ``<prefix>/bin`` and beside QGIS's exe;
    - macOS (QGIS.app): ``Contents/MacOS/bin/python3`` beside the QGIS executable, then
      ``<exec_prefix>/bin/python3.x`` and ``python3``;
    - Linux and others: ``<exec_prefix>/bin/python3.x`` (the interpreter of this very version), then
      ``python3`` beside ``sys.executable``, then ``python3`` on PATH.

    ``sys.executable`` comes first where it is a Python interpreter inside ``sys.prefix`` or ``sys.exec_prefix``
    (a venv, conda, a plain script); an embedded interpreter (qgis_process) sets it to whatever ``python3`` comes
    first on PATH (a pyenv shim, another installation), which is not QGIS's.
    """
    join, dirname = (ntpath.join, ntpath.dirname) if platform.startswith("win") else (posixpath.join,
                                                                                       posixpath.dirname)
    exact = "python%d.%d" % tuple(version)
    here = dirname(executable or "")
    inside = [root.rstrip("/\\") + ("\\" if platform.startswith("win") else "/") for root in (prefix, exec_prefix)]
    own = _looks_like_python(executable) and any((executable or "").startswith(root) for root in inside)
    candidates = [executable] if own else []
    if platform.startswith("win"):
        for root in (exec_prefix, prefix):
            candidates += [join(root, "python.exe"), join(root, "python3.exe")]
        for folder in (join(prefix, "bin"), here):
            candidates += [join(folder, "python3.exe"), join(folder, "python.exe")]
    elif platform == "darwin":
        candidates += [join(here, "bin", "python3"), join(here, "bin", exact), join(exec_prefix, "bin", exact),
                       join(exec_prefix, "bin", "python3")]
    else:
        candidates += [join(exec_prefix, "bin", exact), join(here, "python3")]
        found = which("python3")
        if found:
            candidates.append(found)
    return next((path for path in candidates if path and isfile(path)), None)


def qgis_python():
    """:func:`find_python` for this process; DeepGUError when there is none or it has no pip."""
    python = find_python(sys.executable, sys.prefix, sys.exec_prefix, sys.platform, sys.version_info[:2])
    if python is None:
        raise DeepGUError("cannot find the Python interpreter that runs QGIS (looked beside %s and in %s)"
                          % (sys.executable, sys.exec_prefix))
    done = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DeepGUError("pip is missing for QGIS's Python %s: install it (Debian/Ubuntu: 'apt install "
                          "python3-pip'; elsewhere: '%s -m ensurepip'), then run this again" % (python, python))
    return python


def pip_commands(python, target, names, find_links=None, index_url=None, platform=sys.platform, constraint=None):
    """The pip command lines installing the import names ``names`` into ``target``: ``[(names, argv)]``.

    ``find_links`` (a folder of wheels) alone installs offline (``--no-index``); ``index_url`` replaces PyPI.
    With neither, torch comes alone from PyTorch's CPU index on Linux and Windows (PyPI's Linux torch is the CUDA
    build, gigabytes for nothing on a machine without an NVIDIA GPU). ``constraint``: a pip constraints file.
    ``--no-compile``: Python compiles each module when it first imports it, rather than every file of torch at
    install time."""
    base = [python, "-m", "pip", "install", "--target", target, "--no-input", "--progress-bar", "off",
            "--disable-pip-version-check", "--no-compile"] + (["--constraint", constraint] if constraint else [])
    if find_links:
        base += (["--index-url", index_url] if index_url else ["--no-index"]) + ["--find-links", find_links]
    elif index_url:
        base += ["--index-url", index_url]
    names = list(names)
    torch_apart = not (find_links or index_url) and "torch" in names and platform.startswith(("linux", "win"))
    groups = ([([name for name in names if name != "torch"], []), (["torch"], ["--index-url", TORCH_CPU_INDEX])]
              if torch_apart else [(names, [])])
    return [(group, base + extra + [requirement(name) for name in group]) for group, extra in groups if group]


class PipProgress:
    """Progress of a pip install from its output lines: each 'Collecting'/'Processing' moves towards 60 %
    (the number of dependencies is not known beforehand), 'Installing collected packages' is 70 %, 'Successfully
    installed' 100 %."""

    def __init__(self):
        self.collected, self.percent = 0, 0.0

    def update(self, line):
        line = line.strip()
        if line.startswith(("Collecting ", "Processing ", "Downloading ")):
            self.collected += 1
            self.percent = 60.0 * (1 - 0.85 ** self.collected)
        elif line.startswith("Installing collected packages"):
            self.percent = 70.0
        elif line.startswith("Successfully installed"):
            self.percent = 100.0
        return self.percent


def run_pip(argv, feedback, start=0.0, share=100.0):
    """Run one pip command line, passing its lines to ``feedback`` and its progress (scaled to ``start`` +
    ``share`` percent); kills pip and raises Canceled when the feedback is canceled, DeepGUError when pip fails
    (with pip's last error line)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    progress, last_error = PipProgress(), ""
    while True:
        if feedback.is_canceled():
            process.kill()
            process.wait()
            raise Canceled()
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            break
        if line.strip():
            feedback.info(line.rstrip())
            if line.startswith("ERROR"):
                last_error = line.strip()
            feedback.set_progress(start + share * progress.update(line) / 100.0)
    if process.wait() != 0:
        raise DeepGUError("pip failed (exit status %d): %s" % (process.returncode, last_error or "see the log"))


def install(target, feedback, find_links=None, index_url=None):
    """Install the missing packages into ``target`` with QGIS's Python; returns the import names installed (empty
    when nothing is missing). ``target`` is created; it is put on ``sys.path`` at once."""
    names = missing()
    if not names:
        feedback.info("every dependency is importable already: %s" % ", ".join(PACKAGES))
        return []
    if find_links and not os.path.isdir(find_links):
        raise DeepGUError("FIND_LINKS must be a folder of wheel files (got '%s')" % find_links)
    python = qgis_python()
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as error:
        raise DeepGUError("TARGET %s cannot be created: %s" % (target, error.strerror)) from None
    if not os.access(target, os.W_OK):
        raise DeepGUError("TARGET %s is not writable" % target)
    with tempfile.TemporaryDirectory() as scratch:
        constraint = os.path.join(scratch, "constraints.txt")
        with open(constraint, "w") as f:
            f.write("".join(pin + "\n" for pin in pins()))
        commands = pip_commands(python, target, names, find_links, index_url, constraint=constraint)
        try:
            for index, (group, argv) in enumerate(commands):
                feedback.info("installing %s into %s with %s"
                              % (", ".join(requirement(n) for n in group), target, python))
                run_pip(argv, feedback, 100.0 * index / len(commands), 100.0 / len(commands))
        finally:
            drop_pinned(target)
    add_to_path(target)
    return names
