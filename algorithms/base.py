"""What every DeepGU algorithm shares: its parameter table and help, group, error translation, feedback, package check.

An algorithm is a subclass of :class:`DeepGUAlgorithm` with class constants for its parameter keys
(``INPUT = "INPUT"``), ``NAME``, ``LABEL``, ``HELP`` (what it does), ``DEFAULTS`` (its table in
:mod:`core.defaults`), a method ``table()`` returning ``(parameter definition, description)`` rows in dialog
order, and ``run_job``. The dialog's parameters and the help text (each parameter with its description, and its
default from ``DEFAULTS``) are both built from that one table (as EnMAP-Box's algorithms do).
"""

import contextlib
import os
import re
import threading
import time
import traceback

from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsProcessing, QgsProcessingAlgorithm,
                       QgsProcessingException, QgsProcessingOutputDefinition, QgsProcessingOutputLayerDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterExtent, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.files import formats
from ..core.files.atomic import atomic_output
from ..core.checks.paths import check_paths
from ..core.defaults import format_default
from ..core.dependencies import missing, missing_message
from ..core.errors import Canceled, DeepGUError
from ..core.feedback import Feedback
from ..core.files.raster_io import open_raster
from ..core.validation import MAX_MEMORY_MB
from ..core.files.window import extent_window as window_of_extent
from . import compat

#: smallest MEMORY_MB the dialogs offer.
MEMORY_MB_MIN = 16


#: dialog filters of spectral library files (:data:`core.files.formats.LIBRARY_EXTENSIONS`)
LIBRARY_INPUT_FILTER = "Spectral libraries: CSV or ENVI (*.csv *.sli *.hdr *.CSV *.SLI *.HDR)"
LIBRARY_OUTPUT_FILTER = "CSV files (*.csv);;ENVI spectral libraries (*.sli)"


@contextlib.contextmanager
def quiet_gdal():
    """Silence GDAL's messages while QGIS loads a raster layer: loading computes the histograms of the default
    renderer's bands, and GDAL reports a constant band (e.g. a material absent from an abundance map) as
    "ERROR 5: dfMax should be strictly greater than dfMin". A layer that fails to load is still invalid.
    GDAL's PAM is off for the datasets opened inside: the histograms computed here are not written into the
    raster's ``.aux.xml``, a sidecar that is the user's (an input's) or is committed with the raster (an output's)."""
    from osgeo import gdal

    pam = gdal.GetConfigOption("GDAL_PAM_ENABLED")
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()
        gdal.SetConfigOption("GDAL_PAM_ENABLED", pam)


#: seconds between two passes of qgis_process's event loop while an algorithm checks for cancellation
EVENTS_EVERY = 0.5


class QgisFeedback(Feedback):
    """Adapts ``QgsProcessingFeedback`` to the core's feedback interface."""

    def __init__(self, feedback):
        self.feedback = feedback
        # qgis_process draws progress as a dot per 2.5 % on the current line ("0...10..") and prints messages
        # where the line stands: a message after new dots starts on a line of its own there.
        self.console = QgsApplication.platform() == "qgis_process"
        self.after_dots, self.tick = self.console, -1
        self.events_at = time.monotonic()

    def set_progress(self, percent):
        self.feedback.setProgress(percent)
        tick = int(percent / 2.5)
        self.after_dots = self.after_dots or (self.console and tick != self.tick)
        self.tick = tick

    def is_canceled(self):
        if self.console:
            self._deliver_interrupt()
        return self.feedback.isCanceled()

    def _deliver_interrupt(self):
        """Let qgis_process see a Ctrl+C. It turns SIGINT into a cancel through a signal watcher on its main
        thread's Qt event loop, which runs only when something processes events there: QGIS's console feedback
        does so at most every 2 s and only on a change of progress, and on QGIS 3.40 a SIGINT during a long solve
        was measured not to cancel it at all. The algorithm runs in that main thread, so the events are processed
        here, at most every :data:`EVENTS_EVERY` seconds (never from another thread, whose events these are not)."""
        now = time.monotonic()
        if now - self.events_at >= EVENTS_EVERY and threading.current_thread() is threading.main_thread():
            self.events_at = now
            QCoreApplication.processEvents()

    def info(self, message):
        self.feedback.pushInfo(("\n" if self.after_dots else "") + message)
        self.after_dots = False


