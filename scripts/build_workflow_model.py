"""Build models/deepgu_workflow.model3: endmembers -> FCLS -> bundles -> trainvae -> unmix.

Run with the plugin importable (QGIS's Python, torch not needed):
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/build_workflow_model.py [--output PATH]
The .model3 is committed (tests/test_workflow_model.py checks that this script rebuilds it); rerun
this after changing the tables below or an algorithm's parameters. To change the workflow, edit
the tables: PARAMETERS (the model's inputs and the child parameters each feeds), STEPS (the
children, their links and outputs), STATIC (fixed child settings) and OUTPUT_LABELS.
Defaults of PARAMETERS reach the children however the model is run: deepgu:workflow
(algorithms/workflow.py) fills the ones a caller leaves out.
Rebuild the committed file with QGIS 3.22, which wrote it: QGIS 3.40 and later name a new model's outputs
after their labels (``deepgu_abundances``, not ``unmix:DEEPGU_ABUNDANCES``), which tests/test_workflow_model.py
refuses.
"""

import argparse
import importlib.util
import os
import sys
from collections import namedtuple

os.environ.setdefault("QT_HASH_SEED", "0")      # Qt writes XML attributes in hash order: keep the file stable

from qgis.PyQt.QtCore import QPointF  # noqa: E402
from qgis.core import (QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,  # noqa: E402
                       QgsProcessingModelChildParameterSource, QgsProcessingModelOutput,
                       QgsProcessingModelParameter, QgsProcessingParameterExtent, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterFeatureSource,
                       QgsProcessingParameterField)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from algorithms.compat import (NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR_POINT,  # noqa: E402
                              SOURCE_VECTOR_POLYGON)
from core.defaults import BUNDLE_METHODS, PURITY_WINDOW, WORKFLOW, WORKFLOW_BUNDLES, format_default  # noqa: E402

TARGET = os.path.join(ROOT, "models", "deepgu_workflow.model3")
INTEGER, DOUBLE = NUMBER_INTEGER, NUMBER_DOUBLE
RASTER, EXTENT = "raster", "extent"
VECTOR, FIELD = "vector", "field"       # a polygon/point layer, and a field of the REGIONS layer


class Parameter(namedtuple("Parameter", "name label kind minimum help feeds")):
    """A model input: a raster layer, an extent, a vector layer (optional), a field of REGIONS (optional) or a
    number (kind INTEGER or DOUBLE, default from core.defaults.WORKFLOW); ``feeds`` maps child id -> child
    parameter."""


