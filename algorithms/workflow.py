"""deepgu:workflow - the graphical model ``models/deepgu_workflow.model3``, with its parameter defaults applied,
checked whole before its first step and undone whole when a step fails.

QGIS 3.22 passes a model's children only the parameter values the caller gave: a model parameter
left out of ``qgis_process run`` or ``processing.run`` reaches the child as no value, and the child
then uses *its own* default (the unmix step's LAMBDA_A is 0.01 where the workflow documents 0.05).
The dialog always fills every value, so only headless runs were affected. This algorithm is the
model loaded from its file; before the children run it fills every parameter the caller left out
with the model parameter's default, so the documented defaults hold however the workflow is run.

Before the first step every parameter and output is checked under the workflow's own names, generically over
the model (so a parameter or output added to the model is checked too): each number against the range of every
child parameter it feeds ("MATERIALS must be between 2 and 12"), each extent against the raster of the children
it applies to (it must intersect INPUT and cover at least as many pixels as there are materials), each output
path for its extension, folder and aliasing with the inputs and the other outputs
(:func:`core.checks.paths.check_paths`). A step's error names the workflow's parameters instead of the step's
(ENDMEMBERS of the endmembers step is MATERIALS; OUTPUT of the unmix step is ``unmix:DEEPGU_ABUNDANCES``). A failure, a
cancel or a SIGTERM in any step leaves none of the workflow's outputs: the files the run created are removed and the
files it replaced get their old content back (:class:`core.files.rollback.OutputRollback`).
"""

import os
import time

from qgis.core import (QgsProcessing, QgsProcessingDestinationParameter, QgsProcessingException,
                       QgsProcessingModelAlgorithm,
                       QgsProcessingOutputLayerDefinition, QgsProcessingParameterRasterDestination)