def done_in(what, seconds):
    """The log line closing a step: ``deepgu:unmix done in 3.2 s``."""
    return "%s done in %.1f s" % (what, seconds)


def advanced(parameter):
    """Mark ``parameter`` as an expert setting (hidden under 'Advanced' in the dialog)."""
    parameter.setFlags(parameter.flags() | compat.FLAG_ADVANCED)
    return parameter


#: the parameter types :meth:`DeepGUAlgorithm.values` reads.
_VALUE_TYPES = ("number", "enum", "string", "raster", "file", "rasterDestination", "fileDestination")
#: a provider URI or ``memory:`` as a sink's destination (a drive letter ``C:`` is a path).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
#: metadata key of an enum parameter's choice names (what the jobs take; the dialog shows the labels).
CHOICES = "deepgu_choices"


class RasterInput(QgsProcessingParameterRasterLayer):
    """A raster layer parameter whose check does not load a file path as a QGIS layer.

    ``qgis_process`` checks every parameter value (``checkValueIsAcceptable``) before any plugin code runs, and
    QGIS's own check of a raster parameter loads the file as a layer: its default renderer computes each shown
    band's statistics and histogram, and GDAL saves them into ``<INPUT>.aux.xml`` when the layer is closed,
    creating or rewriting a sidecar that is the user's. A value that is a path to a file (``path|option``
    included) is accepted here, and the algorithm reads it (:func:`core.files.raster_io.open_raster`, read only:
    nothing is saved), refusing a file that is not a raster with a message naming the parameter and GDAL's reason
    (QGIS would say "not found"); layers of a project and other values get QGIS's check. GDAL's PAM stays on:
    nodata and scale overrides in an existing ``.aux.xml`` are still read.
    """

    def checkValueIsAcceptable(self, value, context=None):  # noqa: N802 (QGIS's name)
        path = value.split("|")[0] if isinstance(value, str) else ""
        if path and os.path.isfile(path):
            return True
        return super().checkValueIsAcceptable(value, context)

    @classmethod
    def like(cls, definition):
        """A :class:`RasterInput` with the name, description, default, flags, help and metadata of ``definition``."""
        copy = cls(definition.name(), definition.description(), definition.defaultValue())
        copy.setFlags(definition.flags())
        copy.setHelp(definition.help())
        copy.setMetadata(definition.metadata())
        return copy

    def clone(self):
        return RasterInput.like(self)


def raster_input(name, label, optional=False):
    """A raster input parameter (:class:`RasterInput`)."""
    return RasterInput(name, label, optional=optional)


def number(name, label, default, minimum, maximum, optional=False, double=None):
    """A number parameter: Double when ``default`` is a float (or ``double``), otherwise Integer."""
    double = isinstance(default, float) if double is None else double
    kind = compat.NUMBER_DOUBLE if double else compat.NUMBER_INTEGER
    return QgsProcessingParameterNumber(name, label, kind, default, optional, minimum, maximum)


def enum(name, label, choices, default, labels=None):
    """An enum parameter over the names ``choices`` (a tuple of :mod:`core.defaults`, in index order), shown as
    ``labels`` (default: the names), its default given by name."""
    parameter = QgsProcessingParameterEnum(name, label, list(labels or choices), defaultValue=choices.index(default))
    parameter.setMetadata({CHOICES: list(choices)})
    return parameter


