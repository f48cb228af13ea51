"""The plugin zip installs like QGIS's "Install from ZIP" into a fresh profile, loads and runs."""

import configparser
import os
import subprocess
import zipfile

from conftest import ROOT, qgis_env, require_qgis
from core.files.raster_io import open_raster


def build_zip(folder):
    done = subprocess.run(["bash", os.path.join(ROOT, "scripts", "package_plugin.sh"), str(folder)],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_zip_holds_the_plugin_folder_only(tmp_path):
    path = build_zip(tmp_path)
    metadata = configparser.ConfigParser()
    metadata.read(os.path.join(ROOT, "metadata.txt"))
    assert os.path.basename(path) == "deepgu-%s.zip" % metadata["general"]["version"]
    names = zipfile.ZipFile(path).namelist()
    assert all(name.startswith("deepgu/") for name in names)
    for needed in ("__init__.py", "metadata.txt", "provider.py", "LICENSE", "CHANGELOG.md", "icon.svg",
                   "core/data/usgs_library.csv", "models/deepgu_workflow.model3", "algorithms/fcls.py"):
        assert "deepgu/" + needed in names
    parts = {part for name in names for part in name.split("/")}
    assert not parts & {"tests", "bench", ".venv", "out", "dist", "scripts", "__pycache__", ".git"}
    assert not [name for name in names if name.endswith(".pyc")]


def test_metadata_has_no_placeholder():
    with open(os.path.join(ROOT, "metadata.txt")) as f:
        text = f.read().lower()
    for placeholder in ("example", "invalid", "todo", "xxx", "noreply"):
        assert placeholder not in text
    with open(os.path.join(ROOT, "LICENSE")) as f:
        assert "GNU GENERAL PUBLIC LICENSE" in f.read(200)


def test_zip_installs_into_a_fresh_profile_and_runs(tmp_path):
    require_qgis()
    path = build_zip(tmp_path / "dist")
    config = tmp_path / "config"
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(path).extractall(str(plugins))
    env = qgis_env(config)
    enable = subprocess.run(["qgis_process.bin", "plugins", "enable", "deepgu"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    listing = subprocess.run(["qgis_process.bin", "list"], env=env, capture_output=True, text=True, timeout=300)
    for algorithm in ("deepgu:synthetic", "deepgu:fcls", "deepgu:unmix", "deepgu:workflow"):
        assert algorithm in listing.stdout
    scene = str(tmp_path / "scene.tif")
    run = subprocess.run(["qgis_process.bin", "run", "deepgu:synthetic", "--", "ROWS=8", "COLS=9", "SEED=1",
                          "OUTPUT=" + scene, "OUTPUT_ABUNDANCES=" + str(tmp_path / "truth.tif")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    info = open_raster(scene)
    assert (info.rows, info.cols, info.n_bands) == (8, 9, 198)
    assert os.path.realpath(str(plugins / "deepgu")) != os.path.realpath(ROOT)    # the copy ran, not the clone


def test_install_copy_replaces_a_link_and_can_run_twice(tmp_path):
    require_qgis()
    env = qgis_env(tmp_path / "config")
    script = os.path.join(ROOT, "scripts", "install_plugin.sh")
    plugin = tmp_path / "config" / "profiles" / "default" / "python" / "plugins" / "deepgu"
    for args in ([], ["--copy"], ["--copy"]):
        done = subprocess.run(["bash", script] + args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    assert plugin.is_dir() and not plugin.is_symlink()
    assert (plugin / "metadata.txt").exists() and not (plugin / "tests").exists()
    assert os.path.isdir(os.path.join(ROOT, "tests"))        # removing the link left the clone alone
