"""The workflow model: its builder rebuilds the committed file, and its parameter defaults hold headless."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np

from conftest import ROOT, require_qgis
from core.files.raster_io import read_all
from helpers import run_json

MODEL = os.path.join(ROOT, "models", "deepgu_workflow.model3")


def _canonical(element):
    """An XML element as nested tuples, attributes sorted (Qt writes them in hash order)."""
    return (element.tag, tuple(sorted(element.attrib.items())), (element.text or "").strip(),
            tuple(_canonical(child) for child in element))


def _map(root, name):
    """The child ``<Option name=NAME>`` of ``root``."""
    return next(e for e in root if e.get("name") == name)


def _output_definitions(root):
    """``{definition element: (child id, model output)}`` of the model's output parameters, from the metadata
    that QGIS 3.40+ writes into them (empty for a file of QGIS 3.22, which writes none)."""
    outputs = {}
    for definition in _map(root, "parameterDefinitions"):
        metadata = {e.get("name"): e.get("value") for e in definition.iter("Option")}
        if "_modelChildId" in metadata and "_modelChildOutputName" in metadata:
            outputs[definition] = (metadata["_modelChildId"], metadata["_modelChildOutputName"])
    return outputs


def _as_first_model_version(root):
    """The model as QGIS's first model format names it: QGIS 3.40+ (``internal_version`` Version2) names a new
    model's outputs after their labels (``deepgu_abundances``), earlier ones ``child:output``
    (``unmix:DEEPGU_ABUNDANCES``); a model keeps the names it was saved with, whichever QGIS runs it."""
    for element in list(root):
        if element.get("name") == "internal_version":
            root.remove(element)
    for definition, (child, output) in _output_definitions(root).items():
        name = "%s:%s" % (child, output)
        definition.set("name", name)
        _map(definition, "name").set("value", name)
    definitions = _map(root, "parameterDefinitions")
    definitions[:] = sorted(definitions, key=lambda definition: definition.get("name"))     # as QGIS orders them
    return root


def _build_workflow_model(tmp_path, output, *args):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_workflow_model.py"),
                           "--output", output] + list(args), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return _canonical(_as_first_model_version(ET.parse(output).getroot()))


def test_builder_rebuilds_the_committed_model(tmp_path):
    """The same model, whichever QGIS wrote the committed file: both files as this QGIS reads and writes them,
    output names in the first model format. The committed file keeps those names (users' scripts pass
    ``unmix:DEEPGU_ABUNDANCES=...``): rebuilt by QGIS 3.40+ it would rename them."""
    require_qgis()
    committed = ET.parse(MODEL).getroot()
    outputs = {"%s:%s" % (_map(output, "child_id").get("value"), output.get("name"))
               for child in _map(committed, "children") for output in _map(child, "outputs")}
    destinations = {definition.get("name") for definition in _map(committed, "parameterDefinitions")
                    if _map(definition, "parameter_type").get("value").endswith("Destination")}
    assert len(outputs) == 7 and destinations == outputs
    rebuilt = str(tmp_path / "workflow.model3")
    _build_workflow_model(tmp_path, rebuilt)
    assert _build_workflow_model(tmp_path, str(tmp_path / "rebuilt.model3"), "--resave", rebuilt) == \
        _build_workflow_model(tmp_path, str(tmp_path / "committed.model3"), "--resave", MODEL), \
        "models/deepgu_workflow.model3 is stale: rerun scripts/build_workflow_model.py"


def _option(root, name, kind):
    """The ``<Option name=NAME type=KIND>`` element of a model file (the first one)."""
    return next(e for e in root.iter("Option") if e.get("name") == name and e.get("type") == kind)


def test_resaving_keeps_a_changed_default_or_link(tmp_path):
    """Resaving (how the test above compares files across QGIS versions) keeps what the model says: the committed
    model with its MATERIALS default changed, or the bundles' abundances taken from another step, is not the
    committed model any more, while the same file merely rewritten is."""
    require_qgis()
    committed = _build_workflow_model(tmp_path, str(tmp_path / "committed.model3"), "--resave", MODEL)

    def materials_default(root):
        _option(_option(root, "MATERIALS", "Map"), "default", "int").set("value", "4")

    def abundances_link(root):
        _option(_option(_option(root, "bundles", "Map"), "ABUNDANCES", "List"), "child_id", "QString").set(
            "value", "endmembers")

    for what, change in (("unchanged", None), ("default", materials_default), ("link", abundances_link)):
        tree = ET.parse(MODEL)
        if change:
            change(tree.getroot())
        path = str(tmp_path / ("%s.model3" % what))
        tree.write(path)
        resaved = _build_workflow_model(tmp_path, str(tmp_path / ("%s-resaved.model3" % what)), "--resave", path)
        assert (resaved == committed) == (change is None), what


def test_with_defaults_fills_only_missing_inputs():
    require_qgis()
    from qgis.core import QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination
    from algorithms.compat import NUMBER_DOUBLE
    from algorithms.workflow import with_defaults
    double = NUMBER_DOUBLE
    definitions = [QgsProcessingParameterNumber("LAMBDA", "l", double, 0.05),
                   QgsProcessingParameterNumber("GIVEN", "g", double, 1.0),
                   QgsProcessingParameterNumber("NO_DEFAULT", "n", double, None, optional=True),
                   QgsProcessingParameterRasterDestination("OUT", "o", "TEMPORARY_OUTPUT")]
    assert with_defaults(definitions, {"GIVEN": 2.0}) == {"GIVEN": 2.0, "LAMBDA": 0.05}
    assert with_defaults(definitions, {"LAMBDA": None}) == {"LAMBDA": 0.05, "GIVEN": 1.0}


def test_workflow_default_lambda_a_reaches_the_unmix_step(qgis_process, tmp_path):
    """LAMBDA_A omitted = the documented default (auto) of the unmix step, not another number."""
    scene = str(tmp_path / "scene.tif")
    run_json(qgis_process, "deepgu:synthetic", KIND=0, ROWS=30, COLS=30, SEED=4, OUTPUT=scene)
    outputs = {name: str(tmp_path / file) for name, file in (
        ("endmembers:ENDMEMBERS_CSV", "em.csv"), ("fcls:FCLS_ABUNDANCES", "fcls.tif"),
        ("bundles:BUNDLES_CSV", "b.csv"), ("trainvae:MODEL_FILE", "model.pt"),
        ("unmix:DEEPGU_ABUNDANCES", "deepgu.tif"))}
    run_json(qgis_process, "deepgu:workflow", INPUT=scene, MATERIALS=3, SEED=1, **outputs)
    workflow = read_all(outputs["unmix:DEEPGU_ABUNDANCES"])[0]
    # The unmix step alone from the workflow's model and FCLS start: omitted (auto) is the workflow's last step;
    # the step's old numeric default 0.01 gives other abundances.
    abundances = {}
    for value in (None, 0.01):
        extra = {} if value is None else {"LAMBDA_A": value}
        path = str(tmp_path / ("unmix-%s.tif" % value))
        run_json(qgis_process, "deepgu:unmix", INPUT=scene, MODEL=outputs["trainvae:MODEL_FILE"],
                 INIT_ABUNDANCES=outputs["fcls:FCLS_ABUNDANCES"], OUTPUT=path, **extra)
        abundances[value] = read_all(path)[0]
    np.testing.assert_array_equal(workflow, abundances[None])
    assert np.abs(workflow - abundances[0.01]).max() > 1e-3