def number_range_problem(definition, value, name=None):
    """The refusal of ``value`` for the number parameter ``definition``, naming ``name`` (default: the definition's),
    with the range it takes (e.g. "MEMORY_MB must be at least 16 (got 15)"); None when it is in range or not a
    number (QGIS's own check reports that)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    low, high = definition.minimum(), definition.maximum()
    integer = definition.dataType() == compat.NUMBER_INTEGER
    shown = "%d" % number if integer and number.is_integer() else "%g" % number
    if number < low or number > high:
        bounds = [("%d" if integer else "%g") % bound for bound in (low, high)]
        if number < low and (high >= 1e300 or (integer and high >= 2 ** 31 - 1)):
            return "%s must be at least %s (got %s)" % (name or definition.name(), bounds[0], shown)
        return "%s must be between %s and %s (got %s)" % (name or definition.name(), bounds[0], bounds[1], shown)
    return None


def extent_window(algorithm, parameters, context, input_path, name="EXTENT"):
    """The :class:`core.files.window.PixelWindow` of the raster ``input_path`` covering the extent parameter ``name`` of
    ``algorithm`` (transformed to the raster's CRS), or None when it is not set."""
    if parameters.get(name) in (None, ""):
        return None
    value = parameters.get(name)
    if isinstance(value, str) and re.search(r"\[.*\]\s*$", value) and not algorithm.parameterAsExtentCrs(
            parameters, name, context).isValid():      # "x0,x1,y0,y1 [EPSG:999999]" would be taken as INPUT's CRS
        raise DeepGUError("%s: unknown CRS %s" % (name, value[value.rindex("["):].strip()))
    info = open_raster(input_path, "INPUT")
    rectangle = algorithm.parameterAsExtent(parameters, name, context, QgsCoordinateReferenceSystem(info.crs_wkt))
    return window_of_extent(info.transform, info.rows, info.cols, (rectangle.xMinimum(), rectangle.yMinimum(),
                                                                   rectangle.xMaximum(), rectangle.yMaximum()), name)


#: the steps of the workflow running in this thread (:func:`workflow_steps`).
_WORKFLOW = threading.local()


@contextlib.contextmanager
def workflow_steps(steps, written=None):
    """While a workflow runs its steps in this thread: ``steps`` is ``{algorithm id: (child id, {child parameter or
    output: the workflow's name})}``; a step's error names the workflow's parameters (:func:`translate`), and a
    step that succeeded calls ``written`` (if given) with its results. Yields a dict whose ``"step"`` is the child
    id of the step that ran last."""
    state = {"steps": steps, "step": None, "written": written}
    previous, _WORKFLOW.state = getattr(_WORKFLOW, "state", None), state
    try:
        yield state
    finally:
        _WORKFLOW.state = previous


def translate(message, names):
    """``message`` with every name of ``names`` (a step's parameter -> the workflow's) replaced, as a whole word."""
    if not names:
        return message
    pattern = re.compile(r"(?<![\w:])(%s)(?![\w:])" % "|".join(sorted(map(re.escape, names), key=len, reverse=True)))
    return pattern.sub(lambda match: names[match.group(1)], message)


def help_line(definition, description, defaults):
    """One parameter or output of the help text: ``NAME (advanced, optional): description Default: value.``"""
    notes = []
    if not isinstance(definition, QgsProcessingOutputDefinition):
        if definition.flags() & compat.FLAG_ADVANCED:
            notes.append("advanced")
        if definition.flags() & compat.FLAG_OPTIONAL:
            notes.append("optional")
    line = "%s%s: %s" % (definition.name(), " (%s)" % ", ".join(notes) if notes else "", description)
    if definition.name() in defaults:
        line += " Default: %s." % format_default(defaults[definition.name()])
    return line


class DeepGUAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``LABEL``, ``HELP`` and ``DEFAULTS`` and define ``table()`` (rows of
    ``(parameter or output definition, description)``) and ``run_job(parameters, context, feedback)`` returning
    the outputs dict. ``REQUIRES``: the import names (:data:`core.dependencies.PACKAGES`) it cannot run without;
    its module imports them only inside ``run_job``, so the provider loads without them."""

    REQUIRES = ()
    NAME = LABEL = HELP = ""
    DEFAULTS = {}

    def name(self):
        return self.NAME

    def displayName(self):
        return self.LABEL

    def table(self):
        raise NotImplementedError

    def initAlgorithm(self, config=None):
        for definition, description in self.table():
            if isinstance(definition, QgsProcessingOutputDefinition):
                self.addOutput(definition)
            else:
                definition.setHelp(description)
                self.addParameter(definition)

    def shortHelpString(self):
        return "\n\n".join([self.HELP, "\n".join(help_line(definition, description, self.DEFAULTS)
                                                  for definition, description in self.table())])

    def group(self):
        return "DeepGU"

    def groupId(self):
        return "DeepGU"    # the workflow model's group id is its group name: one group in the toolbox

    def createInstance(self):
        return type(self)()

    def checkParameterValues(self, parameters, context):
        for definition in self.parameterDefinitions():      # QGIS's own refusal does not say the range
            if definition.type() == "number" and parameters.get(definition.name()) not in (None, ""):
                problem = number_range_problem(definition, parameters[definition.name()])
                if problem:
                    return False, problem
        with quiet_gdal():          # QGIS loads the input layers here
            return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):
        state = getattr(_WORKFLOW, "state", None)
        step = state["steps"].get(self.id()) if state else None
        if step is None:
            return self.process(parameters, context, feedback)
        state["step"] = step[0]
        try:
            results = self.process(parameters, context, feedback)
        except QgsProcessingException as error:     # a workflow's step: name the workflow's parameters
            raise QgsProcessingException(translate(str(error), step[1])) from None
        if state["written"] is not None:
            state["written"](results)
        return results

    def process(self, parameters, context, feedback):
        """:meth:`processAlgorithm` outside a workflow: the job, its errors as one line."""
        absent = missing(self.REQUIRES)
        if absent:
            raise QgsProcessingException("%s: %s" % (self.id(), missing_message(absent)))
        try:
            self.check_raster_outputs(parameters)
            self.check_sinks(parameters, context)
            start, qgis_feedback = time.perf_counter(), QgisFeedback(feedback)
            results = self.written_paths(self.run_job(parameters, context, qgis_feedback), context)
            qgis_feedback.info(done_in(self.id(), time.perf_counter() - start))
            return results
        except DeepGUError as error:
            raise QgsProcessingException(str(error)) from None
        except Canceled:
            raise QgsProcessingException("Canceled: no output was written") from None
        except MemoryError:
            raise QgsProcessingException(self.out_of_memory_message(parameters, context)) from None
        except Exception as error:  # a bug, not bad input: one line for the user, the traceback in the log
            feedback.pushDebugInfo(traceback.format_exc())
            raise QgsProcessingException("unexpected error in %s (%s: %s); please report it with the log"
                                         % (self.id(), type(error).__name__, error)) from None

    def run_job(self, parameters, context, feedback):
        raise NotImplementedError

    def values(self, parameters, context):
        """Every parameter's value as the jobs take it, by name: numbers (None for an empty optional one), enum
        choice names, strings, file and raster paths and output paths (None when an optional one is not given).
        Feature sinks and EXTENT are left out (:func:`write_pixel_points`, :meth:`pixel_window`)."""
        return {definition.name(): self._value(definition, parameters, context)
                for definition in self.parameterDefinitions() if definition.type() in _VALUE_TYPES}

    def _value(self, definition, parameters, context):
        name, kind = definition.name(), definition.type()
        if kind == "number" and definition.dataType() == compat.NUMBER_INTEGER:
            return self.parameterAsInt(parameters, name, context)
        if kind == "number":
            optional = definition.flags() & compat.FLAG_OPTIONAL
            return (self.optional_number if optional else self.parameterAsDouble)(parameters, name, context)
        if kind == "enum":
            return definition.metadata().get(CHOICES, definition.options())[self.parameterAsEnum(parameters, name,
                                                                                                  context)]
        if kind == "string":
            return self.parameterAsString(parameters, name, context)
        if kind == "raster":
            return self.optional_raster_path(parameters, name, context)
        if kind == "file":
            return self.parameterAsFile(parameters, name, context) or None
        if kind == "rasterDestination":
            return self.parameterAsOutputLayer(parameters, name, context) or None
        return self.parameterAsFileOutput(parameters, name, context) or None      # fileDestination

    def pixel_window(self, parameters, context, input_path, name="EXTENT"):
        """:func:`extent_window` of this algorithm's extent parameter ``name``."""
        return extent_window(self, parameters, context, input_path, name)

    def out_of_memory_message(self, parameters, context):
        """"out of memory", with what to lower among the parameters this algorithm has."""
        advice = []
        if self.parameterDefinition("MEMORY_MB") is not None:
            memory = self.parameterAsInt(parameters, "MEMORY_MB", context)
            if memory > MEMORY_MB_MIN:
                advice.append("lower MEMORY_MB (now %d)" % memory)
        if self.parameterDefinition("SAMPLE_SIZE") is not None:
            advice.append("lower SAMPLE_SIZE")
        return "out of memory%s" % ((": " + " or ".join(advice)) if advice else
                                    ": the inputs need more memory than this machine has")

    def optional_number(self, parameters, name, context):
        """The number parameter ``name``, or None when it was left empty (meaning 'auto' for the weights)."""
        value = parameters.get(name)
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
            return None
        return self.parameterAsDouble(parameters, name, context)

    def check_raster_outputs(self, parameters):
        """Refuse, naming the parameter, a raster output whose extension has no writer (:mod:`core.files.formats`)."""
        for definition in self.destinationParameterDefinitions():
            value = parameters.get(definition.name())
            if isinstance(value, QgsProcessingOutputLayerDefinition):
                value = value.sink.staticValue()
            if (isinstance(definition, QgsProcessingParameterRasterDestination) and isinstance(value, str)
                    and value and value != QgsProcessing.TEMPORARY_OUTPUT):
                formats.raster_driver(value, what=definition.name())

    def check_sinks(self, parameters, context):
        """Refuse, before any work, a feature sink written to a file that is an input or another output, or is
        not a regular file or a new path (:func:`core.checks.paths.check_paths`): QGIS writes sinks itself, in place
        (``OUTPUT_POINTS=em.csv`` overwrote the ENDMEMBERS library)."""
        sinks = {}
        for definition in self.destinationParameterDefinitions():
            value = parameters.get(definition.name())
            if isinstance(value, QgsProcessingOutputLayerDefinition):
                value = value.sink.staticValue()
            if (definition.type() == "sink" and isinstance(value, str) and value
                    and value != QgsProcessing.TEMPORARY_OUTPUT and not _URI.match(value)):
                sinks[definition.name()] = value          # a file path, not memory: or a provider URI
        if not sinks:
            return
        values = self.values(parameters, context)
        inputs = {definition.name(): values[definition.name()] for definition in self.parameterDefinitions()
                  if definition.type() in ("raster", "file") and values.get(definition.name())}
        outputs = {definition.name(): values[definition.name()] for definition in self.destinationParameterDefinitions()
                   if values.get(definition.name())}
        check_paths(inputs, dict(outputs, **sinks))

    def written_paths(self, results, context):
        """``results`` with each raster output named by the file QGIS opens (``x.dat`` for an ENVI ``x.hdr``)."""
        layers = context.layersToLoadOnCompletion()
        for definition in self.destinationParameterDefinitions():
            path = results.get(definition.name())
            if isinstance(definition, QgsProcessingParameterRasterDestination) and isinstance(path, str) and path:
                results[definition.name()] = formats.raster_data_path(path)
                if path in layers and results[definition.name()] != path:
                    layers[results[definition.name()]] = layers.pop(path)
        context.setLayersToLoadOnCompletion(layers)
        return results

    def raster_path(self, parameters, name, context):
        """File path of the raster parameter ``name``; a clear error when it is not a readable file.

        A plain file path is passed on as it is: loading it as a QGIS layer computes statistics that GDAL
        may write into the input (a VRT) or beside it, and an input must stay untouched.
        """
        value = parameters.get(name)
        if isinstance(value, str) and os.path.isfile(value.split("|")[0]):
            return value.split("|")[0]
        with quiet_gdal():
            layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None or not layer.isValid():
            raise DeepGUError("%s is not a valid raster layer" % name)
        path = layer.source().split("|")[0]
        if not os.path.isfile(path):
            raise DeepGUError("%s must be a raster file on disk (got '%s')" % (name, layer.source()))
        return path

    def optional_raster_path(self, parameters, name, context):
        """:meth:`raster_path` of an optional raster parameter, or None when it is not set."""
        if parameters.get(name) in (None, ""):
            return None
        return self.raster_path(parameters, name, context)


def write_pixel_points(algorithm, parameters, name, context, info, materials, rows, cols):
    """Write the sink ``name`` (if requested): one point per pixel with material, row and col.

    Returns the sink's destination id, or None when the output was not requested.
    """
    from qgis.core import QgsCoordinateReferenceSystem, QgsFeature, QgsFields, QgsGeometry, QgsPointXY

    from ..core.files.raster_io import pixel_centres

    fields = QgsFields()
    fields.append(compat.field("material", compat.STRING))
    fields.append(compat.field("row", compat.INTEGER))
    fields.append(compat.field("col", compat.INTEGER))
    sink, dest_id = algorithm.parameterAsSink(parameters, name, context, fields, compat.WKB_POINT,
                                              QgsCoordinateReferenceSystem(info.crs_wkt))
    if sink is None:
        return None
    xs, ys = pixel_centres(info.transform, rows, cols)
    for material, row, col, x, y in zip(materials, rows, cols, xs, ys):
        feature = QgsFeature(fields)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(x), float(y))))
        feature.setAttributes([str(material), int(row), int(col)])
        sink.addFeature(feature, compat.FAST_INSERT)
    return dest_id


