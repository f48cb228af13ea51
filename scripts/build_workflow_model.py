"""Build models/deepgu_workflow.model3: endmembers -> FCLS -> bundles -> trainvae -> unmix.

Run with the plugin importable (QGIS's Python, torch not needed):
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/build_workflow_model.py
The .model3 is committed; rerun this after changing an algorithm's parameters.
"""

import importlib.util
import os
import sys

from qgis.PyQt.QtCore import QPointF
from qgis.core import (QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                       QgsProcessingModelChildParameterSource, QgsProcessingModelOutput,
                       QgsProcessingModelParameter, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "models", "deepgu_workflow.model3")

# model parameter -> (child parameter it feeds, in which children)
INPUTS = {"INPUT": ("INPUT", ["endmembers", "fcls", "bundles", "unmix"]),
          "MATERIALS": ("ENDMEMBERS", ["endmembers"]),
          "SEED": ("SEED", ["endmembers", "bundles", "trainvae"]),
          "LAMBDA_A": ("LAMBDA_A", ["unmix"])}
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
STATIC = {"bundles": {"METHOD": 3, "N_PIXELS": 200, "MIN_PIXELS": 3}}
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
    model.setHelpContent({
        "ALG_DESC": "The whole DeepGU pipeline (Borsoi et al. 2019, Algorithm 1): reference endmembers "
                    "(deepgu:endmembers, 'refined': VCA with restarts, then the mean of each material's "
                    "spatially purest pixels), FCLS initial abundances, bundles of the 200 spatially purest "
                    "pixels per material (FCLS abundance averaged over 5 x 5 pixels), one VAE per "
                    "material, DeepGU unmixing with regularisation set from the data (auto). "
                    "Required: INPUT, MATERIALS and the DeepGU abundances output; every other output is "
                    "optional (temporary unless given).",
        "INPUT": "Hyperspectral image.", "MATERIALS": "Number of materials P.",
        "SEED": "Random seed of every random step.",
        "LAMBDA_A": "Spatial smoothing of the abundances; empty (the default) = auto, set from the data's "
                    "residual level; a number overrides it (the paper's grid on reflectance: 0.005-0.05).",
    })
    parameters = [
        QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral image"),
        QgsProcessingParameterNumber("MATERIALS", "Number of materials", QgsProcessingParameterNumber.Integer, 3,
                                     minValue=2),
        QgsProcessingParameterNumber("SEED", "Random seed", QgsProcessingParameterNumber.Integer, 0, minValue=0),
        QgsProcessingParameterNumber("LAMBDA_A", "Spatial smoothing (lambda_A; empty = auto)",
                                     QgsProcessingParameterNumber.Double, None, optional=True, minValue=0.0),
    ]
    for parameter in parameters:
        model.addModelParameter(parameter, QgsProcessingModelParameter(parameter.name()))
    for index, parameter in enumerate(parameters):
        model.parameterComponent(parameter.name()).setPosition(QPointF(120 + 220 * index, 60))
    for index, (child_id, algorithm_id, links, outputs) in enumerate(STEPS):
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        child.setPosition(QPointF(200 + 120 * index, 180 + 110 * index))
        child.setDescription(QgsApplication.processingRegistry().algorithmById(algorithm_id).displayName())
        for name, (target, children) in INPUTS.items():
            if child_id in children:
                child.addParameterSources(target, [QgsProcessingModelChildParameterSource.fromModelParameter(name)])
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
            if name != "DEEPGU_ABUNDANCES":     # the rest go to temporary files unless asked for
                output.setMandatory(False)
                output.setDefaultValue("TEMPORARY_OUTPUT")
            model_outputs[name] = output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)
    return model


def main():
    app = QgsApplication([], False)
    app.initQgis()
    plugin = load_plugin()  # noqa: F841 (keeps the provider alive while the model is built)
    os.makedirs(os.path.dirname(TARGET), exist_ok=True)
    model = build()
    if not model.toFile(TARGET):
        sys.exit("could not write %s" % TARGET)
    print("wrote %s" % TARGET)


if __name__ == "__main__":
    main()
