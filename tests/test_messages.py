"""What users read: no spurious GDAL or torch warnings, progress messages on lines of their own, null metrics."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT, qgis_env, require_qgis
from core.files.raster_io import georeference, write_raster
from helpers import run_json


def test_no_torch_jit_deprecation_warning_from_forward_mode_jacobians():
    """torch.func.jvp (the Z-step) loads decompositions with the deprecated torch.jit.script on first use."""
    code = ("import torch, core.models.vae\n"
            "torch.func.jvp(torch.tanh, (torch.ones(3),), (torch.ones(3),))\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_messages_start_a_line_of_their_own_between_progress_dots(qgis_process, tmp_path):
    scene, library = str(tmp_path / "s.tif"), str(tmp_path / "lib.csv")
    run_json(qgis_process, "deepgu:synthetic", ROWS=6, COLS=6, OUTPUT=scene, OUTPUT_ABUNDANCES=str(tmp_path / "t.tif"),
             OUTPUT_LIBRARY=library)
    done = qgis_process.run("deepgu:fcls", INPUT=scene, ENDMEMBERS=library, OUTPUT=str(tmp_path / "a.tif"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert any(line.startswith("FCLS: 36 valid pixels of 36") for line in done.stdout.splitlines()), done.stdout


def test_default_style_of_a_constant_abundance_band_prints_no_gdal_error(tmp_path):
    """QGIS computes the default renderer's histograms when it loads a layer; GDAL reports a constant band
    (a material absent from the image) as "ERROR 5: ... dfMax should be strictly greater than dfMin"."""
    require_qgis()
    abundances = np.zeros((3, 4, 5))
    abundances[0] = 1.0                         # every band constant
    write_raster(str(tmp_path / "a.tif"), abundances, georeference(4, 5))
    os.symlink(ROOT, str(tmp_path / "deepgu"))  # the plugin as the package QGIS imports
    code = ("from qgis.core import QgsApplication\n"
            "app = QgsApplication([], False)\n"
            "app.initQgis()\n"
            "from deepgu.algorithms.base import write_abundance_style\n"
            "write_abundance_style(%r)\n" % str(tmp_path / "a.tif"))
    done = subprocess.run(["/usr/bin/python3", "-c", code], cwd=str(tmp_path), env=qgis_env(tmp_path / "config"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.path.exists(str(tmp_path / "a.qml"))
    assert "dfMax" not in done.stdout + done.stderr, done.stderr


def test_metrics_not_computed_are_null_in_json(qgis_process, tmp_path):
    truth = str(tmp_path / "t.tif")
    run_json(qgis_process, "deepgu:synthetic", ROWS=5, COLS=5, OUTPUT=str(tmp_path / "s.tif"), OUTPUT_ABUNDANCES=truth)
    done = qgis_process("run", "deepgu:metrics", "--json", "--", "ESTIMATE=" + truth, "REFERENCE=" + truth)
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    assert results["RMSE_A"] == 0.0 and results["RMSE_M"] is None and results["SAM_M"] is None