from . import compat

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
        if self.loaded:
            self._raster_inputs()

    def _raster_inputs(self):
        """Make the model's raster parameters :class:`algorithms.base.RasterInput` s, whose check does not load a
        file as a layer (which saves statistics into the user's ``<INPUT>.aux.xml``), keeping their order: a
        replaced parameter goes last, so every one from the first raster on is put back in turn."""
        from .base import RasterInput

        definitions = [definition for definition in self.parameterDefinitions()
                       if not isinstance(definition, QgsProcessingDestinationParameter)]
        rasters = [i for i, definition in enumerate(definitions) if definition.type() == "raster"]
        for definition in definitions[rasters[0]:] if rasters else []:
            self.updateModelParameter(RasterInput.like(definition) if definition.type() == "raster"
                                      else definition.clone())

    def createInstance(self):  # noqa: N802 (QGIS's name)
        return WorkflowAlgorithm()

    def displayName(self):  # noqa: N802
        return "DeepGU workflow (endmembers, FCLS, bundles, VAEs, unmixing)"

    def links(self):
        """``{child id: {child parameter: model parameter}}`` for the children's parameters fed by the model's."""
        links = {}
        for child_id, child in self.childAlgorithms().items():
            for name, sources in child.parameterSources().items():
                for source in sources:
                    if source.source() == compat.MODEL_PARAMETER_SOURCE:
                        links.setdefault(child_id, {})[name] = source.parameterName()
        return links

    def output_links(self):
        """``{model output parameter ("child:NAME"): (child id, child output name)}``."""
        return {"%s:%s" % (child_id, name): (child_id, output.childOutputName())
                for child_id, child in self.childAlgorithms().items() for name, output in child.modelOutputs().items()}

    def step_names(self):
        """``{algorithm id: (child id, {child parameter or output: the workflow's name for it})}`` for a step's
        errors (:func:`algorithms.base.workflow_steps`); an algorithm that is more than one step is left out."""
        children = self.childAlgorithms()
        names = {child_id: dict(feeds) for child_id, feeds in self.links().items()}
        for model_name, (child_id, child_output) in self.output_links().items():
            names.setdefault(child_id, {})[child_output] = model_name
        ids = [child.algorithmId() for child in children.values()]
        return {child.algorithmId(): (child_id, names.get(child_id, {})) for child_id, child in children.items()
                if ids.count(child.algorithmId()) == 1}

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """:meth:`check` first: QGIS's own check refuses a bad output path without saying why."""
        from ..core.errors import DeepGUError

        try:
            self.check(with_defaults(self.parameterDefinitions(), parameters), context)
        except DeepGUError as error:
            return False, str(error)
        except QgsProcessingException:      # e.g. a missing INPUT: QGIS's check below says it
            pass
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        # the plugin's modules are imported here and below: tests import this module without the plugin package
        from ..core.errors import DeepGUError
        from ..core.files.rollback import OutputRollback
        from ..core.dependencies import missing, missing_message
        from .base import done_in, workflow_steps

        absent = missing(("scipy", "torch"))                 # before the first step, not after three of them
        if absent:
            raise QgsProcessingException("%s: %s" % (self.id(), missing_message(absent)))
        parameters = with_defaults(self.parameterDefinitions(), parameters)
        try:
            outputs = self.check(parameters, context)
        except DeepGUError as error:
            raise QgsProcessingException(str(error)) from None
        self._hold_raster_layers(parameters, context)
        rollback, steps = OutputRollback(_output_files(outputs.values())), {}
        start = time.perf_counter()

        def written(results):       # a step's temporary outputs: removed with the rest on a failure or a cancel
            rollback.created(_temporary_files(results.values()))

        try:
            with rollback.on_sigterm(), workflow_steps(self.step_names(), written) as steps:
                results = super().processAlgorithm(parameters, context, feedback)
                if feedback.isCanceled():
                    raise QgsProcessingException("Canceled")
        except BaseException as error:
            # the steps' layers first: GDAL writes a layer's statistics (.aux.xml) beside its file when it closes
            # it, which would otherwise happen after the rollback, when qgis_process exits
            context.temporaryLayerStore().removeAllMapLayers()
            lost = rollback.rollback()
            message = "the workflow stopped in its step %s: %s" % (steps.get("step") or "?",
                                                                   str(error).strip() or "canceled")
            if lost:
                message += ("; no output of the workflow is left, except these files, which existed before and "
                            "could not be restored (the file system refuses hard links): %s" % ", ".join(lost))
            else:
                message += "; none of the workflow's outputs is left (files that existed before keep their content)"
            raise QgsProcessingException(message) from None
        rollback.release(keep=_output_files(value for value in results.values() if isinstance(value, str)))
        feedback.pushInfo(done_in("deepgu:workflow", time.perf_counter() - start))
        return results

    def _hold_raster_layers(self, parameters, context):
        """Load each raster parameter given as a file path as a layer of the run's temporary store, with GDAL's PAM
        off for it. Before each step QGIS's model loads every layer parameter (for the step's ``@INPUT_...``
        expression variables) and finds these there; a layer it loaded itself would compute its statistics with PAM
        on and GDAL would save them into the user's ``<INPUT>.aux.xml`` when the layer is closed."""
        from qgis.core import QgsRasterLayer

        from .base import quiet_gdal

        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            if definition.type() == "raster" and isinstance(value, str) and os.path.isfile(value.split("|")[0]):
                with quiet_gdal():
                    layer = QgsRasterLayer(value, definition.name(), "gdal")
                if layer.isValid():
                    context.temporaryLayerStore().addMapLayer(layer)

    def _raster_file(self, parameters, name, context):
        """The file of the raster parameter ``name`` (a path is taken as it is: loading a layer may write beside
        it, as :meth:`algorithms.base.DeepGUAlgorithm.raster_path` says)."""
        from ..core.errors import DeepGUError

        value = parameters.get(name)
        if isinstance(value, str) and os.path.isfile(value.split("|")[0]):
            return value.split("|")[0]
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None or not layer.isValid() or not os.path.isfile(layer.source().split("|")[0]):
            raise DeepGUError("%s is not a raster file on disk" % name)
        return layer.source().split("|")[0]

    def check(self, parameters, context):
        """Check every parameter and output before the first step (module docstring); returns ``{output parameter:
        path}`` of the outputs written to files the caller named. Raises :class:`core.errors.DeepGUError`."""
        from ..core.files import formats
        from ..core.errors import DeepGUError
        from ..core.checks.paths import check_paths
        from ..core.files.raster_io import open_raster
        from .base import LIBRARY_OUTPUT_FILTER, extent_window, number_range_problem

        children = self.childAlgorithms()
        rasters, extents, materials = {}, {}, None
        for child_id, feeds in self.links().items():
            algorithm = children[child_id].algorithm()
            for child_name, name in feeds.items():
                definition, value = algorithm.parameterDefinition(child_name), parameters.get(name)
                if definition is None or value in (None, ""):
                    continue
                if definition.type() == "number":
                    problem = number_range_problem(definition, value, name)
                    if problem:
                        raise DeepGUError(problem)
                    if child_name == "ENDMEMBERS":
                        materials = (name, self.parameterAsInt(parameters, name, context))
                elif definition.type() == "raster":
                    rasters[name] = value
                elif definition.type() == "extent":
                    extents.setdefault(name, set()).add(feeds.get("INPUT"))
        inputs = {name: self._raster_file(parameters, name, context) for name in rasters}
        for name, path in inputs.items():
            open_raster(path, name)         # a file that is not a raster: refused before the first step
        for name, raster_names in extents.items():
            for raster_name in raster_names - {None}:
                window = extent_window(self, parameters, context, inputs[raster_name], name)
                if materials and window.rows * window.cols < materials[1]:
                    raise DeepGUError("%s covers %d x %d pixels of %s, fewer than the %d materials (%s): choose a "
                                      "larger extent" % (name, window.rows, window.cols, raster_name, materials[1],
                                                         materials[0]))
        outputs = {}
        for name, (child_id, child_output) in self.output_links().items():
            path = _destination(parameters.get(name))
            if not path:
                continue
            definition = children[child_id].algorithm().parameterDefinition(child_output)
            if isinstance(definition, QgsProcessingParameterRasterDestination):
                formats.raster_driver(path, what=name)
            elif definition is not None and definition.fileFilter() == LIBRARY_OUTPUT_FILTER:
                try:
                    formats.library_format(path, writing=True)
                except DeepGUError as error:
                    raise DeepGUError("%s: %s" % (name, error)) from None
            outputs[name] = path
        check_paths(inputs, outputs)
        return outputs