def library_parameter(name, description, optional=False):
    """An input spectral library (CSV or ENVI ``.sli``) parameter."""
    return QgsProcessingParameterFile(name, description, fileFilter=LIBRARY_INPUT_FILTER, optional=optional)


def library_destination(name, description, optional=False):
    """An output spectral library parameter: CSV, or ENVI ``.sli`` by extension."""
    return QgsProcessingParameterFileDestination(name, description, LIBRARY_OUTPUT_FILTER, optional=optional)


#: help of MEMORY_MB where it bounds strips of the image.
MEMORY_HELP = ("memory budget (MB) per block: the image is read, processed and written in blocks of about this "
               "size, so images larger than memory can be processed.")
#: help of CLUSTER (fcls, unmix).
CLUSTER_HELP = ("empty computes here; local:N starts N worker processes on this machine for this run; a Dask scheduler "
                "address (tcp://host:8786) sends the blocks to that cluster, whose workers must see INPUT's path. "
                "The result is the same.")
#: help of EXTENT (fcls, unmix).
EXTENT_HELP = ("process only the pixels covering this map extent (in any CRS; snapped outward to whole pixels); the "
               "outputs cover just that window of INPUT, georeferenced to it. Empty: the whole image.")


def memory_parameter(default):
    """The MEMORY_MB expert parameter: budget for one block of pixels in memory."""
    return advanced(number("MEMORY_MB", "Memory budget per block (MB)", default, MEMORY_MB_MIN, MAX_MEMORY_MB))


