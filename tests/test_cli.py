"""The command lines outside QGIS (python -m core.jobs.unmix / fcls) write the file the QGIS algorithms write."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from core.jobs import vca as vca_job
from core.files.raster_io import open_raster, read_all
from helpers import run_json, scene_and_model


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    _, image, model = scene_and_model(folder, 20, seed=2, epochs=20)
    endmembers = str(folder / "em.csv")
    vca_job.run(image, 3, endmembers, seed=0)
    return dict(image=image, model=model, endmembers=endmembers)


def cli(module, *args):
    return subprocess.run([sys.executable, "-m", module] + [str(a) for a in args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def assert_same_file(path, other):
    a, valid_a, info_a = read_all(path)
    b, valid_b, info_b = read_all(other)
    assert np.array_equal(valid_a, valid_b) and valid_a.all()
    assert np.max(np.abs(a - b)) < 1e-6
    assert info_a.band_names == info_b.band_names and info_a.transform == info_b.transform
    assert info_a.crs_wkt == info_b.crs_wkt


def test_unmix_cli_writes_the_algorithms_file(qgis_process, inputs, tmp_path):
    by_cli, by_qgis = str(tmp_path / "cli.tif"), str(tmp_path / "qgis.tif")
    done = cli("core.jobs.unmix", inputs["image"], inputs["model"], by_cli, "--lambda-a", 0.05, "--max-iter", 2,
               "--output-rmse", tmp_path / "rmse.tif")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "100%" in done.stderr                                   # the console progress bar
    run_json(qgis_process, "deepgu:unmix", INPUT=inputs["image"], MODEL=inputs["model"], LAMBDA_A=0.05, MAX_ITER=2,
             OUTPUT=by_qgis)
    assert_same_file(by_cli, by_qgis)
    assert open_raster(str(tmp_path / "rmse.tif")).n_bands == 1


def test_fcls_cli_and_the_algorithm_on_a_local_cluster(qgis_process, inputs, tmp_path):
    """Also: worker processes started from qgis_process import the plugin (package ``deepgu``)."""
    by_cli, by_qgis = str(tmp_path / "cli.tif"), str(tmp_path / "qgis.tif")
    done = cli("core.jobs.fcls", inputs["image"], inputs["endmembers"], by_cli)
    assert done.returncode == 0, done.stderr[-2000:]
    run_json(qgis_process, "deepgu:fcls", INPUT=inputs["image"], ENDMEMBERS=inputs["endmembers"], CLUSTER="local:1",
             OUTPUT=by_qgis)
    assert_same_file(by_cli, by_qgis)


def test_cli_bad_input_is_one_line_and_writes_nothing(inputs, tmp_path):
    out = tmp_path / "never.tif"
    done = cli("core.jobs.fcls", inputs["image"], inputs["endmembers"], out, "--cluster", "my laptop")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: CLUSTER must be") and len(done.stderr.strip().splitlines()) == 1
    done = cli("core.jobs.unmix", inputs["image"], tmp_path / "missing.pt", out)
    assert done.returncode == 2 and "missing.pt" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