def _destination(value):
    """The file path the caller gave for an output (None for a temporary output or none)."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink.staticValue()
    if not isinstance(value, str) or not value or value == QgsProcessing.TEMPORARY_OUTPUT:
        return None
    if value.startswith(("memory:", "ogr:", "postgis:")):
        return None
    return value


def _output_files(paths):
    """Every file an output path may stand for: the file (an ENVI raster's data file and header), GDAL's
    ``.aux.xml`` and the style ``<stem>.qml`` written beside a raster."""
    from ..core.files import formats

    files = []
    for path in paths:
        driver = formats.RASTER_EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if driver is None:
            files.append(path)
            continue
        data = formats.raster_data_path(path)
        files += [data, os.path.splitext(data)[0] + ".qml"] + formats.raster_sidecars(data, driver)
    return files


def _temporary_files(values):
    """The files of the output paths among ``values`` (:func:`_output_files`) that lie in QGIS's Processing
    temporary folder (its ``TEMPORARY_OUTPUT`` files); a path the caller named is never one of them."""
    from qgis.core import QgsProcessingUtils

    folder = os.path.join(os.path.realpath(QgsProcessingUtils.tempFolder()), "")
    paths = [os.path.realpath(value) for value in values if isinstance(value, str) and value]
    return _output_files(path for path in paths if path.startswith(folder))