# The model's inputs, in dialog order.
PARAMETERS = [
    Parameter("INPUT", "Hyperspectral image", RASTER, None, "Hyperspectral image.",
              {"endmembers": "INPUT", "fcls": "INPUT", "bundles": "INPUT", "unmix": "INPUT"}),
    Parameter("MATERIALS", "Number of materials", INTEGER, 2, "Number of materials P.",
              {"endmembers": "ENDMEMBERS"}),
    Parameter("SEED", "Random seed", INTEGER, 0, "Random seed of every random step.",
              {"endmembers": "SEED", "bundles": "SEED", "trainvae": "SEED"}),
    Parameter("LAMBDA_A", "Spatial smoothing (lambda_A; empty = auto)", DOUBLE, 0.0,
              "Spatial smoothing of the abundances; empty = auto, set from the data (core/solvers/regularisation.py); "
              "a number overrides it (the paper's grid on reflectance: 0.005-0.05).",
              {"unmix": "LAMBDA_A"}),
    Parameter("EXTENT", "Extent to unmix (empty: the whole image)", EXTENT, None,
              "Optional: the DeepGU step unmixes only the pixels covering this map extent (snapped outward to whole "
              "pixels) and its outputs cover just that window; the steps before it use the whole image (the spatial "
              "bundles need FCLS abundances on the image's grid, and the VAEs learn from all of its purest pixels).",
              {"unmix": "EXTENT"}),
    Parameter("REGIONS", "Regions of known materials (optional; polygons or points)", VECTOR, None,
              "Optional: polygons (or points) drawn over pure areas of known materials, in any CRS, with "
              "MATERIAL_FIELD naming each one's material (docs/regions.md). Those materials get their references from "
              "their regions (the trimmed mean of the pixels whose centre is inside, as deepgu:regions); when "
              "MATERIALS is larger than the number named, the others are extracted with these held fixed. MATERIALS "
              "must be at least the number named. Draw them where a material is rare, thin or close to another.",
              {"endmembers": "REGIONS"}),
    Parameter("MATERIAL_FIELD", "Field naming the material (with REGIONS)", FIELD, None,
              "The field of REGIONS naming each feature's material (needed with REGIONS).",
              {"endmembers": "MATERIAL_FIELD"}),
]
# (child id, algorithm, {child parameter: (child id, its output)}, {model output name: child output})
STEPS = [
    ("endmembers", "deepgu:endmembers", {}, {"ENDMEMBERS_CSV": "OUTPUT"}),
    ("fcls", "deepgu:fcls", {"ENDMEMBERS": ("endmembers", "OUTPUT")}, {"FCLS_ABUNDANCES": "OUTPUT"}),
    ("bundles", "deepgu:bundles", {"ENDMEMBERS": ("endmembers", "OUTPUT"), "ABUNDANCES": ("fcls", "OUTPUT")},
     {"BUNDLES_CSV": "OUTPUT"}),
    ("trainvae", "deepgu:trainvae", {"BUNDLES": ("bundles", "OUTPUT"), "ENDMEMBERS": ("endmembers", "OUTPUT")},
     {"MODEL_FILE": "OUTPUT"}),
    ("unmix", "deepgu:unmix", {"MODEL": ("trainvae", "OUTPUT"), "INIT_ABUNDANCES": ("fcls", "OUTPUT")},
     {"DEEPGU_ABUNDANCES": "OUTPUT", "DEEPGU_ENDMEMBERS": "OUTPUT_ENDMEMBERS", "DEEPGU_RMSE": "OUTPUT_RMSE"}),
]
# Fixed child settings that differ from the algorithms' defaults: spatially pure bundles of 200 pixels
# (bench/bench_table3.py: on DC1 they halve DeepGU's abundance error against the paper's nearest-angle bundles),
# down to the VAE's minimum of 3 pixels for a material that dominates few pixels (bench/bench_accuracy.py's
# four-material scenes).
STATIC = {"bundles": dict(WORKFLOW_BUNDLES, METHOD=BUNDLE_METHODS.index(WORKFLOW_BUNDLES["METHOD"]))}
OUTPUT_LABELS = {"ENDMEMBERS_CSV": "Reference endmembers", "FCLS_ABUNDANCES": "FCLS abundances",
                 "BUNDLES_CSV": "Bundles", "MODEL_FILE": "VAE model file", "DEEPGU_ABUNDANCES": "DeepGU abundances",
                 "DEEPGU_ENDMEMBERS": "DeepGU per-pixel endmembers", "DEEPGU_RMSE": "DeepGU reconstruction RMSE"}


def load_plugin():
    spec = importlib.util.spec_from_file_location("deepgu", os.path.join(ROOT, "__init__.py"),
                                                  submodule_search_locations=[ROOT])
    module = importlib.util.module_from_spec(spec)
    sys.modules["deepgu"] = module
    spec.loader.exec_module(module)
    plugin = module.classFactory(None)
    plugin.initProcessing()
    return plugin


