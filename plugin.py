"""The plugin object: registers the Processing provider, nothing else."""

from qgis.core import QgsApplication

from .provider import DeepGUProvider


class DeepGUPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        """Register the provider; qgis_process calls this without a GUI."""
        self.provider = DeepGUProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)
        # The workflow model finds its steps through the registry, which knows the provider only
        # once it is added: load the algorithms again now that it is.
        self.provider.refreshAlgorithms()

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
