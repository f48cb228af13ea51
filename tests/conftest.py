"""Shared test set-up: the repository root is importable, so ``import core`` works."""

import copy
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def _qgis_available():
    return shutil.which("qgis_process.bin") is not None


def require_qgis():
    """Skip without QGIS, except where the suite demands it (scripts/run_tests.sh, CI)."""
    if not _qgis_available():
        if os.environ.get("DEEPGU_REQUIRE_QGIS"):
            pytest.fail("qgis_process.bin not found but DEEPGU_REQUIRE_QGIS is set")
        pytest.skip("QGIS is not installed")


def qgis_env(config_dir):
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(config_dir)
    site = [p for p in sys.path if p.endswith("site-packages")]
    env["PYTHONPATH"] = os.pathsep.join(site + [env.get("PYTHONPATH", "")])
    return env


class QgisProcess:
    """Runs ``qgis_process.bin`` against a private QGIS configuration with the plugin enabled."""

    def __init__(self, config_dir):
        self.env = qgis_env(config_dir)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "install_plugin.sh")], env=self.env,
                       check=True, capture_output=True)

    def __call__(self, *args, timeout=600):
        return subprocess.run(["qgis_process.bin"] + [str(a) for a in args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def run(self, algorithm, timeout=600, **parameters):
        """``qgis_process.bin run ALG -- KEY=VALUE ...``; returns the CompletedProcess."""
        args = ["run", algorithm, "--"] + ["%s=%s" % kv for kv in parameters.items()]
        return self(*args, timeout=timeout)


@pytest.fixture(scope="session")
def qgis_process(tmp_path_factory):
    require_qgis()
    return QgisProcess(tmp_path_factory.mktemp("qgis-config"))


@pytest.fixture(scope="module")
def qgis_one_thread(qgis_process):
    """qgis_process with one OpenMP thread, for tests whose solves are tiny: torch's two threads waited on each
    other for minutes on a busy machine (a 3-iteration GLMM run passed 600 s)."""
    runner = copy.copy(qgis_process)
    runner.env = dict(qgis_process.env, OMP_NUM_THREADS="1")
    return runner


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write to: a chmod 555 folder, or /proc/1 when running as root."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield str(folder) if not os.access(str(folder), os.W_OK) else "/proc/1"
    folder.chmod(0o755)


@pytest.fixture
def one_thread():
    """These problems are tiny: one torch thread avoids OpenMP waits on a busy machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
