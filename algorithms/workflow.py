"""deepgu:workflow - the graphical model ``models/deepgu_workflow.model3``, with its parameter defaults applied.

QGIS 3.22 passes a model's children only the parameter values the caller gave: a model parameter
left out of ``qgis_process run`` or ``processing.run`` reaches the child as no value, and the child
then uses *its own* default (the unmix step's LAMBDA_A is 0.01 where the workflow documents 0.05).
The dialog always fills every value, so only headless runs were affected. This algorithm is the
model loaded from its file; before the children run it fills every parameter the caller left out
with the model parameter's default, so the documented defaults hold however the workflow is run.
"""

import importlib.util
import os
import time

from qgis.core import QgsProcessingDestinationParameter, QgsProcessingException, QgsProcessingModelAlgorithm

WORKFLOW_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models",
                              "deepgu_workflow.model3")


def with_defaults(definitions, parameters):
    """``parameters`` plus ``{name: default}`` for every input definition that has a default and no given value."""
    filled = dict(parameters)
    for definition in definitions:
        if isinstance(definition, QgsProcessingDestinationParameter) or definition.defaultValue() is None:
            continue
        if filled.get(definition.name()) is None:
            filled[definition.name()] = definition.defaultValue()
    return filled


class WorkflowAlgorithm(QgsProcessingModelAlgorithm):
    """The workflow model; ``loaded`` is False when its file could not be read."""

    def __init__(self):
        super().__init__()
        self.loaded = self.fromFile(WORKFLOW_MODEL)

    def createInstance(self):  # noqa: N802 (QGIS's name)
        return WorkflowAlgorithm()

    def displayName(self):  # noqa: N802
        return "DeepGU workflow (endmembers, FCLS, bundles, VAEs, unmixing)"

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        if importlib.util.find_spec("torch") is None:        # before the first step, not after three of them
            from .base import TORCH_MISSING      # here: tests import this module without the plugin package
            raise QgsProcessingException(TORCH_MISSING)
        from .base import done_in

        start = time.perf_counter()
        results = super().processAlgorithm(with_defaults(self.parameterDefinitions(), parameters), context, feedback)
        feedback.pushInfo(done_in("deepgu:workflow", time.perf_counter() - start))
        return results
