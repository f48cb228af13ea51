"""scripts/qgis_env.sh, sourced from any folder, sets up headless QGIS with the venv's torch (README)."""

import os
import subprocess

from conftest import ROOT, qgis_env, require_qgis


def test_sourced_from_another_folder_lists_the_algorithms_and_sees_torch(tmp_path):
    require_qgis()
    config = tmp_path / "config"
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "install_plugin.sh")], env=qgis_env(config), check=True,
                   capture_output=True)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "QT_QPA_PLATFORM")}
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(config)
    script = os.path.join(ROOT, "scripts", "qgis_env.sh")
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run(
        ["bash", "-c", 'source "$0" && echo "QPA=$QT_QPA_PLATFORM" && qgis_process.bin list '
                       '&& /usr/bin/python3 -c "import torch; print(\'torch\', torch.__version__)"', script],
        cwd=str(work), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "QPA=offscreen" in done.stdout and "torch 2." in done.stdout
    for algorithm in ("deepgu:unmix", "deepgu:trainvae", "deepgu:workflow"):
        assert algorithm in done.stdout


def test_missing_venv_is_reported_without_closing_the_shell(tmp_path):
    script = os.path.join(ROOT, "scripts", "qgis_env.sh")
    env = dict(os.environ, DEEPGU_VENV=str(tmp_path / "no-venv"))
    done = subprocess.run(["bash", "-c", 'source "$0"; echo "status $? and the shell goes on"', script],
                          env=env, capture_output=True, text=True, timeout=60)
    assert "status 1 and the shell goes on" in done.stdout
    assert "no virtual environment at %s" % (tmp_path / "no-venv") in done.stderr
