"""deepgu:install_dependencies - pip installs the Python packages QGIS's Python lacks into the QGIS profile."""

from qgis.core import (QgsApplication, QgsProcessingOutputFolder, QgsProcessingOutputString,
                       QgsProcessingParameterFile, QgsProcessingParameterString)

from ..core import defaults, dependencies
from . import compat
from .base import DeepGUAlgorithm


class InstallDependenciesAlgorithm(DeepGUAlgorithm):
    TARGET, FIND_LINKS, INDEX_URL, OUTPUT, INSTALLED = "TARGET", "FIND_LINKS", "INDEX_URL", "OUTPUT", "INSTALLED"
    NAME, LABEL, DEFAULTS = "install_dependencies", "Install Python dependencies", defaults.INSTALL_DEPENDENCIES
    HELP = ("Installs what QGIS's Python cannot import among %s (pip, for the Python that runs QGIS) into a folder "
            "of the QGIS profile, never into the system's Python; the plugin puts that folder on Python's path when "
            "it loads, so the packages work from the next QGIS start or qgis_process call (and at once in this "
            "session). Without FIND_LINKS or INDEX_URL, torch is PyTorch's CPU build on Linux and Windows."
            % ", ".join(dependencies.requirement(name) for name in dependencies.PACKAGES))

    def table(self):
        return [
            (QgsProcessingParameterFile(self.TARGET, "Install into folder (empty: the profile's)", compat.FILE_FOLDER,
                                        defaultValue=self.DEFAULTS[self.TARGET], optional=True),
             "folder pip installs into; empty: <QGIS profile folder>/python/dependencies, the folder the plugin "
             "puts on Python's path. Another folder must be put on PYTHONPATH by you."),
            (QgsProcessingParameterFile(self.FIND_LINKS, "Folder of wheel files (offline install)", compat.FILE_FOLDER,
                                        defaultValue=self.DEFAULTS[self.FIND_LINKS], optional=True),
             "a folder of .whl files of the packages and their dependencies: pip installs from it without any "
             "index (pip --no-index --find-links), unless INDEX_URL is given too."),
            (QgsProcessingParameterString(self.INDEX_URL, "Package index URL", self.DEFAULTS[self.INDEX_URL],
                                          optional=True),
             "a package index replacing PyPI (pip --index-url), e.g. a company mirror."),
            (QgsProcessingOutputFolder(self.OUTPUT, "Folder installed into"), "the folder the packages went to."),
            (QgsProcessingOutputString(self.INSTALLED, "Packages installed"),
             "import names of the packages installed, comma-separated (empty when nothing was missing)."),
        ]

    def run_job(self, parameters, context, feedback):
        values = self.values(parameters, context)
        target = values[self.TARGET] or dependencies.dependencies_folder(QgsApplication.qgisSettingsDirPath())
        installed = dependencies.install(target, feedback, find_links=values[self.FIND_LINKS],
                                         index_url=values[self.INDEX_URL] or None)
        return {self.OUTPUT: target, self.INSTALLED: ",".join(installed)}