def cluster_parameter(default):
    """The CLUSTER expert parameter: where the tiles are solved (see core/running/cluster.py)."""
    return advanced(QgsProcessingParameterString("CLUSTER", "Dask cluster (empty: this process)", defaultValue=default,
                                                 optional=True))


def extent_parameter():
    """The optional EXTENT parameter: the map extent of INPUT to process."""
    return QgsProcessingParameterExtent("EXTENT", "Extent to process (empty: the whole image)", optional=True)


def write_abundance_style(path, feedback=None):
    """Save ``<path without extension>.qml``, the default style QGIS applies when the raster is loaded.

    Abundances are shown stretched from 0 to 1 per band: the first three materials as red, green
    and blue when there are three or more, otherwise the first one in grey. The style is a sidecar the
    raster owns (:mod:`core.checks.paths` refused an output sharing its stem before any work); it is written
    atomically (a symbolic link there is replaced, not written through), after the raster is in place, so
    a failure is a warning on ``feedback``, never a failed run.
    """
    from qgis.core import (QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsRasterLayer,
                           QgsSingleBandGrayRenderer)
    from qgis.PyQt.QtXml import QDomDocument

    path = formats.raster_data_path(path)
    with quiet_gdal():
        layer = QgsRasterLayer(path, "abundances", "gdal")
    if not layer.isValid():
        return

    def stretch(band):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(compat.STRETCH_TO_MIN_MAX)
        enhancement.setMinimumValue(0.0)
        enhancement.setMaximumValue(1.0)
        return enhancement

    if layer.bandCount() >= 3:
        renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
        renderer.setRedContrastEnhancement(stretch(1))
        renderer.setGreenContrastEnhancement(stretch(2))
        renderer.setBlueContrastEnhancement(stretch(3))
    else:
        renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), 1)
        renderer.setContrastEnhancement(stretch(1))
    layer.setRenderer(renderer)
    document = QDomDocument()
    layer.exportNamedStyle(document)
    style = os.path.splitext(path)[0] + ".qml"
    try:
        with atomic_output(style, "w", what="the style of %s" % os.path.basename(path), encoding="utf-8") as f:
            f.write(document.toString(2))
    except DeepGUError as error:
        (feedback or Feedback()).info("warning: %s (the raster itself is written)" % error)