def build():
    model = QgsProcessingModelAlgorithm("workflow", "DeepGU")
    model.setName("workflow")
    model.setGroup("DeepGU")
    model.setHelpContent(dict({
        "ALG_DESC": "The whole DeepGU pipeline (Borsoi et al. 2019, Algorithm 1): reference endmembers "
                    "(deepgu:endmembers, 'refined': VCA with restarts, then the mean of each material's "
                    "spatially purest pixels), FCLS initial abundances, bundles of the %d spatially purest "
                    "pixels per material (FCLS abundance averaged over %d x %d pixels), one VAE per "
                    "material, DeepGU unmixing with regularisation set from the data (auto). "
                    "Required: INPUT, MATERIALS and the DeepGU abundances output; the other outputs are "
                    "optional (temporary files unless given)."
                    % (WORKFLOW_BUNDLES["N_PIXELS"], PURITY_WINDOW, PURITY_WINDOW),
    }, **{p.name: p.help + (" Default: %s." % format_default(WORKFLOW[p.name]) if p.name in WORKFLOW else "")
          for p in PARAMETERS}))
    for index, p in enumerate(PARAMETERS):
        if p.kind == RASTER:
            parameter = QgsProcessingParameterRasterLayer(p.name, p.label)
        elif p.kind == EXTENT:
            parameter = QgsProcessingParameterExtent(p.name, p.label, optional=True)
        elif p.kind == VECTOR:
            parameter = QgsProcessingParameterFeatureSource(
                p.name, p.label, [SOURCE_VECTOR_POLYGON, SOURCE_VECTOR_POINT], optional=True)
        elif p.kind == FIELD:
            parameter = QgsProcessingParameterField(p.name, p.label, parentLayerParameterName="REGIONS",
                                                    optional=True)
        else:
            parameter = QgsProcessingParameterNumber(p.name, p.label, p.kind, WORKFLOW[p.name],
                                                     optional=WORKFLOW[p.name] is None, minValue=p.minimum)
        model.addModelParameter(parameter, QgsProcessingModelParameter(p.name))
        model.parameterComponent(p.name).setPosition(QPointF(120 + 220 * index, 60))
    for index, (child_id, algorithm_id, links, outputs) in enumerate(STEPS):
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        child.setPosition(QPointF(200 + 120 * index, 180 + 110 * index))
        child.setDescription(QgsApplication.processingRegistry().algorithmById(algorithm_id).displayName())
        for p in PARAMETERS:
            if child_id in p.feeds:
                child.addParameterSources(p.feeds[child_id],
                                          [QgsProcessingModelChildParameterSource.fromModelParameter(p.name)])
        for target, value in STATIC.get(child_id, {}).items():
            child.addParameterSources(target, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
        for target, (source_child, source_output) in links.items():
            child.addParameterSources(target, [QgsProcessingModelChildParameterSource.fromChildOutput(
                source_child, source_output)])
        model_outputs = {}
        for offset, (name, child_output) in enumerate(outputs.items()):
            output = QgsProcessingModelOutput(name, OUTPUT_LABELS[name])
            output.setPosition(QPointF(520 + 120 * index, 180 + 110 * index + 30 * offset))
            output.setChildId(child_id)
            output.setChildOutputName(child_output)
            if name != "DEEPGU_ABUNDANCES":     # a temporary file in the dialog (qgis_process 3.22 still asks for
                                                # the file outputs: a FileDestination's check ignores its default)
                output.setMandatory(False)
                output.setDefaultValue("TEMPORARY_OUTPUT")
            model_outputs[name] = output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)
    return model


def resave(source):
    """The model file ``source`` as this QGIS reads it, to be written back: two files written by different QGIS
    versions (which add and reorder fields) mean the same model when their resaved copies are equal."""
    model = QgsProcessingModelAlgorithm()
    if not model.fromFile(source):
        sys.exit("could not read %s" % source)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=TARGET, help="where to write the model (default: %(default)s)")
    parser.add_argument("--resave", metavar="MODEL3", help="instead of building the model, read this model file "
                        "and write it to --output as this QGIS writes it (tests/test_workflow_model.py)")
    args = parser.parse_args()
    target = args.output
    app = QgsApplication([], False)
    app.initQgis()
    plugin = load_plugin()  # noqa: F841 (keeps the provider alive while the model is built)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    model = resave(args.resave) if args.resave else build()
    if not model.toFile(target):
        sys.exit("could not write %s" % target)
    print("wrote %s" % target)


if __name__ == "__main__":
    main()
