"""The workflow model: its builder rebuilds the committed file, and its parameter defaults hold headless."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import ROOT, require_qgis
from core.raster_io import read_all
from test_qgis_algorithms import run_json

MODEL = os.path.join(ROOT, "models", "deepgu_workflow.model3")


def _canonical(element):
    """An XML element as nested tuples, attributes sorted (Qt writes them in hash order)."""
    return (element.tag, tuple(sorted(element.attrib.items())), (element.text or "").strip(),
            tuple(_canonical(child) for child in element))


def test_builder_rebuilds_the_committed_model(tmp_path):
    require_qgis()
    rebuilt = str(tmp_path / "workflow.model3")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_workflow_model.py"),
                           "--output", rebuilt], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert _canonical(ET.parse(rebuilt).getroot()) == _canonical(ET.parse(MODEL).getroot()), \
        "models/deepgu_workflow.model3 is stale: rerun scripts/build_workflow_model.py"


def test_with_defaults_fills_only_missing_inputs():
    require_qgis()
    from qgis.core import QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination
    from algorithms.workflow import with_defaults
    double = QgsProcessingParameterNumber.Double
    definitions = [QgsProcessingParameterNumber("LAMBDA", "l", double, 0.05),
                   QgsProcessingParameterNumber("GIVEN", "g", double, 1.0),
                   QgsProcessingParameterNumber("NO_DEFAULT", "n", double, None, optional=True),
                   QgsProcessingParameterRasterDestination("OUT", "o", "TEMPORARY_OUTPUT")]
    assert with_defaults(definitions, {"GIVEN": 2.0}) == {"GIVEN": 2.0, "LAMBDA": 0.05}
    assert with_defaults(definitions, {"LAMBDA": None}) == {"LAMBDA": 0.05, "GIVEN": 1.0}


def test_workflow_default_lambda_a_reaches_the_unmix_step(qgis_process, tmp_path):
    """LAMBDA_A omitted = LAMBDA_A=0.05 (the documented default), not the unmix step's own 0.01."""
    scene = str(tmp_path / "scene.tif")
    run_json(qgis_process, "deepgu:synthetic", KIND=0, ROWS=30, COLS=30, SEED=4, OUTPUT=scene)
    abundances = {}
    for tag, extra in (("omitted", {}), ("explicit", {"LAMBDA_A": 0.05})):
        outputs = {name: str(tmp_path / ("%s-%s" % (tag, file))) for name, file in (
            ("vca:ENDMEMBERS_CSV", "em.csv"), ("fcls:FCLS_ABUNDANCES", "fcls.tif"), ("bundles:BUNDLES_CSV", "b.csv"),
            ("trainvae:MODEL_FILE", "model.pt"), ("unmix:DEEPGU_ABUNDANCES", "deepgu.tif"))}
        run_json(qgis_process, "deepgu:workflow", INPUT=scene, MATERIALS=3, SEED=1, **outputs, **extra)
        abundances[tag] = read_all(outputs["unmix:DEEPGU_ABUNDANCES"])[0]
    # The unmix step alone, from the omitted run's model and FCLS start: with 0.05 it is the workflow's last step,
    # with 0.01 (the step's own default, which omitted model parameters used to get) it gives other abundances.
    for value in (0.05, 0.01):
        run_json(qgis_process, "deepgu:unmix", INPUT=scene, MODEL=str(tmp_path / "omitted-model.pt"),
                 INIT_ABUNDANCES=str(tmp_path / "omitted-fcls.tif"), LAMBDA_A=value,
                 OUTPUT=str(tmp_path / ("unmix-%g.tif" % value)))
        abundances[value] = read_all(str(tmp_path / ("unmix-%g.tif" % value)))[0]
    np.testing.assert_array_equal(abundances["omitted"], abundances["explicit"])
    np.testing.assert_array_equal(abundances["omitted"], abundances[0.05])
    assert np.abs(abundances["omitted"] - abundances[0.01]).max() > 1e-3