# --- Analyst regions (issue 22): the REGIONS and MATERIAL_FIELD parameters of regions, endmembers, the workflow ---
#: help of REGIONS and MATERIAL_FIELD where they are optional (endmembers; the workflow says the same).
REGIONS_HELP = ("optional: polygons (or points) drawn over pure areas of known materials, in any CRS. Each material "
                "named there gets its reference from its regions (deepgu:regions: the trimmed mean of the pixels "
                "whose centre is inside); the remaining materials are extracted with those held fixed. The number of "
                "materials must be at least the number named.")
MATERIAL_FIELD_HELP = "the field of REGIONS naming each feature's material (needed with REGIONS)."


def regions_parameter(optional):
    """REGIONS: a polygon or point layer in any CRS."""
    from qgis.core import QgsProcessingParameterFeatureSource
    return QgsProcessingParameterFeatureSource("REGIONS", "Regions of known materials (polygons or points)",
                                               [compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_VECTOR_POINT],
                                               optional=optional)


def material_field_parameter(optional):
    """MATERIAL_FIELD: the field of REGIONS naming each feature's material."""
    from qgis.core import QgsProcessingParameterField
    return QgsProcessingParameterField("MATERIAL_FIELD", "Field naming the material",
                                       parentLayerParameterName="REGIONS", optional=optional)


