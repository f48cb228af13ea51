"""The 'deepgu' Processing provider: an explicit list of algorithms (their ids are public)."""

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.bundles import BundlesAlgorithm
from .algorithms.compare import CompareAlgorithm
from .algorithms.endmembers import EndmembersAlgorithm
from .algorithms.fcls import FCLSAlgorithm
from .algorithms.install import InstallDependenciesAlgorithm
from .algorithms.metrics import MetricsAlgorithm
from .algorithms.regions import RegionsAlgorithm
from .algorithms.samplevae import SampleVAEAlgorithm
from .algorithms.synthetic import SyntheticAlgorithm
from .algorithms.trainvae import TrainVAEAlgorithm
from .algorithms.unmix import UnmixAlgorithm
from .algorithms.variability import ELMMAlgorithm, GLMMAlgorithm, PLMMAlgorithm
from .algorithms.vca import VCAAlgorithm
from .algorithms.workflow import WorkflowAlgorithm
from .core.files.formats import RASTER_EXTENSIONS

HERE = os.path.dirname(os.path.abspath(__file__))


class DeepGUProvider(QgsProcessingProvider):
    def id(self):
        return "deepgu"

    def name(self):
        return "DeepGU"

    def longName(self):
        return "DeepGU spectral unmixing"

    def icon(self):
        return QIcon(os.path.join(HERE, "icon.svg"))

    def supportedOutputRasterLayerExtensions(self):
        """What the raster writer can write (GeoTIFF, ENVI): the dialogs offer only these."""
        return [extension.lstrip(".") for extension in RASTER_EXTENSIONS]

    def defaultRasterFileExtension(self):
        return "tif"

    def loadAlgorithms(self):
        for algorithm in (SyntheticAlgorithm(), VCAAlgorithm(), EndmembersAlgorithm(), FCLSAlgorithm(),
                          BundlesAlgorithm(), TrainVAEAlgorithm(), SampleVAEAlgorithm(), UnmixAlgorithm(),
                          MetricsAlgorithm()):
            self.addAlgorithm(algorithm)
        self.addAlgorithm(InstallDependenciesAlgorithm())   # deepgu:install_dependencies
        self.addAlgorithm(RegionsAlgorithm())       # deepgu:regions, the analyst's references
        for algorithm in (ELMMAlgorithm(), GLMMAlgorithm(), PLMMAlgorithm()):
            self.addAlgorithm(algorithm)
        self.addAlgorithm(CompareAlgorithm())       # deepgu:compare, the methods side by side in one report
        workflow = WorkflowAlgorithm()              # deepgu:workflow, the whole pipeline
        if workflow.loaded:
            self.addAlgorithm(workflow)