def region_features(algorithm, parameters, context, crs_wkt):
    """The features of REGIONS as :class:`core.extraction.regions.Region` s in the CRS ``crs_wkt`` (INPUT's), their
    material from MATERIAL_FIELD; None when REGIONS is not given. The core never sees QGIS: geometries go as WKB."""
    from qgis.core import QgsCoordinateTransform, QgsCsException

    from ..core.extraction.regions import Region

    if parameters.get("REGIONS") in (None, ""):
        return None
    source = algorithm.parameterAsSource(parameters, "REGIONS", context)
    if source is None:
        raise DeepGUError("REGIONS is not a readable vector layer")
    fields = algorithm.parameterAsFields(parameters, "MATERIAL_FIELD", context)
    if not fields or not fields[0]:
        raise DeepGUError("MATERIAL_FIELD: choose the field of REGIONS that names each feature's material")
    index = source.fields().lookupField(fields[0])
    if index < 0:
        raise DeepGUError("MATERIAL_FIELD: REGIONS has no field '%s' (its fields: %s)"
                          % (fields[0], ", ".join(source.fields().names()) or "none"))
    target = QgsCoordinateReferenceSystem(crs_wkt)
    transform = None
    if source.sourceCrs().isValid() and target.isValid() and source.sourceCrs() != target:
        transform = QgsCoordinateTransform(source.sourceCrs(), target, context.transformContext())
    regions = []
    for feature in source.getFeatures():
        label = "feature %d" % feature.id()
        geometry = feature.geometry()
        if transform is not None and not geometry.isNull():
            try:
                geometry.transform(transform)
            except QgsCsException:
                raise DeepGUError("REGIONS: %s cannot be reprojected to INPUT's CRS" % label) from None
        value = feature.attribute(index)
        material = None if value is None or (hasattr(value, "isNull") and value.isNull()) else str(value)
        regions.append(Region(b"" if geometry.isNull() else bytes(geometry.asWkb()), material, label))
    return regions
